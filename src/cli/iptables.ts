/**
 * `remora iptables`: prints (default) or applies, via `iptables-restore --noflush` and `ip6tables-restore --noflush`,
 * the capture rules of iptablesRules() (every inbound port by default, the sidecar's own excluded). Run by the
 * `remora-init` container (root, NET_ADMIN) that injection adds.
 * IPv6 (`--ipv6 auto`, the default): the IPv6 rules too when the pod has IPv6 (/proc/net/if_inet6 lists an address);
 * applying them is then best effort (a kernel without ip6tables' nat table leaves IPv6 uncaptured, not broken: the
 * sidecar also listens on [::1] and [::] for what is captured). `--ipv6 on` makes a failure fatal, `off` skips them.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { iptablesRules, IptablesConfigError, TRAFFIC_ANNOTATIONS } from '../inject/iptables.js';

const USAGE = `Usage: remora iptables [--apply] [capture options]

Prints the iptables-restore input that redirects the pod's TCP traffic into the sidecar
(outbound → 15001, inbound → 15006 on every port but the sidecar's own 15006, 15021 and 15090,
never UID/GID 1337); --apply loads it. Run the sidecar with --capture-mode redirect behind it.

Options (the same meaning as Istio's traffic.sidecar.istio.io/* annotations):
      --app-ports P,…                   the app's container ports (informational: inbound capture is every
                                        port unless --include-inbound-ports narrows it, as Istio's default)
      --include-inbound-ports P,…|*     inbound ports to capture (default *)
      --exclude-inbound-ports P,…
      --include-outbound-ip-ranges C,…|*  (default *)
      --exclude-outbound-ip-ranges C,…
      --include-outbound-ports P,…
      --exclude-outbound-ports P,…
      --proxy-uid N / --proxy-gid N     the proxy's user and group (default 1337)
      --ipv6 auto|on|off                the IPv6 rules (ip6tables) too: auto (default) when the pod has
                                        IPv6, best effort; on: always, a failure is fatal; off: never
      --apply                           run iptables-restore --noflush (and ip6tables-restore) with the rules
  -h, --help
`;

/**
 * The host (pod) has IPv6: an address other than loopback's in /proc/net/if_inet6 (absent when IPv6 is disabled;
 * `::1` alone is listed whenever the kernel has IPv6). Each line ends with the interface name.
 */
function hasIPv6(): boolean {
  try {
    return readFileSync('/proc/net/if_inet6', 'utf8').split('\n').some((l) => l.trim() !== '' && !/\slo$/.test(l.trim()));
  } catch {
    return false;
  }
}

function restore(tool: string, input: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(tool, ['--noflush'], { stdio: ['pipe', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) => resolve({ code: 127, stderr: err.message }));
    child.on('close', (code) => resolve({ code: code ?? 1, stderr }));
    child.stdin.end(input);
  });
}

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'app-ports': { type: 'string', default: '' },
        'include-inbound-ports': { type: 'string' },
        'exclude-inbound-ports': { type: 'string' },
        'include-outbound-ip-ranges': { type: 'string' },
        'exclude-outbound-ip-ranges': { type: 'string' },
        'include-outbound-ports': { type: 'string' },
        'exclude-outbound-ports': { type: 'string' },
        'proxy-uid': { type: 'string', default: '1337' },
        'proxy-gid': { type: 'string', default: '1337' },
        ipv6: { type: 'string', default: 'auto' },
        apply: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`remora iptables: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const A = TRAFFIC_ANNOTATIONS;
  const annotations: Record<string, string> = {};
  const map: Array<[string | undefined, string]> = [
    [values['include-inbound-ports'], A.includeInboundPorts],
    [values['exclude-inbound-ports'], A.excludeInboundPorts],
    [values['include-outbound-ip-ranges'], A.includeOutboundIPRanges],
    [values['exclude-outbound-ip-ranges'], A.excludeOutboundIPRanges],
    [values['include-outbound-ports'], A.includeOutboundPorts],
    [values['exclude-outbound-ports'], A.excludeOutboundPorts],
  ];
  for (const [v, key] of map) if (v !== undefined) annotations[key] = v;
  const appPorts = values['app-ports'].split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (appPorts.some((p) => !/^\d+$/.test(p))) {
    process.stderr.write(`remora iptables: --app-ports must be a comma list of port numbers\n`);
    return 2;
  }
  const uid = Number(values['proxy-uid']);
  const gid = Number(values['proxy-gid']);
  if (!Number.isInteger(uid) || uid < 0 || !Number.isInteger(gid) || gid < 0) {
    process.stderr.write('remora iptables: --proxy-uid and --proxy-gid must be non-negative integers\n');
    return 2;
  }
  const ipv6Mode = values.ipv6;
  if (ipv6Mode !== 'auto' && ipv6Mode !== 'on' && ipv6Mode !== 'off') {
    process.stderr.write('remora iptables: --ipv6 must be auto, on or off\n');
    return 2;
  }
  const withV6 = ipv6Mode === 'on' || (ipv6Mode === 'auto' && hasIPv6());
  let rules: string[];
  let rules6: string[] = [];
  try {
    const o = { appPorts: appPorts.map(Number), proxyUid: uid, proxyGid: gid };
    rules = iptablesRules(o, annotations);
    if (withV6) rules6 = iptablesRules(o, annotations, 6);
  } catch (err) {
    if (!(err instanceof IptablesConfigError)) throw err;
    process.stderr.write(`remora iptables: ${err.message}\n`);
    return 2;
  }
  const text = rules.join('\n') + '\n';
  const text6 = rules6.join('\n') + '\n';
  process.stdout.write(text);
  // The IPv6 rules go to ip6tables-restore, a separate input: printed after a comment line, never mixed in.
  if (withV6) process.stdout.write(`# ip6tables-restore input:\n${text6}`);
  if (!values.apply) return 0;
  const r = await restore('iptables-restore', text);
  if (r.code !== 0) {
    process.stderr.write(`remora iptables: iptables-restore failed (exit ${r.code}): ${r.stderr.trim()}\n`);
    return 1;
  }
  process.stdout.write('remora iptables: rules applied\n');
  if (!withV6) return 0;
  const r6 = await restore('ip6tables-restore', text6);
  if (r6.code !== 0) {
    process.stderr.write(`remora iptables: ip6tables-restore failed (exit ${r6.code}): ${r6.stderr.trim()}${ipv6Mode === 'auto' ? ' (IPv6 traffic is not captured)' : ''}\n`);
    return ipv6Mode === 'on' ? 1 : 0;
  }
  process.stdout.write('remora iptables: IPv6 rules applied\n');
  return 0;
}
