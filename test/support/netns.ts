/**
 * Network namespaces for tests of what crosses a network: a "pod" and a "world" joined by a veth pair, with addresses
 * the test assigns (198.18.0.0/15, the benchmarking range, never routed anywhere else). Needs root with iproute2;
 * `netnsAvailable()` says why not, so a suite can skip with a clear message. Every process started in a namespace is
 * tracked and ended by PID in `destroy()`, which also deletes the namespaces (the veth pair goes with them).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface NetnsPair {
  pod: string;
  world: string;
  podIp: string;
  worldIp: string;
  /** With `ipv6`: fd00:<subnet>::2 (pod) and ::1 (world), the pod's IPv6 default route through the world. */
  podIp6?: string;
  worldIp6?: string;
  /** Run a command in a namespace; resolves with its output (throws on a non-zero exit). */
  exec(ns: string, cmd: string[], input?: string): string;
  /** Start a long-running process in a namespace, optionally as another user (setpriv); resolves once `readyLine` is printed. */
  start(ns: string, cmd: string[], opts?: { uid?: number; gid?: number; readyLine?: RegExp; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<{ child: ChildProcess; output: () => string; match: RegExpExecArray | null }>;
  destroy(): void;
}

/**
 * `setpriv` as another user, keeping CAP_DAC_READ_SEARCH only: the checkout may sit below directories only root can
 * traverse (a CI run's `mktemp -d` folder is 0700), and the process must still read node, dist/ and node_modules.
 * Reading and traversal is all that capability grants; the capture rules exempt the proxy by UID/GID, unchanged.
 */
export function asUser(uid: number, gid = uid): string[] {
  return ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--inh-caps=+dac_read_search', '--ambient-caps=+dac_read_search'];
}

/** undefined when namespaces can be made here, else the reason. */
export function netnsAvailable(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root';
  const probe = `rmrprobe${process.pid % 100000}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'pipe' });
  } catch (err) {
    return `cannot create a network namespace (${(err as Error).message.split('\n')[0]})`;
  }
  try {
    execFileSync('iptables', ['--version'], { stdio: 'pipe' });
  } catch {
    return 'iptables is not installed';
  }
  return undefined;
}

function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], input, timeout: 20_000 });
}

/**
 * Create the pair. `subnet` picks 198.18.<subnet>.0/24 (and fd00:<subnet>::/64 with `ipv6`) so parallel suites do
 * not collide.
 */
export function createNetnsPair(tag: string, subnet: number, opts: { ipv6?: boolean } = {}): NetnsPair {
  const id = `${tag}${process.pid % 100000}`;
  const pod = `rmr-pod-${id}`;
  const world = `rmr-world-${id}`;
  const vp = `rp${id}`.slice(0, 15);
  const vw = `rw${id}`.slice(0, 15);
  const podIp = `198.18.${subnet}.2`;
  const worldIp = `198.18.${subnet}.1`;
  const children: ChildProcess[] = [];
  const destroy = (): void => {
    for (const c of children) if (c.exitCode === null && c.pid !== undefined) { try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }
    for (const ns of [pod, world]) { try { run('ip', ['netns', 'del', ns]); } catch { /* not there */ } }
  };
  try {
    run('ip', ['netns', 'add', pod]);
    run('ip', ['netns', 'add', world]);
    run('ip', ['link', 'add', vp, 'type', 'veth', 'peer', 'name', vw]);
    run('ip', ['link', 'set', vp, 'netns', pod]);
    run('ip', ['link', 'set', vw, 'netns', world]);
    for (const [ns, dev, ip] of [[pod, vp, podIp], [world, vw, worldIp]] as const) {
      run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', dev]);
      run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // The pod reaches everything (Service VIPs included) through the world, as a pod through its node.
    run('ip', ['-n', pod, 'route', 'add', 'default', 'via', worldIp]);
    if (opts.ipv6) {
      // nodad: usable at once (no duplicate address detection wait).
      run('ip', ['-n', pod, 'addr', 'add', `fd00:${subnet}::2/64`, 'dev', vp, 'nodad']);
      run('ip', ['-n', world, 'addr', 'add', `fd00:${subnet}::1/64`, 'dev', vw, 'nodad']);
      run('ip', ['-n', pod, '-6', 'route', 'add', 'default', 'via', `fd00:${subnet}::1`]);
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    pod, world, podIp, worldIp, destroy,
    ...(opts.ipv6 ? { podIp6: `fd00:${subnet}::2`, worldIp6: `fd00:${subnet}::1` } : {}),
    exec(ns, cmd, input) {
      return run('ip', ['netns', 'exec', ns, ...cmd], input);
    },
    start(ns, cmd, opts = {}) {
      const user = opts.uid === undefined ? [] : asUser(opts.uid, opts.gid ?? opts.uid);
      const child = spawn('ip', ['netns', 'exec', ns, ...user, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
      children.push(child);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const output = (): string => out;
      if (opts.readyLine === undefined) return Promise.resolve({ child, output, match: null });
      const re = opts.readyLine;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`not ready within ${opts.timeoutMs ?? 15_000} ms: ${cmd.join(' ')}\n${out}`)), opts.timeoutMs ?? 15_000);
        const check = (): void => {
          const m = re.exec(out);
          if (m !== null) { clearTimeout(timer); resolve({ child, output, match: m }); }
        };
        child.stdout!.on('data', check);
        child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited with ${code} before ready: ${cmd.join(' ')}\n${out}`)); });
      });
    },
  };
}

const PEER = fileURLToPath(new URL('./netns-peer.mjs', import.meta.url));

/** What a netns-peer.mjs client prints. */
export interface PeerResult {
  ok: boolean;
  status?: number;
  body?: string;
  data?: string;
  error?: string;
  firstByteMs?: number;
  ms: number;
}

/** Run one netns-peer.mjs client operation in the pod (as `appUid`) or in the world, and read its result. */
export function peerClient(pair: NetnsPair, ns: 'pod' | 'world', op: Record<string, unknown>, appUid: number): PeerResult {
  const name = ns === 'pod' ? pair.pod : pair.world;
  const asApp = ns === 'pod' ? asUser(appUid) : [];
  const out = pair.exec(name, [...asApp, process.execPath, PEER, 'client', JSON.stringify(op)]);
  return JSON.parse(out.trim().split('\n').pop()!) as PeerResult;
}
