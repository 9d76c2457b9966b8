// The gRPC and WebSocket scenarios of `npm run bench`: the same call load through nginx (grpc_pass; proxy_pass with
// Upgrade) and through Remora, side by side in one run, and how many calls (or round trips) each proxy serves per
// CPU-second of its own. The load is closed-loop (a fixed number of calls in flight), from this process on the load
// CPU; the upstream runs in a child on the same CPU; the proxies on the proxy CPU.
import http2 from 'node:http2';
import { join } from 'node:path';
import { writeFileSync, mkdirSync } from 'node:fs';
import { WebSocket } from 'ws';
import { userSysTicks } from './anatomy.js';
import { clockTicksPerSec } from '../src/bench/proc.js';
import { median } from '../src/bench/histogram.js';
import { nginxPreamble } from './configs.js';

/** One proxy's figures in a protocol scenario. */
export interface ProtocolResult {
  /** Calls (gRPC) or round trips (WebSocket) completed per second of wall time. */
  perSecond: number;
  /** ... per CPU-second the proxy's processes used (the throughput-per-core figure). */
  perCpuSecond: number;
  /** CPU ms the proxy used per 1,000 calls. */
  cpuMsPer1k: number;
  /** Median latency of a call (ms). */
  p50Ms: number;
  errors: number;
}

export interface ProtocolScenario {
  /** Calls (or round trips) in flight at once. */
  concurrency: number;
  durationMs: number;
  rounds: number;
  targets: Record<string, ProtocolResult>;
  notes: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A gRPC-framed unary call's request: one message of `n` bytes (5-byte gRPC frame header). */
function grpcFrame(n: number): Buffer {
  const b = Buffer.alloc(5 + n, 0x61);
  b[0] = 0;
  b.writeUInt32BE(n, 1);
  return b;
}

/** nginx as a gRPC proxy: HTTP/2 cleartext listener, grpc_pass to the upstream over kept-alive HTTP/2. */
export function nginxGrpcConf(dir: string, listenPort: number, upstreamPort: number): string {
  return `${nginxPreamble(dir)}  keepalive_requests 1000000;
  http2_max_requests 1000000;
  upstream grpcup {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${listenPort} http2 backlog=4096;
    location / {
      grpc_pass grpc://grpcup;
    }
  }
}
`;
}

/** nginx as a WebSocket proxy: HTTP/1.1 with the Upgrade headers passed on. */
export function nginxWsConf(dir: string, listenPort: number, upstreamPort: number): string {
  return `${nginxPreamble(dir)}  server {
    listen 127.0.0.1:${listenPort} backlog=4096;
    location / {
      proxy_pass http://127.0.0.1:${upstreamPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 3600s;
    }
  }
}
`;
}

/** Remora's config for both scenarios: a GRPC port and a plain HTTP one (WebSocket), each to its upstream. */
export function protocolsYaml(grpcPort: number, wsPort: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: grpc-bench, namespace: default }
spec:
  hosts: [grpc.bench.local]
  ports: [{ number: 50051, name: grpc, protocol: GRPC }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { grpc: ${grpcPort} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ws-bench, namespace: default }
spec:
  hosts: [ws.bench.local]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${wsPort} } }]
`;
}

/** Where each target's load goes and which processes are its proxy. */
export interface ProtocolTarget {
  name: string;
  port: number;
  /** :authority (gRPC) or Host (WebSocket). */
  authority: string;
  pids: number[];
}

/** CPU ticks (user + system) the processes used so far; a process that is gone counts nothing. */
export function cpuTicks(pids: number[]): number {
  let t = 0;
  for (const p of pids) {
    try {
      const u = userSysTicks(p);
      t += u.user + u.sys;
    } catch { /* a process that is gone counts nothing */ }
  }
  return t;
}

export interface LoadResult { calls: number; errors: number; latencies: number[]; cpuTicks: number; wallMs: number }
export interface Counts { calls: number; errors: number; latencies: number[] }

/** After a warm-up, count what completes in `durationMs` and the CPU ticks the proxy's processes used meanwhile. */
export async function measure(c: Counts, pids: number[], durationMs: number): Promise<LoadResult> {
  await sleep(Math.min(1000, durationMs / 4));
  const c0 = c.calls;
  const e0 = c.errors;
  c.latencies.length = 0;
  const tick0 = cpuTicks(pids);
  const w0 = performance.now();
  await sleep(durationMs);
  const tick1 = cpuTicks(pids);
  return { calls: c.calls - c0, errors: c.errors - e0, latencies: c.latencies.slice(), cpuTicks: tick1 - tick0, wallMs: performance.now() - w0 };
}

/** Count one call (its latency from `t0`) or one error. */
export function done(c: Counts, ok: boolean, t0: number): void {
  if (!ok) { c.errors++; return; }
  c.calls++;
  if (c.latencies.length < 200_000) c.latencies.push(performance.now() - t0);
}

/** Closed-loop unary gRPC calls over `connections` HTTP/2 connections for `durationMs`. */
async function grpcLoad(t: ProtocolTarget, concurrency: number, durationMs: number, connections: number): Promise<LoadResult> {
  const sessions = Array.from({ length: connections }, () => http2.connect(`http://127.0.0.1:${t.port}`));
  await Promise.all(sessions.map((s) => new Promise<void>((r) => { s.once('connect', () => r()); s.once('error', () => r()); })));
  const body = grpcFrame(64);
  const c: Counts = { calls: 0, errors: 0, latencies: [] };
  let stop = false;
  const one = (s: http2.ClientHttp2Session): Promise<void> => new Promise((resolve) => {
    const t0 = performance.now();
    const st = s.request({ ':method': 'POST', ':path': '/bench.Echo/Unary', ':authority': t.authority, 'content-type': 'application/grpc', te: 'trailers' });
    let status: string | undefined;
    st.on('response', (h) => { if (h['grpc-status'] !== undefined) status = String(h['grpc-status']); });
    st.on('trailers', (h) => { status = String(h['grpc-status']); });
    st.on('data', () => {});
    st.on('close', () => { done(c, status === '0', t0); resolve(); });
    st.on('error', () => {});
    st.end(body);
  });
  const worker = async (i: number): Promise<void> => {
    const s = sessions[i % sessions.length]!;
    while (!stop) await one(s);
  };
  const workers = Array.from({ length: concurrency }, (_, i) => worker(i));
  const r = await measure(c, t.pids, durationMs);
  stop = true;
  await Promise.all(workers);
  for (const s of sessions) s.close();
  return r;
}

/** Closed-loop WebSocket round trips (send 64 bytes, wait for the echo) over `concurrency` connections. */
async function wsLoad(t: ProtocolTarget, concurrency: number, durationMs: number): Promise<LoadResult> {
  const sockets = await Promise.all(Array.from({ length: concurrency }, () => new Promise<WebSocket | undefined>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${t.port}/echo`, { headers: { host: t.authority } });
    ws.once('open', () => resolve(ws));
    ws.once('error', () => resolve(undefined));
  })));
  const c: Counts = { calls: 0, errors: sockets.filter((s) => s === undefined).length, latencies: [] };
  let stop = false;
  const msg = Buffer.alloc(64, 0x62);
  const loops = sockets.filter((s): s is WebSocket => s !== undefined).map((ws) => new Promise<void>((resolve) => {
    let t0 = 0;
    const send = (): void => {
      if (stop) { ws.close(); resolve(); return; }
      t0 = performance.now();
      ws.send(msg);
    };
    ws.on('message', () => { done(c, true, t0); send(); });
    ws.on('error', () => { c.errors++; resolve(); });
    ws.on('close', () => resolve());
    send();
  }));
  const r = await measure(c, t.pids, durationMs);
  stop = true;
  await Promise.race([Promise.all(loops), sleep(2000)]);
  for (const s of sockets) s?.terminate();
  return r;
}

/** Run `kind` against every target, interleaved per round; medians over rounds. */
export async function protocolScenario(kind: 'grpc' | 'websocket', targets: ProtocolTarget[], opts: { concurrency: number; durationMs: number; rounds: number; log: (s: string) => void }): Promise<ProtocolScenario> {
  const hz = clockTicksPerSec();
  const per: Record<string, ProtocolResult[]> = {};
  const notes: string[] = [];
  for (let round = 1; round <= opts.rounds; round++) {
    for (const t of targets) {
      const r = kind === 'grpc' ? await grpcLoad(t, opts.concurrency, opts.durationMs, 4) : await wsLoad(t, opts.concurrency, opts.durationMs);
      const cpuS = r.cpuTicks / hz;
      const res: ProtocolResult = {
        perSecond: (r.calls * 1000) / r.wallMs,
        perCpuSecond: cpuS > 0 ? r.calls / cpuS : 0,
        cpuMsPer1k: r.calls > 0 ? (cpuS * 1000 * 1000) / r.calls : 0,
        p50Ms: r.latencies.length ? median(r.latencies) : 0,
        errors: r.errors,
      };
      if (r.errors > 0) notes.push(`${kind}: ${t.name} round ${round}: ${r.errors} failed calls`);
      opts.log(`${kind} ${t.name} round ${round}: ${res.perSecond.toFixed(0)}/s, ${res.perCpuSecond.toFixed(0)} per CPU-second, ${res.cpuMsPer1k.toFixed(1)} CPU ms/1k, p50 ${res.p50Ms.toFixed(3)} ms, errors ${r.errors}`);
      (per[t.name] ??= []).push(res);
      await sleep(300);
    }
  }
  const out: ProtocolScenario = { concurrency: opts.concurrency, durationMs: opts.durationMs, rounds: opts.rounds, targets: {}, notes };
  for (const [name, rs] of Object.entries(per)) {
    out.targets[name] = {
      perSecond: median(rs.map((r) => r.perSecond)),
      perCpuSecond: median(rs.map((r) => r.perCpuSecond)),
      cpuMsPer1k: median(rs.map((r) => r.cpuMsPer1k)),
      p50Ms: median(rs.map((r) => r.p50Ms)),
      errors: rs.reduce((s, r) => s + r.errors, 0),
    };
  }
  return out;
}

/** Write an nginx config for a protocol peer into its own directory. */
export function writeNginxDir(dir: string, conf: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  return file;
}
