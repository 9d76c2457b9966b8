/**
 * Admin API on 127.0.0.1 (Envoy-like), the Prometheus stats port and the health port.
 * Mutating endpoints are POST-only; the admin listener is never reachable through the proxy listeners.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { getHeapSpaceStatistics } from 'node:v8';
import { isLevel, type Logger } from '../util/logger.js';
import { explainRequest, formatExplanation } from '../routing/explain.js';
import { VERSION } from '../version.js';
import { clustersView, dashboardHtml, routesView, type DashboardModel } from './dashboard.js';
import type { ConfigStore } from '../discovery/config-store.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { ClusterView } from '../model.js';

/** What the admin routes read and drive: the running sidecar (src/app.ts), as this module needs it. */
export interface AdminTarget {
  readonly logger: Logger;
  readonly store: ConfigStore;
  readonly metrics: Metrics;
  draining: boolean;
  healthFail: boolean;
  readiness(): { ready: boolean; reason: string };
  configDump(): unknown;
  clusterViews(): ClusterView[];
  clustersText(): string;
  renderMetrics(): string;
  statsText(): string;
  statsJson(): unknown;
  serverInfo(): unknown;
  listenerInfo(): Array<{ name: string; address: string; port: number }>;
  resetCounters(): void;
  drainListeners(inboundOnly: boolean): void;
  shutdown(reason: string): Promise<number>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, `${JSON.stringify(value, null, 2)}\n`, 'application/json');
}

/**
 * Envoy's /memory, for a V8 process: Envoy's field names (decimal strings, as Envoy prints its uint64s) mapped to
 * the V8 heap (allocated = used, heap_size = reserved), plus the Node.js view and each V8 heap space.
 */
export function memoryView(): Record<string, unknown> {
  const m = process.memoryUsage();
  return {
    allocated: String(m.heapUsed),
    heap_size: String(m.heapTotal),
    total_physical_bytes: String(m.rss),
    external: String(m.external),
    array_buffers: String(m.arrayBuffers),
    heap_spaces: getHeapSpaceStatistics().map((x) => ({ name: x.space_name, size: x.space_size, used: x.space_used_size, physical: x.physical_space_size })),
  };
}

export function adminRoutes(s: AdminTarget): Map<string, { method: 'GET' | 'POST'; handler: Handler }> {
  const r = new Map<string, { method: 'GET' | 'POST'; handler: Handler }>();
  const get = (p: string, h: Handler): void => { r.set(p, { method: 'GET', handler: h }); };
  const post = (p: string, h: Handler): void => { r.set(p, { method: 'POST', handler: h }); };
  get('/ready', (_q, res) => {
    const st = s.readiness();
    send(res, st.ready ? 200 : 503, st.ready ? 'LIVE\n' : `${st.reason}\n`);
  });
  get('/healthz/ready', (_q, res) => {
    const st = s.readiness();
    send(res, st.ready ? 200 : 503, st.ready ? '' : `${st.reason}\n`);
  });
  get('/config_dump', (_q, res) => json(res, 200, s.configDump()));
  get('/clusters', (_q, res, url) => {
    if (url.searchParams.get('format') === 'json') json(res, 200, { clusters: s.clusterViews() });
    else send(res, 200, s.clustersText());
  });
  get('/stats/prometheus', (_q, res) => send(res, 200, s.renderMetrics(), 'text/plain; version=0.0.4; charset=utf-8'));
  get('/stats', (_q, res, url) => {
    if (url.searchParams.get('format') === 'prometheus') send(res, 200, s.renderMetrics(), 'text/plain; version=0.0.4; charset=utf-8');
    else if (url.searchParams.get('format') === 'json') json(res, 200, s.statsJson());
    else send(res, 200, s.statsText());
  });
  get('/server_info', (_q, res) => json(res, 200, s.serverInfo()));
  get('/memory', (_q, res) => json(res, 200, memoryView()));
  get('/listeners', (_q, res, url) => {
    const l = s.listenerInfo();
    if (url.searchParams.get('format') === 'json') json(res, 200, l);
    else send(res, 200, l.map((x) => `${x.name}::${x.address}:${x.port}`).join('\n') + '\n');
  });
  post('/logging', (_q, res, url) => {
    const level = url.searchParams.get('level');
    if (level !== null) {
      if (!isLevel(level)) return send(res, 400, `unknown level ${level}\n`);
      s.logger.level = level;
    }
    send(res, 200, `active level: ${s.logger.level}\n`);
  });
  // POST only, as in Envoy: routes are keyed by path, so a GET registration here would replace the POST handler.
  post('/reset_counters', (_q, res) => { s.resetCounters(); send(res, 200, 'OK\n'); });
  post('/drain_listeners', (_q, res, url) => {
    s.drainListeners(url.searchParams.has('inboundonly'));
    send(res, 200, 'OK\n');
  });
  post('/quitquitquit', (_q, res) => {
    send(res, 200, 'OK\n');
    setImmediate(() => { void s.shutdown('quitquitquit'); });
  });
  post('/healthcheck/fail', (_q, res) => { s.healthFail = true; send(res, 200, 'OK\n'); });
  post('/healthcheck/ok', (_q, res) => { s.healthFail = false; send(res, 200, 'OK\n'); });
  get('/debug/route', (_q, res, url) => {
    const snap = s.store.current;
    if (!snap) return send(res, 503, 'no config loaded\n');
    const host = url.searchParams.get('host');
    if (!host) return send(res, 400, 'usage: /debug/route?host=reviews&path=/&method=GET&header=k:v\n');
    const headers: Record<string, string> = {};
    for (const h of url.searchParams.getAll('header')) {
      const i = h.indexOf(':');
      if (i > 0) headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
    }
    const e = explainRequest(snap, { method: url.searchParams.get('method') ?? 'GET', url: `http://${host}${url.searchParams.get('path') ?? '/'}`, headers });
    if (url.searchParams.get('format') === 'text') send(res, 200, formatExplanation(e));
    else json(res, 200, e);
  });
  // Dashboard data: read-only views of the live snapshot, the per-cluster aggregates and the cluster runtimes.
  get('/debug/routes', (_q, res) => {
    const { routes, omitted } = routesView(s.store.current, s.metrics.clusterSummaries());
    json(res, 200, { version: s.store.current?.version ?? null, routes, omittedRoutes: omitted });
  });
  get('/debug/dashboard', (_q, res) => {
    const snap = s.store.current;
    const summaries = s.metrics.clusterSummaries();
    const rv = routesView(snap, summaries);
    const cv = clustersView(s.clusterViews(), summaries, performance.now());
    const st = s.readiness();
    const model: DashboardModel = {
      server: {
        version: VERSION,
        state: s.draining ? 'DRAINING' : st.ready ? 'LIVE' : st.reason,
        uptimeSeconds: Math.round(process.uptime()),
        configVersion: snap?.version ?? null,
        configHash: snap?.hash ?? null,
      },
      routes: rv.routes,
      omittedRoutes: rv.omitted,
      clusters: cv.clusters,
      omittedClusters: cv.omitted,
      ejected: cv.ejected,
    };
    json(res, 200, model);
  });
  get('/help', (_q, res) => {
    const lines = [...r.entries()].map(([p, v]) => `${v.method} ${p}`).sort();
    send(res, 200, `Remora admin\n\n${lines.join('\n')}\n`);
  });
  get('/', (_q, res) => send(res, 200, dashboardHtml(), 'text/html; charset=utf-8'));
  return r;
}

export function createAdminServer(routes: Map<string, { method: 'GET' | 'POST'; handler: Handler }>, only?: readonly string[], fallback?: (path: string) => Handler | undefined): Server {
  return createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://admin');
    } catch {
      return send(res, 400, 'bad request\n');
    }
    const path = url.pathname;
    const fb = fallback?.(path);
    if (fb !== undefined) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'use GET\n');
      return void fb(req, res, url);
    }
    if (only && !only.includes(path)) return send(res, 404, 'not found\n');
    const route = routes.get(path);
    if (!route) return send(res, 404, 'not found\n');
    if (req.method !== route.method && !(route.method === 'GET' && req.method === 'HEAD')) {
      res.setHeader('allow', route.method);
      return send(res, 405, `use ${route.method}\n`);
    }
    Promise.resolve(route.handler(req, res, url)).catch((err: Error) => {
      if (!res.headersSent) send(res, 500, `${err.message}\n`);
      else res.destroy();
    });
  });
}
