/**
 * Per-try request headers when tries share one header array (the forwarder writes them in place): each try an
 * upstream sees carries exactly one x-envoy-attempt-count (its own number), one trace context (sampled spans
 * on, with and without an incoming traceparent), one x-envoy-expected-rq-timeout-ms and one x-request-id.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer } from 'node:net';
import type { Agent } from 'undici';
import { FakeUpstream, fakeUpstream, type SeenRequest } from '../../support/fake-upstream.js';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { call, client, serviceEntry } from './helpers.js';

let flaky: FakeUpstream; // 503, 503, then 200 per x-test
let proxy: RunningProxy;
let http: Agent;
const perKey = new Map<string, number>();

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

beforeAll(async () => {
  flaky = (await fakeUpstream('flaky')).behave((req, res) => {
    const k = String(req.headers['x-test'] ?? '');
    const n = (perKey.get(k) ?? 0) + 1;
    perKey.set(k, n);
    if (n <= 2) { res.writeHead(503); res.end('fail'); return 'handled'; }
    return undefined;
  });
  const yaml = `${serviceEntry('flaky', [{ port: flaky.port }])}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky, namespace: default}
spec:
  hosts: [flaky]
  http:
  - timeout: 5s
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: flaky}}]
`;
  // Every request sampled; the collector is a closed port (export failures are counted and dropped).
  proxy = await startProxy({ 'mesh.yaml': yaml }, ['--trace-endpoint', `http://127.0.0.1:${await closedPort()}/v1/traces`, '--trace-sampling', '100']);
  http = client();
});

afterAll(async () => {
  await http?.close();
  await proxy?.stop();
  await flaky?.close();
});

function count(r: SeenRequest, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) if (r.rawHeaders[i]!.toLowerCase() === name) out.push(r.rawHeaders[i + 1]!);
  return out;
}

function triesFor(key: string): SeenRequest[] {
  return flaky.requests.filter((r) => r.headers['x-test'] === key);
}

describe('headers of each try', () => {
  it('a root request: one traceparent per try, a new span id each time, attempt counts 1, 2, 3', async () => {
    const r = await call(proxy, http, '/a', { host: 'flaky', 'x-test': 'root' });
    expect(r.status).toBe(200);
    const tries = triesFor('root');
    expect(tries).toHaveLength(3);
    expect(tries.map((t) => count(t, 'x-envoy-attempt-count'))).toEqual([['1'], ['2'], ['3']]);
    const tps = tries.map((t) => count(t, 'traceparent'));
    for (const tp of tps) expect(tp).toHaveLength(1);
    const ids = tps.map((tp) => tp[0]!.split('-'));
    expect(new Set(ids.map((x) => x[1])).size).toBe(1); // one trace
    expect(new Set(ids.map((x) => x[2])).size).toBe(3); // a client span per try
    for (const t of tries) {
      expect(count(t, 'x-request-id')).toHaveLength(1);
      expect(count(t, 'x-envoy-expected-rq-timeout-ms')).toHaveLength(1);
    }
    expect(new Set(tries.map((t) => count(t, 'x-request-id')[0])).size).toBe(1);
  });

  it('an incoming traceparent: replaced (not repeated) on every try, same trace id', async () => {
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const r = await call(proxy, http, '/b', { host: 'flaky', 'x-test': 'child', traceparent: `00-${trace}-00f067aa0ba902b7-01` });
    expect(r.status).toBe(200);
    const tries = triesFor('child');
    expect(tries).toHaveLength(3);
    for (const t of tries) {
      const tp = count(t, 'traceparent');
      expect(tp).toHaveLength(1);
      expect(tp[0]!.split('-')[1]).toBe(trace);
      expect(tp[0]!.split('-')[2]).not.toBe('00f067aa0ba902b7');
    }
    expect(tries.map((t) => count(t, 'x-envoy-attempt-count'))).toEqual([['1'], ['2'], ['3']]);
  });
});
