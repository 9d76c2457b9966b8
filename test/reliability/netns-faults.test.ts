/**
 * Reliability row 14 (RELIABILITY.md §4): faults across a real network. Three endpoints of one ServiceEntry live in a
 * network namespace behind a veth pair (test/reliability/support/netns-hosts.ts); one at a time is made to refuse
 * (iptables REJECT --reject-with tcp-reset), to black-hole (DROP) or to lose 5 % of its packets (iptables' statistic
 * match: tc netem is not in this kernel). DestinationRule connectTimeout 1 s and outlier detection (3 consecutive
 * 5xx, interval 1 s, baseEjectionTime 4 s, maxEjectionPercent 34), VirtualService retries 2 on connect-failure/reset.
 * Each request opens its own upstream connection (maxRequestsPerConnection 1), so every attempt meets the fault
 * at connect time as a new client would.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Agent, request } from 'undici';
import { netnsAvailable } from '../support/netns.js';
import { startProxy, waitFor, type RunningProxy } from '../support/proxy-harness.js';
import { pool } from '../integration/resilience/helpers.js';
import { createNetnsHosts, type NetnsHosts } from './support/netns-hosts.js';
import { sleep } from './support/proc.js';

const unavailable = netnsAvailable();
if (unavailable !== undefined) console.warn(`reliability/netns-faults: skipped: ${unavailable}`);

const BASE_EJECTION_S = 4;

interface Result { status: number | string; server: string; ms: number }

describe.skipIf(unavailable !== undefined)('row 14: upstream faults across a network namespace', () => {
  let hosts: NetnsHosts;
  let proxy: RunningProxy;
  let agent: Agent;

  beforeAll(async () => {
    hosts = await createNetnsHosts('flt', 100 + (process.pid % 100), 3);
    const eps = hosts.ips.map((ip) => `  - {address: ${ip}, ports: {http: ${hosts.port}}}`).join('\n');
    proxy = await startProxy({
      'mesh.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hosts, namespace: default}
spec:
  hosts: [hosts.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
${eps}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hosts, namespace: default}
spec:
  host: hosts
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {connectTimeout: 1s}, http: {maxRequestsPerConnection: 1}}
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: ${BASE_EJECTION_S}s, maxEjectionPercent: 34}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hosts, namespace: default}
spec:
  hosts: [hosts]
  http:
  - timeout: 10s
    retries: {attempts: 2, perTryTimeout: 3s, retryOn: "connect-failure,reset,refused-stream,503"}
    route: [{destination: {host: hosts}}]
`,
    });
    agent = new Agent({ connections: 16 });
  });

  afterAll(async () => {
    await agent?.close();
    await proxy?.stop();
    hosts?.destroy();
  });

  const one = async (): Promise<Result> => {
    const t0 = performance.now();
    try {
      const r = await request(proxy.url('/'), { headers: { host: 'hosts' }, dispatcher: agent });
      const text = await r.body.text();
      let server = '?';
      try { server = (JSON.parse(text) as { server: string }).server; } catch { /* a local reply */ }
      return { status: r.statusCode, server, ms: performance.now() - t0 };
    } catch (err) {
      return { status: (err as { code?: string }).code ?? 'error', server: '-', ms: performance.now() - t0 };
    }
  };
  const batch = (n: number, concurrency = 3): Promise<Result[]> => pool(n, concurrency, one);
  const hostName = (i: number): string => `h${i}`;
  /** Endpoints /clusters marks as ejected (failed_outlier_check). */
  const ejected = async (): Promise<string[]> => {
    const text = (await proxy.admin('/clusters')).body;
    return hosts.ips.filter((ip) => new RegExp(`::${ip.replace(/\./g, '\\.')}:${hosts.port}::health_flags::[^\\n]*failed_outlier_check`).test(text));
  };
  const stat = async (name: string): Promise<number> => {
    const body = (await proxy.admin('/stats/prometheus')).body;
    let sum = 0;
    for (const m of body.matchAll(new RegExp(`^envoy_cluster_${name}\\{[^}]*hosts[^}]*\\} (\\S+)$`, 'gm'))) sum += Number(m[1]);
    return sum;
  };
  const count = (rs: Result[], server: string): number => rs.filter((r) => r.server === server).length;
  const bad = (rs: Result[]): Result[] => rs.filter((r) => r.status !== 200);
  const pct = (rs: Result[], p: number): number => { const ms = rs.map((r) => r.ms).sort((a, b) => a - b); return Math.round(ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))]!); };

  /** After the fault is cleared: the host comes back once its ejection ends; requests reach it again. */
  async function returns(i: number): Promise<number> {
    const t0 = performance.now();
    await waitFor(async () => {
      const rs = await batch(6, 3);
      expect(bad(rs)).toEqual([]);
      return count(rs, hostName(i)) > 0;
    }, (BASE_EJECTION_S + 6) * 1000, 200);
    return performance.now() - t0;
  }

  it('baseline: all three hosts serve', async () => {
    const rs = await batch(30);
    expect(bad(rs)).toEqual([]);
    for (let i = 0; i < 3; i++) expect(count(rs, hostName(i))).toBeGreaterThan(5);
  });

  it('a host that refuses (TCP reset): retried on another host, 0 errors, ejected, back after the fault is removed', async () => {
    const ip = hosts.ips[1]!;
    const retries0 = await stat('upstream_rq_retry');
    hosts.fault(ip, 'reject');
    let rs: Result[];
    try {
      rs = await batch(60);
      await waitFor(async () => (await ejected()).includes(ip), 3000, 50);
    } finally {
      hosts.clear(ip);
    }
    const retries = (await stat('upstream_rq_retry')) - retries0;
    const back = await returns(1);
    console.log(`row 14 reject: ${rs.length} requests, failed ${bad(rs).length}, served by h0/h1/h2 ${count(rs, 'h0')}/${count(rs, 'h1')}/${count(rs, 'h2')}, retries ${retries}, p99 ${pct(rs, 99)} ms; ejected; back ${Math.round(back)} ms after the fault was removed (baseEjectionTime ${BASE_EJECTION_S} s)`);
    expect(bad(rs)).toEqual([]);
    expect(count(rs, 'h1')).toBe(0);
    expect(retries).toBeGreaterThanOrEqual(3); // the refused attempts went elsewhere
    expect(retries).toBeLessThan(30); // and stopped once h1 was ejected
  });

  it('a black-holed host (DROP): connect timeout 1 s, retried on another host, ejected, back after the fault is removed', async () => {
    const ip = hosts.ips[2]!;
    const timeouts0 = await stat('upstream_cx_connect_timeout');
    const fails0 = await stat('upstream_cx_connect_fail');
    hosts.fault(ip, 'drop');
    let rs: Result[];
    try {
      rs = await batch(45);
      await waitFor(async () => (await ejected()).includes(ip), 3000, 50);
    } finally {
      hosts.clear(ip);
    }
    const timeouts = (await stat('upstream_cx_connect_timeout')) - timeouts0;
    const fails = (await stat('upstream_cx_connect_fail')) - fails0;
    const slow = rs.filter((r) => r.ms >= 900);
    const back = await returns(2);
    console.log(`row 14 drop: ${rs.length} requests, failed ${bad(rs).length}, served by h0/h1/h2 ${count(rs, 'h0')}/${count(rs, 'h1')}/${count(rs, 'h2')}; upstream_cx_connect_timeout +${timeouts}, upstream_cx_connect_fail +${fails}; ${slow.length} requests waited for one (${slow.map((r) => Math.round(r.ms)).join(', ')} ms); p50 ${pct(rs, 50)} ms; back ${Math.round(back)} ms after the fault was removed`);
    expect(bad(rs)).toEqual([]);
    expect(count(rs, 'h2')).toBe(0);
    // Ejected after 3 consecutive connect timeouts (up to 3 more were in flight at the time): only those waited.
    expect(slow.length).toBeGreaterThanOrEqual(3);
    expect(slow.length).toBeLessThanOrEqual(6);
    // A request that met the black hole waited one connect timeout (1 s), then another host answered at once.
    for (const r of slow) expect(r.ms).toBeLessThan(2500);
  });

  it('5 % packet loss on one host: 0 errors', async () => {
    const ip = hosts.ips[0]!;
    hosts.fault(ip, 'loss5');
    let rs: Result[];
    try {
      rs = await batch(150, 5);
    } finally {
      hosts.clear(ip);
    }
    console.log(`row 14 loss 5 %: ${rs.length} requests, failed ${bad(rs).length}, served by h0/h1/h2 ${count(rs, 'h0')}/${count(rs, 'h1')}/${count(rs, 'h2')}, p50 ${pct(rs, 50)} ms, p99 ${pct(rs, 99)} ms, max ${pct(rs, 100)} ms; ejected now: ${JSON.stringify(await ejected())}`);
    expect(bad(rs)).toEqual([]);
    expect(count(rs, 'h0')).toBeGreaterThan(0); // lossy, not dead: it still served
  });

  it('two hosts refusing at once: maxEjectionPercent 34 ejects one of three, the requests still succeed', async () => {
    await waitFor(async () => (await ejected()).length === 0, (BASE_EJECTION_S * 2 + 4) * 1000, 200);
    const [a, b] = [hosts.ips[0]!, hosts.ips[1]!];
    hosts.fault(a, 'reject');
    hosts.fault(b, 'reject');
    let maxEjected = 0;
    let rs: Result[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        rs = rs.concat(await batch(10));
        maxEjected = Math.max(maxEjected, (await ejected()).length);
        await sleep(200);
      }
    } finally {
      hosts.clear(a);
      hosts.clear(b);
    }
    const active = await stat('outlier_detection_ejections_active');
    console.log(`row 14 two refusing: ${rs.length} requests, failed ${bad(rs).length}, served by h0/h1/h2 ${count(rs, 'h0')}/${count(rs, 'h1')}/${count(rs, 'h2')}; ejected at most ${maxEjected} at once (ejections_active ${active})`);
    expect(maxEjected).toBe(1);
    expect(bad(rs)).toEqual([]); // two retries: a third host is always left to try
    expect(count(rs, 'h2')).toBe(rs.length);
  });
});
