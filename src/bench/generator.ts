// The load generator's hot loop: raw `net` sockets (one request in flight per connection,
// HTTP/1.1 keep-alive), preformatted request bytes, open-loop scheduling with latency measured
// from each request's intended send time (a shared FIFO queue holds requests while every
// connection is busy, and that wait counts), or closed-loop `max` mode for throughput.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { formatRequest, ParseError, ResponseParser, type ParsedResponse } from './http1.js';
import { LatencyHistogram } from './histogram.js';
import { mulberry32, Schedule, type Arrival } from './schedule.js';
import { createTimer, type OneShotTimer } from './timer.js';

export type ErrorKind = 'connect' | 'timeout' | 'reset' | 'parse' | 'status5xx';

export interface LoadOptions {
  /** open: fixed-rate open loop; max: closed loop, each connection sends as fast as it can. */
  mode: 'open' | 'max';
  /** Requests per second (open mode). */
  rate: number;
  arrival: Arrival;
  /** Seed of the Poisson arrival PRNG. */
  seed: number;
  durationMs: number;
  /** Requests scheduled during the warm-up are sent but not measured. */
  warmupMs: number;
  connections: number;
  /** A request without a complete response after this long is a `timeout` error (ms). */
  timeoutMs: number;
  method: string;
  headers: Array<[string, string]>;
  body: Buffer | undefined;
  /** Count responses with status >= 500 as errors (they are still in the latency histogram). */
  count5xxAsErrors: boolean;
  /** Use the worker-thread timer (sub-ms precision); false = setTimeout (1 ms granularity). */
  preciseTimer: boolean;
  onProgress?: (p: Progress) => void;
}

export interface Progress {
  elapsedMs: number;
  totalMs: number;
  completed: number;
  errors: number;
  queued: number;
}

/** Raw result of one run against one target; histograms are summarized by the report layer. */
export interface RunOutcome {
  url: string;
  /** Responses received for measured requests (any status). */
  completed: number;
  /** Measured requests scheduled (open) or sent (max). */
  scheduled: number;
  errors: Record<ErrorKind, number>;
  statusCounts: Record<string, number>;
  measuredMs: number;
  achievedRps: number;
  /** Latency from intended send time (coordinated-omission corrected). */
  latency: LatencyHistogram;
  /** Latency from the moment the request was written to the socket. */
  service: LatencyHistogram;
  /** x-envoy-upstream-service-time, where present. */
  upstream: LatencyHistogram;
  /** service − upstream: time spent inside the proxy (and the loopback hops), where the header is present. */
  proxy: LatencyHistogram;
  /** How late the scheduler dispatched requests relative to their intended time. */
  scheduleLag: LatencyHistogram;
  /** Generator CPU (user + system) as a fraction of one core over the measured window. */
  generatorCpu: number;
  preciseTimer: boolean;
  responseBytes: number;
}

export const DEFAULT_LOAD_OPTIONS: LoadOptions = {
  mode: 'open',
  rate: 1000, // req/s
  arrival: 'fixed',
  seed: 1,
  durationMs: 10_000,
  warmupMs: 1_000,
  connections: 16,
  timeoutMs: 5_000,
  method: 'GET',
  headers: [],
  body: undefined,
  count5xxAsErrors: true,
  preciseTimer: true,
};

/** A queue of intended send times (ms), amortized O(1) at both ends. */
class TimeQueue {
  private a: number[] = [];
  private head = 0;
  get length(): number {
    return this.a.length - this.head;
  }
  push(t: number): void {
    this.a.push(t);
  }
  shift(): number {
    const t = this.a[this.head++]!;
    if (this.head > 1024 && this.head * 2 > this.a.length) {
      this.a = this.a.slice(this.head);
      this.head = 0;
    }
    return t;
  }
}

const ERROR_KINDS: ErrorKind[] = ['connect', 'timeout', 'reset', 'parse', 'status5xx'];

/** Runs one load test against `url` and resolves when every measured request finished or timed out. */
export function runLoad(url: string, partial: Partial<LoadOptions>): Promise<RunOutcome> {
  const opts: LoadOptions = { ...DEFAULT_LOAD_OPTIONS, ...partial };
  return new LoadRun(url, opts).run();
}

class Conn {
  sock: net.Socket | undefined;
  connected = false;
  busy = false;
  intended = 0;
  sentAt = 0;
  readonly parser: ResponseParser;
  constructor(readonly id: number, onResponse: (c: Conn, r: ParsedResponse) => void) {
    this.parser = new ResponseParser((r) => onResponse(this, r));
  }
}

class LoadRun {
  private readonly host: string;
  private readonly port: number;
  private readonly reqBuf: Buffer;
  private readonly conns: Conn[] = [];
  private readonly free: Conn[] = [];
  private readonly queue = new TimeQueue();
  private schedule: Schedule | undefined;
  private timer: OneShotTimer | undefined;
  private readonly due: number[] = [];

  private startMs = 0;
  private measureStartMs = 0;
  private endMs = 0;
  private stopping = false;
  private lastDoneMs = 0;
  private cpuStart: NodeJS.CpuUsage | undefined;
  private cpuEnd: NodeJS.CpuUsage | undefined;
  private cpuEndWall = 0;
  private measureStartedWall = 0;

  private readonly out: RunOutcome;
  private resolve!: (r: RunOutcome) => void;
  private sweeper: NodeJS.Timeout | undefined;
  private progressTimer: NodeJS.Timeout | undefined;
  private finished = false;

  constructor(
    url: string,
    private readonly opts: LoadOptions,
  ) {
    const u = new URL(url);
    if (u.protocol !== 'http:') throw new Error(`only http:// targets are supported, got ${url}`);
    this.host = u.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(u.port || 80);
    this.reqBuf = formatRequest({ method: opts.method, path: u.pathname + u.search, host: u.host, headers: opts.headers, body: opts.body });
    const errors = Object.fromEntries(ERROR_KINDS.map((k) => [k, 0])) as Record<ErrorKind, number>;
    this.out = {
      url,
      completed: 0,
      scheduled: 0,
      errors,
      statusCounts: {},
      measuredMs: 0,
      achievedRps: 0,
      latency: new LatencyHistogram(),
      service: new LatencyHistogram(),
      upstream: new LatencyHistogram(),
      proxy: new LatencyHistogram(),
      scheduleLag: new LatencyHistogram(),
      generatorCpu: 0,
      preciseTimer: false,
      responseBytes: 0,
    };
    if (!(opts.connections >= 1)) throw new Error('connections must be >= 1');
    if (opts.mode === 'open' && !(opts.rate > 0)) throw new Error('rate must be > 0');
    for (let i = 0; i < opts.connections; i++) this.conns.push(new Conn(i, this.onResponse));
  }

  async run(): Promise<RunOutcome> {
    // Connect everything first, so connection setup is not in the measured latencies.
    await Promise.all(this.conns.map((c) => this.connect(c)));
    for (const c of this.conns) this.free.push(c);
    const done = new Promise<RunOutcome>((r) => (this.resolve = r));
    const now = performance.now();
    this.startMs = now;
    this.measureStartMs = now + this.opts.warmupMs;
    this.endMs = this.measureStartMs + this.opts.durationMs;
    if (this.opts.warmupMs <= 0) this.beginMeasure();
    this.sweeper = setInterval(this.sweep, Math.min(100, Math.max(10, this.opts.timeoutMs / 4)));
    if (this.opts.onProgress) {
      const cb = this.opts.onProgress;
      this.progressTimer = setInterval(() => {
        const t = performance.now();
        cb({
          elapsedMs: t - this.startMs,
          totalMs: this.endMs - this.startMs,
          completed: this.out.completed,
          errors: ERROR_KINDS.reduce((s, k) => s + this.out.errors[k], 0),
          queued: this.queue.length,
        });
      }, 250);
    }
    if (this.opts.mode === 'open') {
      this.schedule = new Schedule(now, this.opts.rate, this.opts.arrival, mulberry32(this.opts.seed));
      this.timer = createTimer(this.onTick, this.opts.preciseTimer);
      this.out.preciseTimer = this.timer.precise;
      this.onTick();
    } else {
      // Closed loop: every connection sends, and re-sends on each response until the end.
      for (const c of this.free.splice(0)) {
        if (now >= this.measureStartMs) this.out.scheduled++;
        this.send(c, now);
      }
      const stopAt = setTimeout(() => this.beginStop(), this.endMs - now);
      stopAt.unref();
      if (this.opts.warmupMs > 0) setTimeout(() => this.beginMeasure(), this.opts.warmupMs).unref();
    }
    return done;
  }

  private beginMeasure(): void {
    if (this.cpuStart) return;
    this.cpuStart = process.cpuUsage();
    this.measureStartedWall = performance.now();
  }

  private connect(c: Conn): Promise<void> {
    return new Promise((resolve) => {
      const sock = net.connect({ host: this.host, port: this.port, noDelay: true });
      c.sock = sock;
      c.connected = false;
      sock.once('connect', () => {
        c.connected = true;
        resolve();
      });
      sock.on('data', (d: Buffer) => this.onData(c, sock, d));
      sock.on('error', (e: NodeJS.ErrnoException) => this.onSockError(c, sock, e));
      sock.on('close', () => {
        this.onSockClose(c, sock);
        resolve();
      });
    });
  }

  private readonly onTick = (): void => {
    const s = this.schedule!;
    const now = performance.now();
    if (now >= this.measureStartMs) this.beginMeasure();
    const due = s.takeDue(now, this.endMs, this.due);
    for (let i = 0; i < due.length; i++) {
      const intended = due[i]!;
      if (intended >= this.measureStartMs) {
        this.out.scheduled++;
        this.out.scheduleLag.record(now - intended);
      }
      const c = this.free.pop();
      if (c) this.send(c, intended);
      else this.queue.push(intended);
    }
    due.length = 0;
    const next = s.peek();
    if (next < this.endMs) this.timer!.armAt(next);
    else this.beginStop();
  };

  private send(c: Conn, intended: number): void {
    c.busy = true;
    c.intended = intended;
    c.parser.expectNoBody = this.opts.method === 'HEAD';
    if (!c.sock || c.sock.destroyed) {
      // Reconnect lazily; the request is written once connected (connect time counts as latency).
      const sock = net.connect({ host: this.host, port: this.port, noDelay: true });
      c.sock = sock;
      c.connected = false;
      c.parser.reset();
      c.sentAt = performance.now();
      sock.once('connect', () => {
        c.connected = true;
        if (c.busy && c.sock === sock) {
          c.sentAt = performance.now();
          sock.write(this.reqBuf);
        }
      });
      sock.on('data', (d: Buffer) => this.onData(c, sock, d));
      sock.on('error', (e: NodeJS.ErrnoException) => this.onSockError(c, sock, e));
      sock.on('close', () => this.onSockClose(c, sock));
      return;
    }
    c.sentAt = performance.now();
    c.sock.write(this.reqBuf);
  }

  private onData(c: Conn, sock: net.Socket, d: Buffer): void {
    if (c.sock !== sock) return;
    try {
      c.parser.push(d);
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      c.sock = undefined;
      sock.destroy();
      this.fail(c, 'parse');
    }
  }

  private readonly onResponse = (c: Conn, r: ParsedResponse): void => {
    if (!c.busy) return; // unsolicited bytes: ignore
    const now = performance.now();
    // beginMeasure() always ran before any request with intended >= measureStartMs was sent.
    const measured = c.intended >= this.measureStartMs;
    if (measured) {
      const o = this.out;
      o.completed++;
      o.responseBytes += r.bodyBytes;
      const key = String(r.status);
      o.statusCounts[key] = (o.statusCounts[key] ?? 0) + 1;
      if (r.status >= 500 && this.opts.count5xxAsErrors) o.errors.status5xx++;
      o.latency.record(now - c.intended);
      const service = now - c.sentAt;
      o.service.record(service);
      if (r.upstreamMs >= 0) {
        o.upstream.record(r.upstreamMs);
        o.proxy.record(Math.max(0, service - r.upstreamMs));
      }
      this.lastDoneMs = now;
    }
    if (r.close && c.sock) {
      const s = c.sock;
      c.sock = undefined;
      s.destroy();
    }
    this.next(c, now);
  };

  /** The connection is free again: take the oldest queued request, or rejoin the free list. */
  private next(c: Conn, now: number): void {
    c.busy = false;
    if (this.finished) return;
    if (this.opts.mode === 'max') {
      if (!this.stopping) {
        if (now >= this.measureStartMs) {
          this.beginMeasure();
          this.out.scheduled++;
        }
        this.send(c, now);
        return;
      }
    } else if (this.queue.length > 0) {
      this.send(c, this.queue.shift());
      return;
    }
    this.free.push(c);
    if (this.stopping) this.maybeFinish();
  }

  private onSockError(c: Conn, sock: net.Socket, e: NodeJS.ErrnoException): void {
    if (c.sock !== sock) return;
    c.sock = undefined;
    sock.destroy();
    if (!c.busy) return;
    this.fail(c, c.connected ? 'reset' : e.code === 'ETIMEDOUT' ? 'timeout' : 'connect');
  }

  private onSockClose(c: Conn, sock: net.Socket): void {
    if (c.sock !== sock) return;
    c.sock = undefined;
    if (!c.busy) return;
    if (c.parser.end()) return; // a close-delimited body completed the response
    this.fail(c, c.connected ? 'reset' : 'connect');
  }

  private fail(c: Conn, kind: ErrorKind): void {
    if (c.intended >= this.measureStartMs) this.out.errors[kind]++;
    c.parser.reset();
    const now = performance.now();
    if (kind === 'connect' && this.opts.mode === 'max' && !this.stopping) {
      // A refused target would otherwise spin: back off 10 ms before the next attempt.
      c.busy = false;
      setTimeout(() => this.next(c, performance.now()), 10).unref();
      return;
    }
    this.next(c, now);
  }

  /** Periodic timeout check (one interval for all connections instead of a timer per request). */
  private readonly sweep = (): void => {
    const now = performance.now();
    for (const c of this.conns) {
      if (c.busy && now - c.sentAt > this.opts.timeoutMs) {
        const s = c.sock;
        c.sock = undefined;
        s?.destroy();
        this.fail(c, 'timeout');
      }
    }
    if (this.stopping) {
      // Requests still queued past the drain deadline will not be answered in time.
      if (now > this.endMs + this.opts.timeoutMs) {
        while (this.queue.length > 0) {
          const t = this.queue.shift();
          if (t >= this.measureStartMs) this.out.errors.timeout++;
        }
      }
      this.maybeFinish();
    }
  };

  private beginStop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.cpuEnd = process.cpuUsage(this.cpuStart);
    this.cpuEndWall = performance.now();
    this.timer?.close();
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.finished || this.queue.length > 0) return;
    for (const c of this.conns) if (c.busy) return;
    this.finished = true;
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.progressTimer) clearInterval(this.progressTimer);
    for (const c of this.conns) {
      const s = c.sock;
      c.sock = undefined;
      s?.destroy();
    }
    const o = this.out;
    const window = Math.max(this.opts.durationMs, this.lastDoneMs - this.measureStartMs);
    o.measuredMs = this.opts.mode === 'max' ? this.opts.durationMs : window;
    o.achievedRps = o.measuredMs > 0 ? (o.completed * 1000) / o.measuredMs : 0;
    if (this.cpuEnd) {
      const wall = this.cpuEndWall - this.measureStartedWall;
      o.generatorCpu = wall > 0 ? (this.cpuEnd.user + this.cpuEnd.system) / 1000 / wall : 0;
    }
    this.resolve(o);
  }
}
