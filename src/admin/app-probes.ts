/**
 * Kubelet probes of the app, rewritten by `remora inject` to `:15021/app-health/<container>/<livez|readyz|startupz>`
 * (as Istio's rewriteAppHTTPProbers), are forwarded here to the app's original httpGet probe, so they keep working
 * when inbound traffic is captured. The original probes arrive in REMORA_APP_PROBERS (JSON, keyed by path).
 */
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';

// node:https (with tls) costs ~6 ms to load and only HTTPS app probes need it: loaded on the first one.
const require = createRequire(import.meta.url);
const httpsRequest = (): typeof import('node:https').request => (require('node:https') as typeof import('node:https')).request;

export interface AppProber {
  httpGet: { path: string; port: number; scheme: 'HTTP' | 'HTTPS'; host?: string; httpHeaders?: Array<{ name: string; value: string }> };
  timeoutSeconds: number;
}

export function parseAppProbers(json: string | undefined): Map<string, AppProber> {
  const out = new Map<string, AppProber>();
  if (!json) return out;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (err) {
    throw new Error(`REMORA_APP_PROBERS is not valid JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('REMORA_APP_PROBERS must be a JSON object keyed by probe path');
  for (const [path, p] of Object.entries(v as Record<string, unknown>)) {
    const pr = p as Partial<AppProber>;
    if (!path.startsWith('/app-health/') || !pr?.httpGet || typeof pr.httpGet.port !== 'number') throw new Error(`REMORA_APP_PROBERS: bad entry ${path}`);
    out.set(path, { httpGet: { path: pr.httpGet.path ?? '/', port: pr.httpGet.port, scheme: pr.httpGet.scheme === 'HTTPS' ? 'HTTPS' : 'HTTP', ...(pr.httpGet.host ? { host: pr.httpGet.host } : {}), ...(pr.httpGet.httpHeaders ? { httpHeaders: pr.httpGet.httpHeaders } : {}) }, timeoutSeconds: pr.timeoutSeconds ?? 1 });
  }
  return out;
}

/** Run one app probe; answers the kubelet with the app's status (or 503 when the app cannot be reached in time). */
export function forwardProbe(p: AppProber, _req: IncomingMessage, res: ServerResponse): void {
  const headers: Record<string, string> = { 'user-agent': 'kube-probe/remora' };
  for (const h of p.httpGet.httpHeaders ?? []) headers[h.name] = h.value;
  const https = p.httpGet.scheme === 'HTTPS';
  const opts = {
    host: p.httpGet.host ?? '127.0.0.1',
    port: p.httpGet.port,
    path: p.httpGet.path,
    method: 'GET',
    headers,
    timeout: p.timeoutSeconds * 1000,
    // kubelet does not verify the app's certificate for HTTPS probes either.
    rejectUnauthorized: false,
  };
  const done = (status: number, body: string): void => {
    if (res.headersSent) return;
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const up = (https ? httpsRequest() : httpRequest)(opts, (r) => {
    r.resume();
    r.on('end', () => done(r.statusCode ?? 503, ''));
    r.on('error', () => done(503, 'app probe failed\n'));
  });
  up.on('timeout', () => up.destroy(new Error('timeout')));
  up.on('error', (err) => done(503, `app probe failed: ${(err as NodeJS.ErrnoException).code ?? err.message}\n`));
  up.end();
}
