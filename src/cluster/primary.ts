/**
 * The `--concurrency N` primary: forks N workers (node:cluster) that share the proxy ports, owns the one
 * admin/stats/health endpoint and answers it by asking every worker over IPC and merging, restarts crashed
 * workers with backoff, and drains them all on SIGTERM / SIGINT / quitquitquit.
 */
import cluster, { type Worker } from 'node:cluster';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdminServer } from '../admin/server.js';
import { forwardProbe, parseAppProbers, type AppProber } from '../admin/app-probes.js';
import type { RunOptions } from '../run-options.js';
import { VERSION } from '../version.js';
import type { ClusterView } from '../model.js';
import { isLevel, Logger } from '../util/logger.js';
import { isFromWorker, WorkerRpc, type AdminAnswer, type WorkerReadiness } from './ipc.js';
import { clustersText, mergeClusterViews, mergeExpositions, restartDelayMs, statsJsonOf, statsTextOf, sumFamily } from './merge.js';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;
type Routes = Map<string, { method: 'GET' | 'POST'; handler: Handler }>;

/**
 * Scheduling policy of the shared listen sockets. SCHED_RR: the primary accepts and hands each connection to the
 * next worker (even spread, one extra hop per *connection*, none per request on keep-alive). SCHED_NONE: every worker
 * accepts on the shared socket and the kernel picks (no hop, but Linux wakes the busiest worker's epoll more often,
 * so the spread is uneven). Default chosen by measurement (docs/benchmarks.md, "--concurrency"); REMORA_CLUSTER_SCHED=rr|none overrides.
 */
export const DEFAULT_SCHED: 'rr' | 'none' = 'rr';

/** A worker that stayed up this long is considered healthy again: its next crash restarts after the base delay. */
const STABLE_MS = 30_000;

interface Slot {
  /** 1-based worker number (REMORA_WORKER_ID), stable across restarts. */
  id: number;
  worker?: Worker;
  rpc?: WorkerRpc;
  pid?: number;
  ready: boolean;
  startedAt: number;
  /** Crashes in a row (reset once a worker lived STABLE_MS). */
  crashes: number;
  restarts: number;
  restartTimer?: NodeJS.Timeout;
  version: number | null;
  hash: string | null;
}

export interface PrimaryReady {
  outbound: number; inbound: number; admin: number; stats: number; health: number;
  version: string; config: number | null; hash: string | null; pid: number; startupMs: number; workers: number;
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, `${JSON.stringify(value, null, 2)}\n`, 'application/json');
}
function relay(res: ServerResponse, a: AdminAnswer): void {
  res.writeHead(a.status, { ...a.headers, 'content-length': Buffer.byteLength(a.body) });
  res.end(a.body);
}

export class Primary {
  readonly logger: Logger;
  private readonly slots: Slot[] = [];
  private readonly servers: Array<{ name: string; server: Server; address: string; port: number }> = [];
  private ports = { outbound: 0, inbound: 0 };
  private draining = false;
  private healthFail = false;
  private restartsTotal = 0;
  private shuttingDown: Promise<number> | undefined;
  private startupFailed: ((code: number) => void) | undefined;
  /** Start-up failed: remaining workers are being killed, not restarted. */
  private abandoned = false;
  private failureReported = false;
  private allExited: (() => void) | undefined;
  private readyWaiter: (() => void) | undefined;
  onExit: (code: number) => void = () => {};

  constructor(readonly opts: RunOptions, readonly n: number, private readonly now: () => number = Date.now) {
    this.logger = new Logger(opts.logLevel);
    for (let i = 1; i <= n; i++) this.slots.push({ id: i, ready: false, startedAt: 0, crashes: 0, restarts: 0, version: null, hash: null });
  }

  /** Fork the workers, wait until every one is ready, bind admin/stats/health. Rejects (exit code 1) when a worker fails to start. */
  async start(): Promise<Omit<PrimaryReady, 'startupMs'>> {
    const sched = (this.opts.clusterSched ?? DEFAULT_SCHED).toLowerCase();
    // Frozen by node:cluster at the first fork.
    cluster.schedulingPolicy = sched === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
    cluster.on('message', (w: Worker, m: unknown) => this.onMessage(w, m));
    cluster.on('exit', (w: Worker, code: number | null, signal: string | null) => this.onWorkerExit(w, code, signal));
    await new Promise<void>((resolve, reject) => {
      this.readyWaiter = resolve;
      this.startupFailed = (code) => reject(Object.assign(new Error(`a worker exited with code ${code} before it was ready`), { exitCode: code }));
      for (const s of this.slots) this.fork(s);
    });
    this.startupFailed = undefined;
    const routes = this.routes();
    await this.listen('admin', createAdminServer(routes), '127.0.0.1', this.opts.adminPort);
    await this.listen('stats', createAdminServer(routes, ['/stats/prometheus']), '0.0.0.0', this.opts.statsPort);
    const probers = parseAppProbers(this.opts.appProbers);
    const probeHandler = (path: string): Handler | undefined => {
      const p: AppProber | undefined = probers.get(path);
      return p === undefined ? undefined : (req, res) => forwardProbe(p, req, res);
    };
    await this.listen('health', createAdminServer(routes, ['/healthz/ready'], probeHandler), '0.0.0.0', this.opts.healthPort);
    const first = this.slots[0]!;
    return {
      outbound: this.ports.outbound, inbound: this.ports.inbound, admin: this.port('admin'), stats: this.port('stats'), health: this.port('health'),
      version: VERSION, config: first.version, hash: first.hash, pid: process.pid, workers: this.n,
    };
  }

  port(name: string): number {
    return this.servers.find((s) => s.name === name)?.port ?? 0;
  }

  private fork(s: Slot): void {
    s.restartTimer = undefined;
    s.ready = false;
    s.startedAt = this.now();
    const w = cluster.fork({ REMORA_WORKER_ID: String(s.id) });
    s.worker = w;
    s.pid = w.process.pid;
    s.rpc = new WorkerRpc(w);
  }

  private slotOf(w: Worker): Slot | undefined {
    return this.slots.find((s) => s.worker === w);
  }

  private onMessage(w: Worker, m: unknown): void {
    if (!isFromWorker(m)) return;
    const s = this.slotOf(w);
    if (s === undefined) return;
    if (m.remora === 'reply') { s.rpc?.settle(m.id, m.ok, m.value, m.error); return; }
    if (m.remora === 'failed') {
      if (!this.failureReported) process.stderr.write(m.message);
      this.failureReported = true;
      return;
    }
    s.ready = true;
    s.version = m.version;
    s.hash = m.hash;
    if (this.ports.outbound === 0) this.ports = { outbound: m.outbound, inbound: m.inbound };
    if (s.restarts > 0) this.logger.log('info', `worker ${s.id} ready again`, { pid: s.pid, restarts: s.restarts });
    if (this.readyWaiter && this.slots.every((x) => x.ready)) {
      const r = this.readyWaiter;
      this.readyWaiter = undefined;
      r();
    }
  }

  private onWorkerExit(w: Worker, code: number | null, signal: string | null): void {
    const s = this.slotOf(w);
    if (s === undefined) return;
    s.rpc?.failAll(`worker ${s.id} exited`);
    s.worker = undefined;
    s.rpc = undefined;
    s.ready = false;
    if (this.shuttingDown) {
      if (this.slots.every((x) => x.worker === undefined)) this.allExited?.();
      return;
    }
    if (this.abandoned) return;
    if (this.startupFailed) {
      // Every worker loads the same config: one failing at start-up means all would. Stop the others and fail.
      const fail = this.startupFailed;
      this.startupFailed = undefined;
      this.abandoned = true;
      for (const x of this.slots) x.worker?.process.kill('SIGKILL');
      fail(code ?? 1);
      return;
    }
    if (code === 0 && signal === null) {
      // A worker drained and exited on its own (--exit-on-app-exit): the app is gone, so the sidecar goes too.
      this.logger.log('info', `worker ${s.id} exited normally: shutting down`, { pid: s.pid });
      void this.shutdown(`worker ${s.id} exited`);
      return;
    }
    s.crashes = this.now() - s.startedAt >= STABLE_MS ? 1 : s.crashes + 1;
    const delay = restartDelayMs(s.crashes);
    s.restarts++;
    this.restartsTotal++;
    this.logger.log('error', `worker ${s.id} (pid ${s.pid}) exited with ${signal ?? `code ${code}`}; restarting in ${delay} ms`, { crashesInARow: s.crashes });
    s.restartTimer = setTimeout(() => this.fork(s), delay);
  }

  /** SIGTERM / SIGINT / quitquitquit: every worker drains (inbound closes, in-flight requests finish) and exits; then we exit 0. */
  shutdown(reason: string): Promise<number> {
    if (this.shuttingDown) return this.shuttingDown;
    this.shuttingDown = (async () => {
      this.draining = true;
      this.logger.log('info', `draining ${this.n} workers (${reason}); up to ${this.opts.drainSeconds}s`);
      for (const s of this.slots) {
        if (s.restartTimer) { clearTimeout(s.restartTimer); s.restartTimer = undefined; }
        s.rpc?.notify('shutdown', reason);
      }
      if (this.slots.some((s) => s.worker !== undefined)) {
        await new Promise<void>((resolve) => {
          // Workers exit by themselves at their drain deadline; this is the backstop for a stuck one.
          const t = setTimeout(() => {
            for (const s of this.slots) if (s.worker) { this.logger.log('warn', `worker ${s.id} did not exit after draining: killing`, { pid: s.pid }); s.worker.process.kill('SIGKILL'); }
            resolve();
          }, this.opts.drainSeconds * 1000 + 5000);
          this.allExited = () => { clearTimeout(t); resolve(); };
        });
      }
      for (const s of this.servers) { s.server.close(); s.server.closeAllConnections(); }
      this.logger.log('info', 'exiting');
      this.onExit(0);
      return 0;
    })();
    return this.shuttingDown;
  }

  private async listen(name: string, server: Server, address: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => { server.off('error', reject); resolve(); });
    });
    server.on('error', (err) => this.logger.log('error', `${name} listener: ${err.message}`));
    this.servers.push({ name, server, address, port: (server.address() as AddressInfo).port });
  }

  // === aggregated admin ===

  private live(): Array<Slot & { rpc: WorkerRpc }> {
    return this.slots.filter((s): s is Slot & { rpc: WorkerRpc } => s.ready && s.rpc !== undefined);
  }

  /** Ask every ready worker; a worker that fails or times out is left out (and logged) rather than failing the answer. */
  private async all<T>(op: Parameters<WorkerRpc['call']>[0], arg?: unknown): Promise<Array<{ slot: Slot; value: T }>> {
    const live = this.live();
    const res = await Promise.allSettled(live.map((s) => s.rpc.call<T>(op, arg)));
    const out: Array<{ slot: Slot; value: T }> = [];
    res.forEach((r, i) => {
      if (r.status === 'fulfilled') out.push({ slot: live[i]!, value: r.value });
      else this.logger.log('warn', `admin: ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`);
    });
    return out;
  }

  private async first<T>(op: Parameters<WorkerRpc['call']>[0], arg?: unknown): Promise<T | undefined> {
    const s = this.live()[0];
    return s === undefined ? undefined : s.rpc.call<T>(op, arg);
  }

  /** Ready only when every worker is up, ready, and all run the same config (content hash). */
  async readiness(): Promise<{ ready: boolean; reason: string }> {
    if (this.draining) return { ready: false, reason: 'DRAINING' };
    if (this.healthFail) return { ready: false, reason: 'HEALTH_CHECK_FAILED' };
    if (this.slots.some((s) => !s.ready)) return { ready: false, reason: 'WORKERS_NOT_READY' };
    const rs = await this.all<WorkerReadiness>('readiness');
    if (rs.length < this.n) return { ready: false, reason: 'WORKERS_NOT_READY' };
    for (const r of rs) r.slot.version = r.value.version, r.slot.hash = r.value.hash;
    const bad = rs.find((r) => !r.value.ready);
    if (bad) return { ready: false, reason: bad.value.reason };
    if (new Set(rs.map((r) => r.value.hash)).size > 1) return { ready: false, reason: 'CONFIG_VERSION_MISMATCH' };
    return { ready: true, reason: 'LIVE' };
  }

  async renderMetrics(): Promise<string> {
    const texts = await this.all<string>('metrics');
    const own =
      '# HELP remora_workers Ready worker processes (--concurrency).\n# TYPE remora_workers gauge\n' +
      `remora_workers ${this.live().length}\n` +
      '# HELP remora_worker_restarts_total Worker processes restarted after a crash.\n# TYPE remora_worker_restarts_total counter\n' +
      `remora_worker_restarts_total ${this.restartsTotal}\n`;
    return mergeExpositions([...texts.map((t) => t.value), own]);
  }

  async workers(): Promise<unknown[]> {
    const metrics = new Map((await this.all<string>('metrics')).map((r) => [r.slot.id, r.value]));
    return this.slots.map((s) => ({
      id: s.id, pid: s.pid ?? null, ready: s.ready, restarts: s.restarts,
      uptimeSeconds: s.worker ? Math.round((this.now() - s.startedAt) / 1000) : 0,
      config: { version: s.version, hash: s.hash },
      requests: metrics.has(s.id) ? sumFamily(metrics.get(s.id)!, 'istio_requests_total') : null,
    }));
  }

  private broadcast(method: 'GET' | 'POST'): Handler {
    return async (_q, res, url) => {
      const answers = await this.all<AdminAnswer>('admin', { method, path: url.pathname + url.search });
      if (answers.length === 0) return send(res, 503, 'no worker ready\n');
      relay(res, answers[0]!.value);
    };
  }

  private forward(): Handler {
    return async (_q, res, url) => {
      const a = await this.first<AdminAnswer>('admin', { method: 'GET', path: url.pathname + url.search });
      if (a === undefined) return send(res, 503, 'no worker ready\n');
      relay(res, a);
    };
  }

  private routes(): Routes {
    const r: Routes = new Map();
    const get = (p: string, h: Handler): void => { r.set(p, { method: 'GET', handler: h }); };
    const post = (p: string, h: Handler): void => { r.set(p, { method: 'POST', handler: h }); };
    get('/ready', async (_q, res) => {
      const st = await this.readiness();
      send(res, st.ready ? 200 : 503, st.ready ? 'LIVE\n' : `${st.reason}\n`);
    });
    get('/healthz/ready', async (_q, res) => {
      const st = await this.readiness();
      send(res, st.ready ? 200 : 503, st.ready ? '' : `${st.reason}\n`);
    });
    get('/config_dump', async (_q, res) => {
      const dumps = await this.all<Record<string, unknown>>('configDump');
      if (dumps.length === 0) return send(res, 503, 'no worker ready\n');
      const workers = dumps.map((d) => ({ id: d.slot.id, pid: d.slot.pid, version: d.value.version, hash: d.value.hash, lastError: d.value.lastError }));
      json(res, 200, { ...dumps[0]!.value, ports: this.portMap(), consistent: new Set(workers.map((w) => w.hash)).size === 1, workers });
    });
    get('/clusters', async (_q, res, url) => {
      const views = mergeClusterViews((await this.all<ClusterView[]>('clusters')).map((x) => x.value));
      if (url.searchParams.get('format') === 'json') json(res, 200, { clusters: views });
      else send(res, 200, clustersText(views));
    });
    const prom = async (_q: IncomingMessage, res: ServerResponse): Promise<void> => send(res, 200, await this.renderMetrics(), 'text/plain; version=0.0.4; charset=utf-8');
    get('/stats/prometheus', prom);
    get('/stats', async (q, res, url) => {
      const f = url.searchParams.get('format');
      if (f === 'prometheus') return prom(q, res);
      const text = await this.renderMetrics();
      if (f === 'json') json(res, 200, statsJsonOf(text));
      else send(res, 200, statsTextOf(text));
    });
    get('/server_info', async (_q, res) => {
      const info = (await this.first<Record<string, unknown>>('serverInfo')) ?? {};
      const st = await this.readiness();
      json(res, 200, { ...info, state: this.draining ? 'DRAINING' : st.ready ? 'LIVE' : 'PRE_INITIALIZING', pid: process.pid, concurrency: this.n, ports: this.portMap() });
    });
    get('/listeners', async (_q, res, url) => {
      const proxy = ((await this.first<Array<{ name: string; address: string; port: number }>>('listeners')) ?? []).filter((l) => l.name === 'outbound' || l.name === 'inbound');
      const l = [...proxy, ...this.servers.map((s) => ({ name: s.name, address: s.address, port: s.port }))];
      if (url.searchParams.get('format') === 'json') json(res, 200, l);
      else send(res, 200, l.map((x) => `${x.name}::${x.address}:${x.port}`).join('\n') + '\n');
    });
    get('/workers', async (_q, res) => json(res, 200, { concurrency: this.n, restarts: this.restartsTotal, workers: await this.workers() }));
    post('/logging', async (q, res, url) => {
      const level = url.searchParams.get('level');
      if (level !== null) {
        if (!isLevel(level)) return send(res, 400, `unknown level ${level}\n`);
        this.logger.level = level;
      }
      return this.broadcast('POST')(q, res, url);
    });
    post('/reset_counters', this.broadcast('POST'));
    post('/drain_listeners', async (q, res, url) => { this.draining = true; return this.broadcast('POST')(q, res, url); });
    post('/healthcheck/fail', async (q, res, url) => { this.healthFail = true; return this.broadcast('POST')(q, res, url); });
    post('/healthcheck/ok', async (q, res, url) => { this.healthFail = false; return this.broadcast('POST')(q, res, url); });
    post('/quitquitquit', (_q, res) => {
      send(res, 200, 'OK\n');
      setImmediate(() => { void this.shutdown('quitquitquit'); });
    });
    // Read-only views of the route table and the dashboard: the config is the same in every worker, so one worker's
    // answer is shown (its dashboard counters are that worker's share of the traffic).
    for (const p of ['/debug/route', '/debug/routes', '/debug/dashboard', '/']) get(p, this.forward());
    get('/help', (_q, res) => {
      const lines = [...r.entries()].map(([p, v]) => `${v.method} ${p}`).sort();
      send(res, 200, `Remora admin (${this.n} workers)\n\n${lines.join('\n')}\n`);
    });
    return r;
  }

  private portMap(): Record<string, number> {
    return { outbound: this.ports.outbound, inbound: this.ports.inbound, ...Object.fromEntries(this.servers.map((s) => [s.name, s.port])) };
  }
}

/** `remora run --concurrency N` (N > 1) in the primary process. Same contract as the single-process main. */
export async function runPrimary(opts: RunOptions, n: number, t0: number): Promise<number> {
  const p = new Primary(opts, n);
  let info: Omit<PrimaryReady, 'startupMs'>;
  try {
    info = await p.start();
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode ?? 1;
    if ((err as { exitCode?: number }).exitCode === undefined) process.stderr.write(`remora run: ${(err as Error).message}\n`);
    return code === 0 ? 1 : code;
  }
  const ready: PrimaryReady = { ...info, startupMs: Math.round(performance.now() - t0) };
  process.stdout.write(`remora ready ${JSON.stringify(ready)}\n`);
  return new Promise<number>((resolve) => {
    p.onExit = (code) => {
      resolve(code);
      setTimeout(() => process.exit(code), 50).unref();
    };
    process.once('SIGTERM', () => { void p.shutdown('SIGTERM'); });
    process.once('SIGINT', () => { void p.shutdown('SIGINT'); });
  });
}
