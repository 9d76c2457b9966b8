/**
 * Admin API on 127.0.0.1 (Envoy-like), the Prometheus stats port and the health port.
 * Mutating endpoints are POST-only; the admin listener is never reachable through the proxy listeners.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Sidecar } from '../app.js';
import { isLevel } from '../util/logger.js';
import { explainRequest, formatExplanation } from '../routing/explain.js';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, `${JSON.stringify(value, null, 2)}\n`, 'application/json');
}

export function adminRoutes(s: Sidecar): Map<string, { method: 'GET' | 'POST'; handler: Handler }> {
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
  get('/logging', (_q, res) => send(res, 200, `active level: ${s.logger.level}\n`));
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
  get('/', (_q, res) => {
    const lines = [...r.entries()].map(([p, v]) => `${v.method} ${p}`).sort();
    send(res, 200, `Remora admin\n\n${lines.join('\n')}\n`);
  });
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
