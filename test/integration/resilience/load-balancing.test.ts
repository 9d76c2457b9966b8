/**
 * Load balancing through the real CLI (ISTIO-SEMANTICS §3 scenarios 15 and 16): ROUND_ROBIN vs LEAST_REQUEST
 * (and the peak-EWMA opt-in) with one slow host, consistent hashing on a header and on a generated cookie.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Agent } from 'undici';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { call, client, pool, serviceEntry } from './helpers.js';

let fast: FakeUpstream;
let slow: FakeUpstream;
const hosts: FakeUpstream[] = [];
let proxy: RunningProxy;
let http: Agent;

const dr = (name: string, tp: string, annotations = ''): string => `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: default${annotations}}
spec:
  host: ${name}
  trafficPolicy: ${tp}
`;

function config(): string {
  const pair = [{ port: fast.port }, { port: slow.port }];
  const trio = hosts.map((h) => ({ port: h.port }));
  return [
    serviceEntry('rr', pair),
    serviceEntry('lr', pair),
    serviceEntry('ewma', pair),
    serviceEntry('byuser', trio),
    serviceEntry('bycookie', trio),
    dr('rr', '{loadBalancer: {simple: ROUND_ROBIN}}'),
    dr('lr', '{loadBalancer: {simple: LEAST_REQUEST}}'),
    dr('ewma', '{loadBalancer: {simple: LEAST_REQUEST}}', ', annotations: {remora.io/lb-algorithm: peak-ewma}'),
    dr('byuser', '{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}'),
    dr('bycookie', '{loadBalancer: {consistentHash: {httpCookie: {name: sid, ttl: 60s}}}}'),
  ].join('---\n');
}

beforeAll(async () => {
  fast = (await fakeUpstream('fast')).latency(10);
  slow = (await fakeUpstream('slow')).latency(100);
  for (const id of ['h1', 'h2', 'h3']) hosts.push(await fakeUpstream(id));
  proxy = await startProxy({ 'mesh.yaml': config() });
  http = client();
});

afterAll(async () => {
  await http?.close();
  await proxy?.stop();
  await Promise.all([fast, slow, ...hosts].map((u) => u?.close()));
});

/** Share of `n` requests at concurrency 20 that went to the slow host. */
async function slowShare(host: string, n: number, concurrency = 20): Promise<number> {
  const s0 = slow.requests.length;
  const f0 = fast.requests.length;
  const res = await pool(n, concurrency, () => call(proxy, http, '/lb', { host }));
  expect(res.every((r) => r.status === 200)).toBe(true);
  const s = slow.requests.length - s0;
  expect(s + fast.requests.length - f0).toBe(n);
  return s / n;
}

describe('scenario 15: LEAST_REQUEST vs ROUND_ROBIN with a 10× slower host, concurrency 20', () => {
  it('ROUND_ROBIN splits about evenly', async () => {
    const share = await slowShare('rr', 400);
    expect(share).toBeGreaterThan(0.45);
    expect(share).toBeLessThan(0.55);
  });

  it('LEAST_REQUEST sends at most 30% to the slow host', async () => {
    const share = await slowShare('lr', 400);
    expect(share).toBeLessThanOrEqual(0.3);
  });

  it('peak-EWMA (remora.io/lb-algorithm annotation) sends at most 30% to the slow host', async () => {
    const share = await slowShare('ewma', 400);
    expect(share).toBeLessThanOrEqual(0.3);
  });

  it('sequential client: active-request P2C cannot tell the hosts apart, peak-EWMA avoids the slow one by latency', async () => {
    // With one request at a time both hosts always have 0 active requests, so plain LEAST_REQUEST is a coin
    // toss; the peak-EWMA cost (rtt × (active + 1)) still sees the 100 ms host. This is what proves the
    // annotation reached the balancer.
    const plain = await slowShare('lr', 60, 1);
    const ewma = await slowShare('ewma', 60, 1);
    expect(plain).toBeGreaterThan(0.25);
    expect(ewma).toBeLessThan(0.15);
  });
});

describe('scenario 16: consistent hash', () => {
  it('httpHeaderName x-user: each of 60 users sticks to one host, and users spread over the hosts', async () => {
    const hostOf = new Map<string, Set<string>>();
    await pool(60 * 5, 8, async (i) => {
      const user = `user-${i % 60}`;
      const r = await call(proxy, http, '/h', { host: 'byuser', 'x-user': user });
      expect(r.status).toBe(200);
      (hostOf.get(user) ?? hostOf.set(user, new Set()).get(user)!).add(JSON.parse(r.body).id as string);
    });
    for (const s of hostOf.values()) expect(s.size).toBe(1);
    const used = new Set([...hostOf.values()].map((s) => [...s][0]));
    expect(used.size).toBe(3);
  });

  it('httpCookie sid with ttl: Set-Cookie on the first response, later requests with the cookie stick', async () => {
    const first = await call(proxy, http, '/c', { host: 'bycookie' });
    const sc = String(first.headers['set-cookie']);
    expect(sc).toMatch(/^sid=[0-9a-f]+; Max-Age=60; HttpOnly$/);
    const cookie = sc.split(';')[0]!;
    const firstHost = JSON.parse(first.body).id as string;
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const r = await call(proxy, http, '/c', { host: 'bycookie', cookie });
      expect(r.headers['set-cookie']).toBeUndefined();
      seen.add(JSON.parse(r.body).id as string);
    }
    expect([...seen]).toEqual([firstHost]);
    // Different clients without a cookie get different cookies (and so spread over the hosts).
    const others = await pool(30, 4, () => call(proxy, http, '/c', { host: 'bycookie' }));
    const cookies = new Set(others.map((r) => String(r.headers['set-cookie']).split(';')[0]));
    expect(cookies.size).toBe(30);
    expect(new Set(others.map((r) => JSON.parse(r.body).id)).size).toBeGreaterThan(1);
  });
});
