/**
 * Upstream hosts across a real network for the reliability suite: one network namespace joined to the test's own
 * namespace by a veth pair, several addresses on its side (198.19.<subnet>.2, .3, …; 198.18.0.0/15 is the
 * benchmarking range, routed nowhere else), an HTTP server on each (test/support/netns-peer.mjs), and faults made
 * with iptables inside that namespace only (REJECT with a TCP reset, DROP, random loss). `destroy()` ends the server
 * by PID and deletes the namespace; the veth pair goes with it, and nothing is left in the test's own namespace.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from '../../support/proxy-harness.js';

export interface NetnsHosts {
  ns: string;
  /** The hosts' addresses, in order. */
  ips: string[];
  port: number;
  /** iptables in the namespace: drop or reset what goes to one host (INPUT, by destination address). */
  fault(ip: string, kind: 'reject' | 'drop' | 'loss5'): void;
  clear(ip: string): void;
  destroy(): void;
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
}

function ruleFor(ip: string, port: number, kind: 'reject' | 'drop' | 'loss5'): string[] {
  const match = ['-d', ip, '-p', 'tcp', '--dport', String(port)];
  if (kind === 'reject') return [...match, '-j', 'REJECT', '--reject-with', 'tcp-reset'];
  if (kind === 'drop') return [...match, '-j', 'DROP'];
  // tc netem is not in this kernel (RELIABILITY.md §3): packet loss by iptables' statistic match, both directions.
  return [...match, '-m', 'statistic', '--mode', 'random', '--probability', '0.05', '-j', 'DROP'];
}

export async function createNetnsHosts(tag: string, subnet: number, count: number, port = 8080): Promise<NetnsHosts> {
  const id = `${tag}${process.pid % 100000}`;
  const ns = `rmr-${id}`;
  const vr = `vr${id}`.slice(0, 15);
  const vh = `vh${id}`.slice(0, 15);
  const gw = `198.19.${subnet}.1`;
  const ips = Array.from({ length: count }, (_, i) => `198.19.${subnet}.${i + 2}`);
  let server: ChildProcess | undefined;
  const rules = new Map<string, string[]>();
  const destroy = (): void => {
    if (server?.pid !== undefined && server.exitCode === null) { try { process.kill(server.pid, 'SIGKILL'); } catch { /* gone */ } }
    try { run('ip', ['netns', 'del', ns]); } catch { /* not there */ }
    try { run('ip', ['link', 'del', vr]); } catch { /* went with the namespace */ }
  };
  try {
    run('ip', ['netns', 'add', ns]);
    run('ip', ['link', 'add', vr, 'type', 'veth', 'peer', 'name', vh]);
    run('ip', ['link', 'set', vh, 'netns', ns]);
    run('ip', ['addr', 'add', `${gw}/24`, 'dev', vr]);
    run('ip', ['link', 'set', vr, 'up']);
    for (const ip of ips) run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', vh]);
    run('ip', ['-n', ns, 'link', 'set', vh, 'up']);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const spec = ips.map((ip, i) => ({ kind: 'http', host: ip, port, name: `h${i}` }));
    server = spawn('ip', ['netns', 'exec', ns, process.execPath, join(REPO, 'test/support/netns-peer.mjs'), 'serve', JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new Error(`hosts not listening: ${out}`)), 10_000);
      server!.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('listening')) { clearTimeout(t); resolve(); } });
      server!.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
      server!.once('exit', (code) => { clearTimeout(t); reject(new Error(`hosts exited ${code}: ${out}`)); });
    });
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    ns, ips, port, destroy,
    fault(ip, kind) {
      const rule = ruleFor(ip, port, kind);
      run('ip', ['netns', 'exec', ns, 'iptables', '-I', 'INPUT', ...rule]);
      if (kind === 'loss5') run('ip', ['netns', 'exec', ns, 'iptables', '-I', 'OUTPUT', ...rule.map((a) => (a === '-d' ? '-s' : a === '--dport' ? '--sport' : a))]);
      rules.set(ip, rule);
    },
    clear(ip) {
      const rule = rules.get(ip);
      if (rule === undefined) return;
      run('ip', ['netns', 'exec', ns, 'iptables', '-D', 'INPUT', ...rule]);
      if (rule.includes('statistic')) run('ip', ['netns', 'exec', ns, 'iptables', '-D', 'OUTPUT', ...rule.map((a) => (a === '-d' ? '-s' : a === '--dport' ? '--sport' : a))]);
      rules.delete(ip);
    },
  };
}
