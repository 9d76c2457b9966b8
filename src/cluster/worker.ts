/**
 * One `--concurrency N` worker: a full Sidecar (own config store and watcher, own pools, LB, outlier and
 * circuit-breaker state) whose proxy listeners share the primary's ports, with no admin/stats/health of its own:
 * it answers the primary's RPCs instead.
 */
import { tuneForServing } from '../util/v8-tuning.js';
import { dropStartupPages } from '../util/resident.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Sidecar } from '../app.js';
import type { Environment, RunOptions } from '../run-options.js';
import { adminRoutes } from '../admin/server.js';
import { isToWorker, type AdminAnswer, type FromWorker, type ToWorker, type WorkerReadiness } from './ipc.js';

/** Runs an admin route handler of this worker against an in-memory response (the handlers only use these members). */
async function runAdmin(routes: ReturnType<typeof adminRoutes>, method: string, path: string): Promise<AdminAnswer> {
  const url = new URL(path, 'http://admin');
  const route = routes.get(url.pathname);
  if (!route) return { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: 'not found\n' };
  if (route.method !== method && !(route.method === 'GET' && method === 'HEAD')) {
    return { status: 405, headers: { allow: route.method, 'content-type': 'text/plain; charset=utf-8' }, body: `use ${route.method}\n` };
  }
  const ans: AdminAnswer = { status: 200, headers: {}, body: '' };
  let sent = false;
  const res = {
    get headersSent() { return sent; },
    setHeader(k: string, v: string | number) { ans.headers[k.toLowerCase()] = String(v); },
    writeHead(status: number, h?: Record<string, string | number>) {
      ans.status = status;
      for (const [k, v] of Object.entries(h ?? {})) ans.headers[k.toLowerCase()] = String(v);
      sent = true;
    },
    end(body?: string) { if (body !== undefined) ans.body += body; sent = true; },
    destroy() { sent = true; },
  };
  const req = { method, url: path, headers: {} };
  await route.handler(req as unknown as IncomingMessage, res as unknown as ServerResponse, url);
  delete ans.headers['content-length']; // the primary's server recomputes it
  return ans;
}

function send(m: FromWorker): void {
  process.send?.(m);
}

/** Start the worker's Sidecar and serve RPCs until told to shut down. Resolves with the exit code. */
export async function runWorker(opts: RunOptions, env: Environment): Promise<number> {
  const sidecar = new Sidecar({ ...opts, serveAdmin: false }, env);
  try {
    await sidecar.start();
    tuneForServing();
    if (env.REMORA_KEEP_STARTUP_PAGES !== '1') dropStartupPages();
  } catch (err) {
    const e = err as Error & { configErrors?: string[] };
    // The primary prints the first worker's failure once: every worker loads the same files and fails alike.
    const message = e.configErrors ? `remora run: invalid configuration, not starting:\n${e.configErrors.join('\n')}\n` : `remora run: ${e.message}\n`;
    await sidecar.stop().catch(() => {});
    await new Promise<void>((r) => { if (process.send) process.send({ remora: 'failed', message } satisfies FromWorker, () => r()); else r(); });
    // The IPC channel keeps the loop alive: exit explicitly.
    setTimeout(() => process.exit(1), 20).unref();
    return 1;
  }
  // The primary coordinates signals (it drains every worker); a terminal's SIGINT reaches the whole process group.
  process.on('SIGTERM', () => {});
  process.on('SIGINT', () => {});
  const routes = adminRoutes(sidecar);
  const handle = async (m: ToWorker): Promise<unknown> => {
    switch (m.op) {
      case 'metrics': return sidecar.renderMetrics();
      case 'clusters': return sidecar.clusterViews();
      case 'configDump': return sidecar.configDump();
      case 'serverInfo': return sidecar.serverInfo();
      case 'listeners': return sidecar.listenerInfo();
      case 'readiness': {
        const r = sidecar.readiness();
        const snap = sidecar.store.current;
        const out: WorkerReadiness = { ready: r.ready, reason: r.reason, version: snap?.version ?? null, hash: snap?.hash ?? null };
        return out;
      }
      case 'admin': {
        const a = m.arg as { method: string; path: string };
        return runAdmin(routes, a.method, a.path);
      }
      case 'shutdown':
        void sidecar.shutdown(String(m.arg ?? 'primary'));
        return undefined;
    }
  };
  process.on('message', (m: unknown) => {
    if (!isToWorker(m)) return;
    handle(m).then(
      (value) => { if (m.id !== 0) send({ remora: 'reply', id: m.id, ok: true, value }); },
      (err: Error) => { if (m.id !== 0) send({ remora: 'reply', id: m.id, ok: false, error: err.message }); },
    );
  });
  const snap = sidecar.store.current;
  send({ remora: 'ready', outbound: sidecar.port('outbound'), inbound: sidecar.port('inbound'), version: snap?.version ?? null, hash: snap?.hash ?? null });
  return new Promise<number>((resolve) => {
    sidecar.onExit = (code) => {
      resolve(code);
      // Everything is closed and flushed; the IPC channel and stray handles would keep the process alive.
      setTimeout(() => process.exit(code), 50).unref();
    };
  });
}
