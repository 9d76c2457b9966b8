/**
 * The few Kubernetes API calls the status writer makes (GET, PATCH with a given patch type), over the kubeconfig's
 * cluster and credentials; an answer other than 2xx rejects with its status code. I/O only.
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export class KubeApiError extends Error {
  constructor(message: string, readonly statusCode: number | undefined) {
    super(message);
    this.name = 'KubeApiError';
  }
}

export interface KubeApi {
  get(path: string): Promise<Record<string, unknown>>;
  patch(path: string, body: unknown, contentType: 'application/merge-patch+json' | 'application/apply-patch+yaml', query?: Record<string, string>): Promise<Record<string, unknown>>;
  /** POST to a collection (409 when the object exists). */
  create(collectionPath: string, body: unknown): Promise<Record<string, unknown>>;
}

export function kubeApi(kc: KubeConfig, timeoutMs = 10_000): KubeApi {
  const call = async (method: 'GET' | 'PATCH' | 'POST', path: string, body?: string, contentType?: string, query?: Record<string, string>): Promise<Record<string, unknown>> => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new KubeApiError('kubeconfig has no current cluster', undefined);
    const url = new URL(cluster.server.replace(/\/+$/, '') + path);
    for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    const mod = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { ...(opts.headers as Record<string, string> | undefined), accept: 'application/json' };
    if (body !== undefined) { headers['content-type'] = contentType!; headers['content-length'] = String(Buffer.byteLength(body)); }
    return new Promise((resolve, reject) => {
      const req = mod.request(url, { ...opts, method, headers, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(new KubeApiError(`${method} ${path}: ${e.message}`, undefined)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Record<string, unknown> = {};
          try { parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {}; } catch { /* not JSON */ }
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) resolve(parsed);
          else reject(new KubeApiError(`${method} ${path}: ${code}${typeof parsed.message === 'string' ? `: ${parsed.message}` : ''}`, code));
        });
      });
      req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
      req.on('error', (e) => reject(new KubeApiError(`${method} ${path}: ${e.message}`, undefined)));
      if (body !== undefined) req.end(body); else req.end();
    });
  };
  return {
    get: (path) => call('GET', path),
    patch: (path, body, contentType, query) => call('PATCH', path, typeof body === 'string' ? body : JSON.stringify(body), contentType, query),
    create: (path, body) => call('POST', path, JSON.stringify(body), 'application/json'),
  };
}
