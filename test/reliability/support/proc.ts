/**
 * Measurement helpers for the reliability suite's load and lifecycle tests: a process's open fds and RSS from /proc,
 * an open-loop load run through Remora's own generator (src/bench/generator.ts: raw keep-alive sockets, latency from
 * each request's intended send time), slowhttptest runs stopped by PID, and a plain upstream.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { runLoad, type LoadOptions, type RunOutcome } from '../../../src/bench/generator.js';

/** Open file descriptors of `pid` (entries of /proc/PID/fd); -1 when the process is gone. */
export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

/** Resident set size of `pid` in bytes (VmRSS), or -1 when the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : -1;
  } catch {
    return -1;
  }
}

/** Sum of fds over a process and its children (a --concurrency primary and its workers). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export interface LoadSummary {
  scheduled: number;
  completed: number;
  errors: number;
  errorKinds: Record<string, number>;
  statusCounts: Record<string, number>;
  p50: number;
  p99: number;
  max: number;
  rps: number;
}

export function summarize(o: RunOutcome): LoadSummary {
  const errors = Object.values(o.errors).reduce((a, b) => a + b, 0);
  return {
    scheduled: o.scheduled,
    completed: o.completed,
    errors,
    errorKinds: Object.fromEntries(Object.entries(o.errors).filter(([, v]) => v > 0)),
    statusCounts: o.statusCounts,
    p50: round(o.latency.at(50)),
    p99: round(o.latency.at(99)),
    max: round(o.latency.at(100)),
    rps: Math.round(o.achievedRps),
  };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** An open-loop run (fixed rate) against `url` with a Host header; latency measured from the intended send times. */
export async function openLoop(url: string, host: string, opts: Partial<LoadOptions>): Promise<LoadSummary> {
  const out = await runLoad(url, {
    mode: 'open', arrival: 'fixed', warmupMs: 500, timeoutMs: 5000, connections: 16, preciseTimer: false,
    ...opts,
    headers: [['host', host], ...(opts.headers ?? [])],
  });
  return summarize(out);
}

/** slowhttptest, started by PID, its CSV report parsed. Ends itself after `-l` seconds; `stop()` ends it earlier. */
export class SlowHttpTest {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;
  constructor(args: string[], readonly csvBase: string) {
    this.child = spawn('slowhttptest', [...args, '-g', '-o', csvBase], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => { this.output += d.toString(); });
    this.child.stderr!.on('data', (d: Buffer) => { this.output += d.toString(); });
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
  }

  /** Rows of the CSV: seconds, closed, pending, connected, service available (1/0). */
  rows(): Array<{ s: number; closed: number; pending: number; connected: number; available: number }> {
    let text = '';
    try { text = readFileSync(`${this.csvBase}.csv`, 'utf8'); } catch { return []; }
    return text.trim().split('\n').slice(1).map((l) => l.split(',').map(Number)).filter((r) => r.length >= 5 && !r.some(Number.isNaN))
      .map(([s, closed, pending, connected, available]) => ({ s: s!, closed: closed!, pending: pending!, connected: connected!, available: available! }));
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined) {
      try { process.kill(this.child.pid, 'SIGINT'); } catch { /* gone */ }
      const t = setTimeout(() => { try { process.kill(this.child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 3000);
      await this.exited;
      clearTimeout(t);
    }
  }
}

/** A plain upstream on 127.0.0.1: `handler` answers (default: 200 "ok" after reading the body). Tracks its sockets. */
export class PlainUpstream {
  readonly server: Server;
  readonly sockets = new Set<Socket>();
  port = 0;
  requests = 0;
  constructor(handler?: (req: IncomingMessage, res: ServerResponse) => void) {
    this.server = createServer((req, res) => {
      this.requests++;
      if (handler) { handler(req, res); return; }
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    this.server.keepAliveTimeout = 60_000;
    this.server.on('connection', (s: Socket) => { this.sockets.add(s); s.on('close', () => this.sockets.delete(s)); });
  }

  async start(host = '127.0.0.1'): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, host, r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface OpenLoopRecord {
  id: number;
  /** ms since the run started, when it was meant to be sent */
  at: number;
  status?: number;
  error?: string;
  /** The response said Connection: close. */
  close?: boolean;
  /** Sent on a socket that had carried a request before. */
  reused?: boolean;
  doneAt?: number;
}

/**
 * A per-request open-loop client on node:http with a keep-alive agent: `rate` requests a second to `url` for
 * `durationMs`, each with `x-req-id`, every outcome kept (status, error code, Connection: close, reused socket), so a
 * test can tell which requests were in flight at an event and what became of each one.
 */
export async function recordedOpenLoop(url: string, opts: { rate: number; durationMs: number; host?: string; maxSockets?: number; timeoutMs?: number; onTick?: (elapsedMs: number) => void }): Promise<OpenLoopRecord[]> {
  const http = await import('node:http');
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 512, keepAliveMsecs: 30_000 });
  const u = new URL(url);
  const out: OpenLoopRecord[] = [];
  const t0 = performance.now();
  const interval = 1000 / opts.rate;
  let next = 0;
  let pending = 0;
  return new Promise((resolve) => {
    const finishIfDone = (): void => {
      if (next * interval >= opts.durationMs && pending === 0) { clearInterval(timer); agent.destroy(); resolve(out); }
    };
    const send = (id: number, at: number): void => {
      const rec: OpenLoopRecord = { id, at };
      out.push(rec);
      pending++;
      let settled = false;
      const done = (): void => { if (settled) return; settled = true; rec.doneAt = performance.now() - t0; pending--; finishIfDone(); };
      const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, agent, headers: { host: opts.host ?? u.host, 'x-req-id': String(id) }, timeout: opts.timeoutMs ?? 10_000 }, (res) => {
        rec.status = res.statusCode;
        rec.close = /close/i.test(String(res.headers.connection ?? ''));
        res.resume();
        res.on('end', done);
        res.on('error', (e: NodeJS.ErrnoException) => { rec.error = e.code ?? e.message; done(); });
        res.on('aborted', () => { rec.error = 'aborted'; });
      });
      req.on('socket', () => { rec.reused = req.reusedSocket; });
      req.on('timeout', () => { rec.error = 'timeout'; req.destroy(); });
      req.on('error', (e: NodeJS.ErrnoException) => { rec.error ??= e.code ?? e.message; done(); });
      req.end();
    };
    const timer = setInterval(() => {
      const now = performance.now() - t0;
      opts.onTick?.(now);
      while (next * interval <= now && next * interval < opts.durationMs) { send(next, next * interval); next++; }
      finishIfDone();
    }, 1);
  });
}
