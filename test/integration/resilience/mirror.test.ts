/**
 * Mirroring through the real CLI (ISTIO-SEMANTICS §3 scenario 12): the share mirrored, the `-shadow` Host,
 * and a slow, hanging or failing shadow never touching the primary response.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Agent } from 'undici';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { call, client, pool, serviceEntry } from './helpers.js';

let primary: FakeUpstream;
let shadow: FakeUpstream;
let sleepy: FakeUpstream; // answers after 5 s
let stuck: FakeUpstream; // never answers
let failing: FakeUpstream; // 500
let proxy: RunningProxy;
let http: Agent;

const vs = (name: string, mirror: string, pct: number): string => `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${name}]
  http:
  - route: [{destination: {host: primary}}]
    mirror: {host: ${mirror}}
    mirrorPercentage: {value: ${pct}}
`;

function config(): string {
  return [
    serviceEntry('primary', [{ port: primary.port }]),
    serviceEntry('shadow', [{ port: shadow.port }]),
    serviceEntry('sleepy', [{ port: sleepy.port }]),
    serviceEntry('stuck', [{ port: stuck.port }]),
    serviceEntry('failing', [{ port: failing.port }]),
    vs('quarter', 'shadow', 25),
    vs('slowmirror', 'sleepy', 100),
    vs('stuckmirror', 'stuck', 100),
    vs('failmirror', 'failing', 100),
  ].join('---\n');
}

beforeAll(async () => {
  primary = await fakeUpstream('primary');
  shadow = await fakeUpstream('shadow');
  sleepy = (await fakeUpstream('sleepy')).latency(5000);
  stuck = (await fakeUpstream('stuck')).behave(() => 'handled');
  failing = (await fakeUpstream('failing')).behave((_q, res) => { res.writeHead(500); res.end('shadow broke'); return 'handled'; });
  proxy = await startProxy({ 'mesh.yaml': config() });
  http = client();
});

afterAll(async () => {
  await http?.close();
  await proxy?.stop();
  await Promise.all([primary, shadow, sleepy, stuck, failing].map((u) => u?.close()));
});

describe('scenario 12: mirror', () => {
  it('mirrorPercentage 25: every request reaches the primary, ~25% reach the shadow with a -shadow Host', async () => {
    const p0 = primary.requests.length;
    const n = 1000;
    const res = await pool(n, 16, (i) => call(proxy, http, `/m/${i}`, { host: 'quarter' }));
    expect(res.every((r) => r.status === 200)).toBe(true);
    expect(primary.requests.length - p0).toBe(n);
    // Fire and forget: let the last shadows land.
    let last = -1;
    await waitFor(() => { const now = shadow.requests.length; const done = now === last; last = now; return done; }, 3000, 100);
    const share = shadow.requests.length / n;
    // 25 ± 4 % (σ ≈ 1.4 % at n = 1,000)
    expect(share).toBeGreaterThan(0.21);
    expect(share).toBeLessThan(0.29);
    for (const s of shadow.requests) expect(s.headers.host).toBe('quarter-shadow');
  });

  for (const [name, host, label] of [['5 s shadow', 'slowmirror', 'sleepy'], ['hanging shadow', 'stuckmirror', 'stuck'], ['failing shadow', 'failmirror', 'failing']] as const) {
    it(`a ${name} leaves the client's status and latency unchanged`, async () => {
      const target = label === 'sleepy' ? sleepy : label === 'stuck' ? stuck : failing;
      const s0 = target.requests.length;
      const res = await pool(20, 4, () => call(proxy, http, '/x', { host }));
      for (const r of res) {
        expect(r.status).toBe(200);
        expect(JSON.parse(r.body).id).toBe('primary');
        expect(r.ms).toBeLessThan(500); // the shadow takes ≥ 5 s or forever
      }
      await waitFor(() => target.requests.length - s0 === 20, 3000);
    });
  }
});
