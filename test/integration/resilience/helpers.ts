/**
 * Shared bits for the resilience integration tests: ServiceEntry YAML for loopback upstreams, Envoy stats
 * read back from the admin port, and a bounded-concurrency request runner.
 */
import { request, Agent } from 'undici';
import type { RunningProxy } from '../../support/proxy-harness.js';

/** A STATIC ServiceEntry `name.default.svc.cluster.local:80` over loopback ports (optional weights/labels). */
export function serviceEntry(name: string, eps: ReadonlyArray<{ port: number; weight?: number; labels?: Record<string, string> }>, svcPort = 80): string {
  const lines = eps.map((e) => {
    const extra = [e.weight !== undefined ? `weight: ${e.weight}` : '', e.labels ? `labels: ${JSON.stringify(e.labels)}` : ''].filter(Boolean).join(', ');
    return `  - {address: 127.0.0.1, ports: {http: ${e.port}}${extra ? `, ${extra}` : ''}}`;
  });
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${name}.default.svc.cluster.local]
  ports: [{number: ${svcPort}, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
${lines.join('\n')}
`;
}

/** Sum of one Envoy cluster stat (`envoy_cluster_<stat>`) on /stats/prometheus, optionally for clusters containing `cluster`. */
export async function clusterStat(proxy: RunningProxy, stat: string, cluster?: string): Promise<number> {
  const body = (await proxy.admin('/stats/prometheus')).body;
  let sum = 0;
  const re = new RegExp(`^envoy_cluster_${stat}\\{([^}]*)\\} (\\S+)$`, 'gm');
  for (const m of body.matchAll(re)) {
    if (cluster !== undefined && !m[1]!.includes(cluster)) continue;
    sum += Number(m[2]);
  }
  return sum;
}

export interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string; ms: number }

/** One request to the proxy's outbound port through `dispatcher` (a fresh Agent keeps tests independent). */
export async function call(proxy: RunningProxy, dispatcher: Agent, path: string, headers: Record<string, string>, method = 'GET', body?: string): Promise<Reply> {
  const t0 = performance.now();
  const r = await request(proxy.url(path), { method: method as 'GET', headers, body: body ?? null, dispatcher });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, body: text, ms: performance.now() - t0 };
}

/** Run `n` tasks with at most `concurrency` in flight; results in task order. */
export async function pool<T>(n: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      out[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return out;
}

/** A keep-alive client with enough connections for the concurrency the tests use. */
export function client(connections = 64): Agent {
  return new Agent({ connections, keepAliveTimeout: 10_000 });
}
