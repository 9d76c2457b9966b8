// The raw TCP scenario of `npm run bench`: the same byte traffic direct to an echo server, through nginx's stream
// module (`proxy_pass` at L4) and through Remora's TCP proxy, side by side in one run, interleaved per round. Three
// loads: echo round trips on long-lived connections (what a database or cache client does), bulk bytes both ways
// (the pipe's throughput and CPU per GiB), and connection churn (open, one round trip, close: the per-connection cost
// of routing, admission and records). Remora is reached through HTTP CONNECT (`--connect`): the bench cannot redirect
// with iptables, and CONNECT hands the connection to the same TCP proxy a captured one gets, after one extra round trip.
import net from 'node:net';
import { clockTicksPerSec } from '../src/bench/proc.js';
import { median } from '../src/bench/histogram.js';
import { done, measure, type Counts, type LoadResult, type ProtocolResult } from './protocols.js';

/** Where one target's connections go and which processes are its proxy. */
export interface TcpTarget {
  name: string;
  port: number;
  pids: number[];
  /** Open each connection with `CONNECT <authority>` first (Remora's --connect). */
  connect?: string;
}

export interface TcpBulkResult {
  /** MiB echoed back to the client per second of wall time (each byte crossed the proxy twice). */
  mibPerSecond: number;
  /** ... per CPU-second the proxy's processes used. */
  mibPerCpuSecond: number;
  /** CPU ms the proxy used per GiB echoed. */
  cpuMsPerGiB: number;
  errors: number;
}

export interface TcpScenario {
  durationMs: number;
  rounds: number;
  /** Connections with one 64-byte round trip in flight each. */
  echoConnections: number;
  /** Connections streaming 64 KiB writes, up to 1 MiB in flight each. */
  bulkConnections: number;
  /** Concurrent open → round trip → close loops. */
  churnConcurrency: number;
  echo: Record<string, ProtocolResult>;
  bulk: Record<string, TcpBulkResult>;
  churn: Record<string, ProtocolResult>;
  notes: string[];
}

/** nginx with the stream module: one worker, L4 `proxy_pass` to the echo server, nothing else. */
export function nginxStreamConf(dir: string, listenPort: number, upstreamPort: number, modulePath: string): string {
  return `load_module ${modulePath};
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
stream {
  server {
    listen 127.0.0.1:${listenPort} backlog=4096;
    proxy_pass 127.0.0.1:${upstreamPort};
  }
}
`;
}

/** Debian's stream module (libnginx-mod-stream), where nginx loads dynamic modules from. */
export const NGINX_STREAM_MODULES = ['/usr/lib/nginx/modules/ngx_stream_module.so', '/usr/share/nginx/modules/ngx_stream_module.so'];

/** Remora's config: one TCP service whose endpoint is the echo server (a connection to it is balanced per connection). */
export const TCP_AUTHORITY = 'tcp.bench.local:9000';
export function tcpYaml(upstreamPort: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: tcp-bench, namespace: default }
spec:
  hosts: [tcp.bench.local]
  ports: [{ number: 9000, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tcp: ${upstreamPort} } }]
`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MSG = Buffer.alloc(64, 0x74);
const CHUNK = Buffer.alloc(64 * 1024, 0x75);
const MAX_IN_FLIGHT = 1 << 20;

/** A connection to the target, after its CONNECT answer when it has one; undefined when it could not be opened. */
function open(t: TcpTarget): Promise<net.Socket | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({ port: t.port, host: '127.0.0.1', noDelay: true });
    s.once('error', () => { s.destroy(); resolve(undefined); });
    s.once('connect', () => {
      if (t.connect === undefined) { resolve(s); return; }
      s.write(`CONNECT ${t.connect} HTTP/1.1\r\nhost: ${t.connect}\r\n\r\n`);
      let head = '';
      const onData = (d: Buffer): void => {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        s.off('data', onData);
        if (head.startsWith('HTTP/1.1 200')) resolve(s);
        else { s.destroy(); resolve(undefined); }
      };
      s.on('data', onData);
    });
  });
}

/** Echo round trips of 64 bytes, one in flight per connection, over `n` long-lived connections. */
async function echoLoad(t: TcpTarget, n: number, durationMs: number): Promise<LoadResult> {
  const socks = await Promise.all(Array.from({ length: n }, () => open(t)));
  const c: Counts = { calls: 0, errors: socks.filter((s) => s === undefined).length, latencies: [] };
  let stop = false;
  const loops = socks.filter((s): s is net.Socket => s !== undefined).map((s) => new Promise<void>((resolve) => {
    let got = 0;
    let t0 = 0;
    const send = (): void => {
      if (stop) { s.destroy(); resolve(); return; }
      got = 0;
      t0 = performance.now();
      s.write(MSG);
    };
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= MSG.length) { done(c, true, t0); send(); }
    });
    s.on('error', () => { c.errors++; resolve(); });
    s.on('close', () => resolve());
    send();
  }));
  const r = await measure(c, t.pids, durationMs);
  stop = true;
  await Promise.race([Promise.all(loops), sleep(2000)]);
  for (const s of socks) s?.destroy();
  return r;
}

/** Bytes both ways: each connection keeps up to 1 MiB of 64 KiB writes in flight; `calls` counts bytes echoed. */
async function bulkLoad(t: TcpTarget, n: number, durationMs: number): Promise<LoadResult> {
  const socks = await Promise.all(Array.from({ length: n }, () => open(t)));
  const c: Counts = { calls: 0, errors: socks.filter((s) => s === undefined).length, latencies: [] };
  let stop = false;
  for (const s of socks) {
    if (s === undefined) continue;
    let sent = 0;
    let received = 0;
    let blocked = false;
    const pump = (): void => {
      while (!stop && !blocked && sent - received < MAX_IN_FLIGHT) {
        sent += CHUNK.length;
        if (!s.write(CHUNK)) blocked = true;
      }
    };
    s.on('drain', () => { blocked = false; pump(); });
    s.on('data', (d: Buffer) => { received += d.length; c.calls += d.length; pump(); });
    s.on('error', () => { if (!stop) c.errors++; });
    pump();
  }
  const r = await measure(c, t.pids, durationMs);
  stop = true;
  for (const s of socks) s?.destroy();
  return r;
}

/** Connection churn: `n` loops of open (CONNECT included), one 64-byte round trip, FIN, wait for the close. */
async function churnLoad(t: TcpTarget, n: number, durationMs: number): Promise<LoadResult> {
  const c: Counts = { calls: 0, errors: 0, latencies: [] };
  let stop = false;
  const one = async (): Promise<void> => {
    const t0 = performance.now();
    const s = await open(t);
    if (s === undefined) { done(c, false, t0); return; }
    const ok = await new Promise<boolean>((resolve) => {
      let got = 0;
      let echoed = false;
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (!echoed && got >= MSG.length) { echoed = true; s.end(); }
      });
      s.on('error', () => resolve(false));
      s.on('close', () => resolve(echoed));
      s.write(MSG);
    });
    done(c, ok, t0);
  };
  const loops = Array.from({ length: n }, async () => { while (!stop) await one(); });
  const r = await measure(c, t.pids, durationMs);
  stop = true;
  await Promise.race([Promise.all(loops), sleep(3000)]);
  return r;
}

function perCall(r: LoadResult, hz: number): ProtocolResult {
  const cpuS = r.cpuTicks / hz;
  return {
    perSecond: (r.calls * 1000) / r.wallMs,
    perCpuSecond: cpuS > 0 ? r.calls / cpuS : 0,
    cpuMsPer1k: r.calls > 0 ? (cpuS * 1000 * 1000) / r.calls : 0,
    p50Ms: r.latencies.length ? median(r.latencies) : 0,
    errors: r.errors,
  };
}

function perByte(r: LoadResult, hz: number): TcpBulkResult {
  const cpuS = r.cpuTicks / hz;
  const mib = r.calls / (1 << 20);
  return {
    mibPerSecond: (mib * 1000) / r.wallMs,
    mibPerCpuSecond: cpuS > 0 ? mib / cpuS : 0,
    cpuMsPerGiB: mib > 0 ? (cpuS * 1000 * 1024) / mib : 0,
    errors: r.errors,
  };
}

const medianOf = <T extends object>(rs: T[]): T => {
  const out = {} as Record<string, number>;
  for (const k of Object.keys(rs[0]!)) {
    const vs = rs.map((r) => (r as Record<string, number>)[k]!);
    out[k] = k === 'errors' ? vs.reduce((a, b) => a + b, 0) : median(vs);
  }
  return out as T;
};

/** Every load against every target, interleaved per round (A B C A B C …); medians over rounds, errors summed. */
export async function tcpScenario(targets: TcpTarget[], opts: { durationMs: number; rounds: number; log: (s: string) => void }): Promise<TcpScenario> {
  const hz = clockTicksPerSec();
  const echoN = 32;
  const bulkN = 4;
  const churnN = 8;
  const per = { echo: {} as Record<string, ProtocolResult[]>, bulk: {} as Record<string, TcpBulkResult[]>, churn: {} as Record<string, ProtocolResult[]> };
  const notes: string[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const t of targets) {
      const e = perCall(await echoLoad(t, echoN, opts.durationMs), hz);
      await sleep(300);
      const b = perByte(await bulkLoad(t, bulkN, opts.durationMs), hz);
      await sleep(300);
      const ch = perCall(await churnLoad(t, churnN, opts.durationMs), hz);
      await sleep(300);
      for (const [what, n] of [['echo', e.errors], ['bulk', b.errors], ['churn', ch.errors]] as const) if (n > 0) notes.push(`tcp ${what}: ${t.name} round ${round}: ${n} failed connections or round trips`);
      opts.log(`tcp ${t.name} round ${round}: echo ${e.perSecond.toFixed(0)}/s (${e.perCpuSecond.toFixed(0)} per CPU-s, p50 ${e.p50Ms.toFixed(3)} ms); bulk ${b.mibPerSecond.toFixed(0)} MiB/s (${b.cpuMsPerGiB.toFixed(0)} CPU ms/GiB); churn ${ch.perSecond.toFixed(0)} conn/s (${ch.perCpuSecond.toFixed(0)} per CPU-s, p50 ${ch.p50Ms.toFixed(3)} ms)`);
      (per.echo[t.name] ??= []).push(e);
      (per.bulk[t.name] ??= []).push(b);
      (per.churn[t.name] ??= []).push(ch);
    }
  }
  const out: TcpScenario = { durationMs: opts.durationMs, rounds: opts.rounds, echoConnections: echoN, bulkConnections: bulkN, churnConcurrency: churnN, echo: {}, bulk: {}, churn: {}, notes };
  for (const t of targets) {
    out.echo[t.name] = medianOf(per.echo[t.name]!);
    out.bulk[t.name] = medianOf(per.bulk[t.name]!);
    out.churn[t.name] = medianOf(per.churn[t.name]!);
  }
  return out;
}
