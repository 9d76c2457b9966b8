/**
 * Shared pieces of the rollout end-to-end tests: two app versions (HTTP servers answering their version, the
 * canary able to start failing), an open-loop load generator through the sidecar that sorts every answer, and
 * `remora rollout` as a child process with its output lines timed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { CLI } from '../../support/proxy-harness.js';

export class App {
  failing = false;
  served = 0;
  failed = 0;
  port = 0;
  private server: Server;
  constructor(readonly version: string) {
    this.server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (this.failing) {
          this.failed++;
          res.writeHead(500, { 'content-type': 'text/plain' }).end('canary-fail');
        } else {
          this.served++;
          res.writeHead(200, { 'content-type': 'text/plain' }).end(this.version);
        }
      });
    });
    this.server.keepAliveTimeout = 30_000;
  }
  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }
  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export interface Outcome { t: number; kind: 'v1' | 'v2' | 'canary-fail' | 'error'; detail?: string }

/**
 * Open loop: `rate` requests per second on a 10 ms tick, whatever the answers do (bounded at 500 in flight; the
 * bound is reported, never hit in these tests). Every answer is sorted: a version's 200, the canary's own 500
 * ("canary-fail", caused by the app, not by Remora), or an error (any other status, a reset, a timeout).
 */
export class Load {
  readonly outcomes: Outcome[] = [];
  inFlight = 0;
  overflow = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly pool: Pool;
  private carry = 0;
  constructor(private readonly outboundPort: number, private readonly host: string, private rate: number, private readonly headers: Record<string, string> = {}) {
    this.pool = new Pool(`http://127.0.0.1:${outboundPort}`, { connections: 32, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: 10_000, bodyTimeout: 10_000 });
  }
  start(): this {
    let last = Date.now();
    this.timer = setInterval(() => {
      const now = Date.now();
      this.carry += ((now - last) / 1000) * this.rate;
      last = now;
      while (this.carry >= 1) {
        this.carry--;
        if (this.inFlight >= 500) { this.overflow++; continue; }
        void this.one();
      }
    }, 10);
    return this;
  }
  private async one(): Promise<void> {
    this.inFlight++;
    try {
      const r = await this.pool.request({ path: '/', method: 'GET', headers: { host: this.host, ...this.headers } });
      const body = await r.body.text();
      const t = Date.now();
      if (r.statusCode === 200 && (body === 'v1' || body === 'v2')) this.outcomes.push({ t, kind: body });
      else if (r.statusCode === 500 && body === 'canary-fail') this.outcomes.push({ t, kind: 'canary-fail' });
      else this.outcomes.push({ t, kind: 'error', detail: `${r.statusCode} ${r.headers['x-envoy-response-flags'] ?? ''} ${body.slice(0, 80)}` });
    } catch (err) {
      this.outcomes.push({ t: Date.now(), kind: 'error', detail: String((err as Error).message) });
    } finally {
      this.inFlight--;
    }
  }
  private stopped = false;
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    const end = Date.now() + 10_000;
    while (this.inFlight > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    await this.pool.close();
  }
  count(kind: Outcome['kind'], from = 0, to = Infinity): number {
    return this.outcomes.filter((o) => o.kind === kind && o.t >= from && o.t < to).length;
  }
  errors(): Outcome[] {
    return this.outcomes.filter((o) => o.kind === 'error');
  }
}

export class RolloutProcess {
  readonly lines: Array<{ t: number; line: string }> = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  private buf = '';
  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.lines.push({ t: Date.now(), line: this.buf.slice(0, i) });
        this.buf = this.buf.slice(i + 1);
      }
    });
    child.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
  }
  get stdout(): string {
    return this.lines.map((l) => l.line).join('\n');
  }
  line(re: RegExp): { t: number; line: string } | undefined {
    return this.lines.find((l) => re.test(l.line));
  }
  async waitForLine(re: RegExp, timeoutMs: number): Promise<{ t: number; line: string }> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const l = this.line(re);
      if (l) return l;
      if (Date.now() > end) throw new Error(`no line matching ${re} within ${timeoutMs} ms\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  /** Wait for the exit (bounded); a child still running after `timeoutMs` is killed by its PID and the test fails. */
  async exit(timeoutMs: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.exited, new Promise<'timeout'>((res) => { timer = setTimeout(() => res('timeout'), timeoutMs); })]);
    clearTimeout(timer);
    if (r === 'timeout') {
      this.kill();
      throw new Error(`remora rollout did not end within ${timeoutMs} ms\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
    }
    return r;
  }
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

export function rollout(args: string[], env: NodeJS.ProcessEnv = {}): RolloutProcess {
  return new RolloutProcess(spawn(process.execPath, [CLI, 'rollout', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
}

/** ServiceEntry `reviews` (two endpoints labelled v1/v2) and its DestinationRule subsets. */
export function mesh(v1Port: number, v2Port: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: ${v1Port}}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: ${v2Port}}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
`;
}

export const VS_YAML = `# reviews: every request to v1 until the rollout moves it
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews]
  http:
  - name: main # the route the rollout moves
    route:
    - destination: {host: reviews, subset: v1}
`;

export const HOST = 'reviews:9080';
