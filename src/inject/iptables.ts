/**
 * Pure generation of the iptables-restore / ip6tables-restore input (`nat` table) that captures a pod's TCP traffic
 * into the sidecar: outbound → 15001, inbound → 15006 on every port but the sidecar's own (istio-iptables' default
 * `includeInboundPorts: "*"` with its default excludes), never the proxy's own UID 1337. The IPv6 rules are the IPv4
 * ones with IPv6 loopback and the IPv6 members of the IP-range annotations (Istio splits them the same way).
 */
import { isIPv6 } from 'node:net';

/** Istio's pod annotations that shape the capture (same names, same meaning). */
export const TRAFFIC_ANNOTATIONS = {
  includeInboundPorts: 'traffic.sidecar.istio.io/includeInboundPorts',
  excludeInboundPorts: 'traffic.sidecar.istio.io/excludeInboundPorts',
  includeOutboundIPRanges: 'traffic.sidecar.istio.io/includeOutboundIPRanges',
  excludeOutboundIPRanges: 'traffic.sidecar.istio.io/excludeOutboundIPRanges',
  includeOutboundPorts: 'traffic.sidecar.istio.io/includeOutboundPorts',
  excludeOutboundPorts: 'traffic.sidecar.istio.io/excludeOutboundPorts',
} as const;

export interface IptablesOptions {
  /**
   * The app's container ports. Informational: inbound capture is every port unless `includeInboundPorts` narrows it
   * (Istio's default "*"), so that no listener of the pod — one bound to loopback above all — is reached around the
   * sidecar's policy.
   */
  appPorts: readonly number[];
  /** Outbound listener port (Istio's 15001). */
  outboundPort?: number;
  /** Inbound listener port (Istio's 15006). */
  inboundPort?: number;
  /** UID/GID the proxy runs as; its own traffic is never captured (Istio: 1337). */
  proxyUid?: number;
  proxyGid?: number;
  /** Sidecar ports that must never be redirected inbound (health 15021, stats 15090, inbound itself). */
  proxyPorts?: readonly number[];
}

export class IptablesConfigError extends Error {
  override name = 'IptablesConfigError';
}

const CIDR_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;

function parsePorts(value: string, what: string): number[] {
  const out: number[] = [];
  for (const raw of value.split(',')) {
    const s = raw.trim();
    if (s === '') continue;
    if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 65535) {
      throw new IptablesConfigError(`${what}: "${s}" is not a port number (1-65535)`);
    }
    const n = Number(s);
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** The CIDRs of an IP-range annotation, by family (a bare address is a /32 or /128). */
function parseCidrs(value: string, what: string): { v4: string[]; v6: string[] } {
  const out = { v4: [] as string[], v6: [] as string[] };
  for (const raw of value.split(',')) {
    const s = raw.trim();
    if (s === '') continue;
    let cidr: string;
    let list: string[];
    if (s.includes(':')) {
      const slash = s.indexOf('/');
      const addr = slash < 0 ? s : s.slice(0, slash);
      const bitsText = slash < 0 ? '128' : s.slice(slash + 1);
      if (!isIPv6(addr) || !/^\d{1,3}$/.test(bitsText) || Number(bitsText) > 128) throw new IptablesConfigError(`${what}: "${s}" is not an IPv4 or IPv6 CIDR`);
      cidr = `${addr}/${Number(bitsText)}`;
      list = out.v6;
    } else {
      const m = CIDR_RE.exec(s);
      const octetsOk = m !== null && [m[1], m[2], m[3], m[4]].every((o) => Number(o) <= 255);
      const bits = m?.[5] === undefined ? 32 : Number(m[5]);
      if (!m || !octetsOk || bits > 32) throw new IptablesConfigError(`${what}: "${s}" is not an IPv4 or IPv6 CIDR`);
      cidr = m[5] === undefined ? `${s}/32` : s;
      list = out.v4;
    }
    if (!list.includes(cidr)) list.push(cidr);
  }
  return out;
}

/**
 * Lines for `iptables-restore --noflush` (`family` 4, the default) or `ip6tables-restore --noflush` (6). Throws
 * IptablesConfigError on a malformed annotation, naming it, so that the injector can refuse the pod instead of
 * installing a half-working capture. IPv6: an include range list without IPv6 members captures no IPv6 outbound.
 */
export function iptablesRules(opts: IptablesOptions, annotations: Readonly<Record<string, string>> = {}, family: 4 | 6 = 4): string[] {
  const outboundPort = opts.outboundPort ?? 15001; // Istio: proxy outbound capture port
  const inboundPort = opts.inboundPort ?? 15006; // Istio: proxy inbound capture port
  const uid = opts.proxyUid ?? 1337;
  const gid = opts.proxyGid ?? 1337;
  const proxyPorts = opts.proxyPorts ?? [15021, 15090, inboundPort];
  const A = TRAFFIC_ANNOTATIONS;

  // Istio's default: every inbound port (the sidecar's own excluded below); the annotation narrows it.
  const includeInRaw = annotations[A.includeInboundPorts] ?? '*';
  const includeAllInbound = includeInRaw.trim() === '*';
  const includeIn = includeAllInbound ? [] : parsePorts(includeInRaw, A.includeInboundPorts);
  const excludeIn = [...proxyPorts];
  for (const p of parsePorts(annotations[A.excludeInboundPorts] ?? '', A.excludeInboundPorts)) {
    if (!excludeIn.includes(p)) excludeIn.push(p);
  }
  const includeOutRaw = annotations[A.includeOutboundIPRanges] ?? '*'; // Istio default: capture all
  const includeAllOutbound = includeOutRaw.trim() === '*';
  const pick = (c: { v4: string[]; v6: string[] }): string[] => (family === 4 ? c.v4 : c.v6);
  const includeOutCidrs = includeAllOutbound ? [] : pick(parseCidrs(includeOutRaw, A.includeOutboundIPRanges));
  const excludeOutCidrs = pick(parseCidrs(annotations[A.excludeOutboundIPRanges] ?? '', A.excludeOutboundIPRanges));
  const includeOutPorts = parsePorts(annotations[A.includeOutboundPorts] ?? '', A.includeOutboundPorts);
  const excludeOutPorts = parsePorts(annotations[A.excludeOutboundPorts] ?? '', A.excludeOutboundPorts);

  const lines: string[] = [
    '*nat',
    ':REMORA_INBOUND - [0:0]',
    ':REMORA_IN_REDIRECT - [0:0]',
    ':REMORA_OUTPUT - [0:0]',
    ':REMORA_REDIRECT - [0:0]',
    `-A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports ${inboundPort}`,
    `-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports ${outboundPort}`,
  ];

  // Inbound: PREROUTING sees only traffic arriving from outside the pod.
  const inboundPorts = includeIn.filter((p) => !excludeIn.includes(p));
  if (includeAllInbound || inboundPorts.length > 0) {
    lines.push('-A PREROUTING -p tcp -j REMORA_INBOUND');
    if (includeAllInbound) {
      for (const p of excludeIn) lines.push(`-A REMORA_INBOUND -p tcp --dport ${p} -j RETURN`);
      lines.push('-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT');
    } else {
      for (const p of inboundPorts) lines.push(`-A REMORA_INBOUND -p tcp --dport ${p} -j REMORA_IN_REDIRECT`);
    }
  }

  // Outbound: the proxy's own connections (UID/GID 1337) and loopback must pass, or traffic loops.
  lines.push(
    '-A OUTPUT -p tcp -j REMORA_OUTPUT',
    `-A REMORA_OUTPUT -m owner --uid-owner ${uid} -j RETURN`,
    `-A REMORA_OUTPUT -m owner --gid-owner ${gid} -j RETURN`,
    '-A REMORA_OUTPUT -o lo -j RETURN',
    family === 4 ? '-A REMORA_OUTPUT -d 127.0.0.1/32 -j RETURN' : '-A REMORA_OUTPUT -d ::1/128 -j RETURN',
  );
  for (const p of excludeOutPorts) lines.push(`-A REMORA_OUTPUT -p tcp --dport ${p} -j RETURN`);
  for (const c of excludeOutCidrs) lines.push(`-A REMORA_OUTPUT -d ${c} -j RETURN`);
  // includeOutboundPorts captures these ports whatever the IP range says (as in Istio).
  for (const p of includeOutPorts) lines.push(`-A REMORA_OUTPUT -p tcp --dport ${p} -j REMORA_REDIRECT`);
  if (includeAllOutbound) lines.push('-A REMORA_OUTPUT -j REMORA_REDIRECT');
  else for (const c of includeOutCidrs) lines.push(`-A REMORA_OUTPUT -d ${c} -j REMORA_REDIRECT`);
  lines.push('COMMIT');
  return lines;
}
