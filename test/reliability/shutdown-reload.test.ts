/**
 * Reliability rows 19, 20 and 21 (RELIABILITY.md §4) through the real CLI, under open-loop load:
 *  - 19: SIGTERM at a constant rate with a 200 ms app behind the inbound listener, with one process and with
 *    --concurrency 2: every request that reached the app is answered, the listener stops accepting, keep-alive clients
 *    get Connection: close, exit 0 within --drain-seconds.
 *  - 20: hot reload under load: weights changed, a cluster added, a cluster with thousands of idle pooled sockets
 *    removed: 0 errors, in effect within 1 s, reload counter +1 each, the idle sockets closed (no recursion).
 *  - 21: bad config under load: invalid YAML, a schema error, a truncated write, the file deleted, a `..data` swap
 *    to a bad target: the last good config keeps serving, remora_config_reload_failures_total +1, logged, /ready 200.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync, symlinkSync, renameSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startProxy, waitFor, type RunningProxy } from '../support/proxy-harness.js';
import { serviceEntry } from '../integration/resilience/helpers.js';
import { PlainUpstream, recordedOpenLoop, sleep, type OpenLoopRecord } from './support/proc.js';
import { DRAIN_IDLE_GRACE_MS } from '../../src/app-drain.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function summary(recs: OpenLoopRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of recs) { const k = r.error ?? String(r.status); out[k] = (out[k] ?? 0) + 1; }
  return out;
}


/** The `web` service: two subsets (v1, v2 on the given ports) and a VirtualService splitting w1/w2 between them. */
function webYaml(v1Port: number, v2Port: number, w1: number, w2: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: ${v1Port}}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: ${v2Port}}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - route:
    - {destination: {host: web, subset: v1}, weight: ${w1}}
    - {destination: {host: web, subset: v2}, weight: ${w2}}
`;
}

describe('row 19: SIGTERM at a constant rate, 200 ms app', () => {
  const RATE = Number(process.env.REMORA_SIGTERM_RPS ?? 1000);
  for (const concurrency of [1, 2]) {
    it(`${RATE} rps open loop, --concurrency ${concurrency}: in-flight requests all answered, Connection: close, listener closed, exit 0 within the drain time`, async () => {
      const reached = new Set<number>();
      const app = await new PlainUpstream((req, res) => {
        reached.add(Number(req.headers['x-req-id']));
        req.resume();
        setTimeout(() => res.end('ok'), 200);
      }).start();
      cleanups.push(() => app.close());
      const DRAIN_S = 5;
      const proxy = await startProxy({ 'mesh.yaml': serviceEntry('svc', [{ port: app.port }]) }, ['--app-port', String(app.port), '--drain-seconds', String(DRAIN_S), '--concurrency', String(concurrency)]);
      cleanups.push(() => proxy.stop());
      let sigAt = -1;
      let exitAt = -1;
      const SIGTERM_AT = 2500;
      const t0 = performance.now();
      void proxy.exited.then(() => { exitAt = performance.now() - t0; });
      const recs = await recordedOpenLoop(`http://127.0.0.1:${proxy.info.inbound}/`, {
        rate: RATE, durationMs: 4000, timeoutMs: 8000,
        onTick: (now) => { if (sigAt < 0 && now >= SIGTERM_AT) { sigAt = now; process.kill(proxy.info.pid, 'SIGTERM'); } },
      });
      const code = await proxy.exited;
      const before = recs.filter((r) => r.at < sigAt);
      const inFlight = recs.filter((r) => r.at < sigAt && (r.doneAt ?? Infinity) > sigAt);
      const reachedFailed = recs.filter((r) => reached.has(r.id) && (r.error !== undefined || r.status !== 200));
      // The drain took effect at the first Connection: close answer (with --concurrency 2 the signal goes through the
      // primary to each worker first); what is sent from then on finds the listener closed.
      const drainedAt = Math.min(...recs.filter((r) => r.close).map((r) => r.doneAt ?? Infinity));
      const settle = Math.max(sigAt, drainedAt) + 100;
      const after = recs.filter((r) => r.at > settle);
      const acceptedAfter = after.filter((r) => r.status !== undefined && !r.reused);
      const lateAnswered = recs.filter((r) => r.status === 200 && (r.doneAt ?? 0) > settle);
      const lateWithoutClose = lateAnswered.filter((r) => !r.close);
      const achieved = before.length / (sigAt / 1000);
      console.log(`row 19 SIGTERM --concurrency ${concurrency}: ${recs.length} requests at ${RATE}/s (achieved ${achieved.toFixed(0)}/s before the signal); before SIGTERM ${JSON.stringify(summary(before))}; in flight at SIGTERM ${inFlight.length}: ${JSON.stringify(summary(inFlight))}; reached the app but failed ${reachedFailed.length}; first Connection: close ${(drainedAt - sigAt).toFixed(0)} ms after SIGTERM; answered after that +100 ms ${lateAnswered.length}, without Connection: close ${lateWithoutClose.length}; sent after it ${JSON.stringify(summary(after))}, new connections accepted ${acceptedAfter.length}; exit ${code} at ${(exitAt - sigAt).toFixed(0)} ms after SIGTERM`);
      expect(achieved).toBeGreaterThan(RATE * 0.8); // the rate was really driven
      expect(inFlight.length).toBeGreaterThan(RATE * 0.1); // ~200 ms of requests in flight at the signal
      expect(before.filter((r) => r.status !== 200)).toEqual([]); // everything sent before SIGTERM answered, none failed
      expect(reachedFailed).toEqual([]); // nothing the app saw was lost
      expect(lateAnswered.length).toBeGreaterThan(RATE * 0.05);
      expect(lateWithoutClose).toEqual([]); // keep-alive clients told to go
      expect(acceptedAfter).toEqual([]); // the listener stopped accepting
      // Nothing sent from then on is served, except on a keep-alive connection that was idle at the signal: those are
      // closed after a grace (DRAIN_IDLE_GRACE_MS, 1 s: a request already written on one is not reset), and a request
      // on one within the grace is served with Connection: close. The client keeps idle connections only when its
      // pool outgrew the load (seen on a loaded machine: 51 and 121 requests on them, none without close).
      const onIdleInGrace = (r: (typeof recs)[number]): boolean => r.reused === true && r.close === true && r.at <= sigAt + DRAIN_IDLE_GRACE_MS;
      expect(after.filter((r) => (r.error === undefined || reached.has(r.id)) && !onIdleInGrace(r))).toEqual([]);
      expect(code).toBe(0);
      expect(exitAt - sigAt).toBeLessThan(DRAIN_S * 1000 + 1000);
    });
  }
});

describe('row 20: hot reload under load', () => {
  it('weights changed, a cluster added, a cluster with 2000 idle pooled sockets removed: 0 errors, each in effect within 1 s, reload counter +1 each', async () => {
    const named = (name: string, latencyMs = 0): Promise<PlainUpstream> => new PlainUpstream((req, res) => {
      req.resume();
      const send = (): void => { res.setHeader('x-upstream', name); res.end(name); };
      if (latencyMs > 0) setTimeout(send, latencyMs); else send();
    }).start();
    const v1 = await named('v1');
    const v2 = await named('v2');
    const extra = await named('extra');
    const bulk = await named('bulk', 1500);
    for (const u of [v1, v2, extra, bulk]) cleanups.push(() => u.close());
    const IDLE = Number(process.env.REMORA_RELOAD_IDLE_SOCKETS ?? 2000);
    const web = (w1: number, w2: number): string => webYaml(v1.port, v2.port, w1, w2);
    const bulkYaml = `${serviceEntry('bulk', [{ port: bulk.port }])}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bulk, namespace: default}
spec:
  host: bulk
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 100000}, http: {http1MaxPendingRequests: 100000, idleTimeout: 120s}}}
`;
    const proxy = await startProxy({ 'web.yaml': web(100, 0), 'bulk.yaml': bulkYaml });
    cleanups.push(() => proxy.stop());
    const stat = async (re: RegExp): Promise<number> => {
      const m = re.exec((await proxy.admin('/stats/prometheus')).body);
      return m ? Number(m[1]) : 0;
    };
    const reloads = (): Promise<number> => stat(/^remora_config_reloads_total (\S+)$/m);
    const idleUpstream = (): Promise<number> => stat(/^remora_upstream_connections\{state="idle"\} (\S+)$/m);

    // Load on web through all three reloads; the generator's errors are the ones that count.
    const { runLoad } = await import('../../src/bench/generator.js');
    const load = runLoad(proxy.url('/'), { mode: 'open', rate: 300, durationMs: 10_000, warmupMs: 0, connections: 16, timeoutMs: 5000, headers: [['host', 'web']], preciseTimer: false });
    const effect: Record<string, number> = {};
    await sleep(1000);

    // 1. weights 100/0 → 0/100: v2 gets the traffic.
    let r0 = await reloads();
    let t = performance.now();
    const v2Before = v2.requests;
    proxy.writeConfig('web.yaml', web(0, 100));
    await waitFor(async () => v2.requests > v2Before + 5 && (await reloads()) === r0 + 1, 3000, 10);
    effect.weights = performance.now() - t;
    expect(await reloads()).toBe(r0 + 1);
    await sleep(500);
    const v1After = v1.requests;
    await sleep(500);
    expect(v1.requests).toBe(v1After); // all of it: nothing to v1 any more

    // 2. a cluster added: requests to it succeed.
    r0 = await reloads();
    t = performance.now();
    proxy.writeConfig('extra.yaml', serviceEntry('extra', [{ port: extra.port }]));
    await waitFor(async () => {
      const r = await request(proxy.url('/'), { headers: { host: 'extra' } });
      const body = await r.body.text();
      return r.statusCode === 200 && body === 'extra';
    }, 3000, 10);
    effect.added = performance.now() - t;
    expect(await reloads()).toBe(r0 + 1);

    // IDLE connections to the bulk upstream, made while the load runs: that many requests at once (1.5 s each, so all overlap), then
    // left idle in the pool.
    const many = new Agent({ connections: IDLE, keepAliveTimeout: 60_000, pipelining: 1 });
    cleanups.push(() => many.destroy());
    const bulkStatuses = await Promise.all(Array.from({ length: IDLE }, async () => {
      const r = await request(proxy.url('/'), { headers: { host: 'bulk' }, dispatcher: many, headersTimeout: 30_000 });
      await r.body.text();
      return r.statusCode;
    }));
    await many.destroy();
    expect(bulkStatuses.filter((s) => s !== 200)).toEqual([]);
    // The pool keeps an idle connection 4 s at most (Remora's upstream keep-alive): remove the cluster right away.
    const idleBefore = await idleUpstream();
    const bulkSocketsBefore = bulk.sockets.size;

    // 3. the bulk cluster removed: its IDLE idle sockets are closed, in batches, without recursion, the proxy serving.
    r0 = await reloads();
    t = performance.now();
    rmSync(join(proxy.dir, 'bulk.yaml'));
    await waitFor(async () => (await reloads()) === r0 + 1, 3000, 10);
    effect.removed = performance.now() - t;
    await waitFor(() => bulk.sockets.size === 0, 5000, 20);
    const socketsClosedMs = performance.now() - t;
    const idleAfter = await idleUpstream();
    const notRouted = await request(proxy.url('/'), { headers: { host: 'bulk' } });
    await notRouted.body.text();

    const out = await load;
    const errors = Object.values(out.errors).reduce((a, b) => a + b, 0);
    console.log(`row 20 reload under load: ${out.completed}/${out.scheduled} at 300/s, errors ${JSON.stringify(out.errors)}, statuses ${JSON.stringify(out.statusCounts)}, p99 ${out.latency.at(99).toFixed(1)} ms; in effect after: weights ${effect.weights!.toFixed(0)} ms, added ${effect.added!.toFixed(0)} ms, removed ${effect.removed!.toFixed(0)} ms; bulk idle pooled sockets ${idleBefore} (upstream saw ${bulkSocketsBefore}) → ${idleAfter} idle in all pools, all closed at the upstream ${socketsClosedMs.toFixed(0)} ms after the removal; request to the removed host: ${notRouted.statusCode}`);
    expect(errors).toBe(0);
    expect(out.completed).toBe(out.scheduled);
    expect(out.statusCounts).toEqual({ '200': out.completed });
    expect(effect.weights).toBeLessThan(1000);
    expect(effect.added).toBeLessThan(1000);
    expect(effect.removed).toBeLessThan(1000);
    // All IDLE requests overlap only if the generator starts them within the upstream's 1.5 s: on a loaded machine a
    // few connections serve two, so "thousands" is at least 75 % of IDLE (CI saw 1,979 of 2,000 once; 1,781 on a
    // machine with a load average of 12).
    expect(bulkSocketsBefore).toBeGreaterThanOrEqual(Math.floor(IDLE * 0.75));
    expect(idleBefore).toBeGreaterThanOrEqual(Math.floor(IDLE * 0.75));
    expect(idleAfter).toBeLessThan(50);
    expect(notRouted.statusCode).not.toBe(200); // passthrough to bulk:80 no longer reaches the bulk upstream
    expect(proxy.exitCode).toBeNull();
    expect(proxy.stderr).not.toMatch(/RangeError|Maximum call stack|uncaught/i);
  });
});

describe('row 21: bad config under load', () => {
  it('invalid YAML, schema error, truncated write, file deleted, ..data swaps to bad targets: last good config serves, failure counter +1, logged, /ready 200', async () => {
    const named = (name: string): Promise<PlainUpstream> => new PlainUpstream((req, res) => { req.resume(); res.end(name); }).start();
    const v1 = await named('v1');
    const v2 = await named('v2');
    const extra = await named('extra');
    for (const u of [v1, v2, extra]) cleanups.push(() => u.close());
    const web = (w1: number, w2: number): string => webYaml(v1.port, v2.port, w1, w2);
    // A ConfigMap mount (..data → a timestamped directory, the file a symlink through ..data) and a plain file.
    const root = mkdtempSync(join(tmpdir(), 'remora-badcfg-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const cm = join(root, 'cm');
    mkdirSync(cm);
    let gen = 0;
    const swapData = (files: Record<string, string> | null): void => {
      gen++;
      const target = `..2026_12_04_${gen}`;
      if (files !== null) {
        mkdirSync(join(cm, target));
        for (const [n, c] of Object.entries(files)) writeFileSync(join(cm, target, n), c);
      }
      symlinkSync(target, join(cm, '..data_tmp'));
      renameSync(join(cm, '..data_tmp'), join(cm, '..data')); // atomic, as the kubelet does
      // Each key is a symlink through ..data at the top, made for new keys as the kubelet does.
      for (const n of Object.keys(files ?? {})) if (!existsSync(join(cm, n))) symlinkSync(`..data/${n}`, join(cm, n));
    };
    swapData({ 'web.yaml': web(100, 0) });
    const fileDir = join(root, 'plain');
    mkdirSync(fileDir);
    const file = join(fileDir, 'extra.yaml');
    const extraYaml = serviceEntry('extra', [{ port: extra.port }]);
    writeFileSync(file, extraYaml);
    const proxy = await startProxy(cm, ['--config', file, '--log-level', 'info']);
    cleanups.push(() => proxy.stop());
    const stat = async (name: string): Promise<number> => {
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec((await proxy.admin('/stats/prometheus')).body);
      return m ? Number(m[1]) : 0;
    };
    const get = async (host: string): Promise<string> => {
      const r = await request(proxy.url('/'), { headers: { host } });
      return `${r.statusCode} ${await r.body.text()}`;
    };
    expect(await get('web')).toBe('200 v1');
    expect(await get('extra')).toBe('200 extra');

    const { runLoad } = await import('../../src/bench/generator.js');
    const load = runLoad(proxy.url('/'), { mode: 'open', rate: 200, durationMs: 14_000, warmupMs: 0, connections: 16, timeoutMs: 5000, headers: [['host', 'web']], preciseTimer: false });
    const results: string[] = [];
    /** A bad change: rejected (failures +1, reloads +0), logged, ready, still v1 everywhere; then `fix` applies (+1). */
    const bad = async (name: string, breakIt: () => void, fix: () => void, expectFixReload = true): Promise<void> => {
      const f0 = await stat('remora_config_reload_failures_total');
      const r0 = await stat('remora_config_reloads_total');
      const v2Before = v2.requests;
      const errLen = proxy.stdout.length + proxy.stderr.length;
      breakIt();
      await waitFor(async () => (await stat('remora_config_reload_failures_total')) > f0, 4000, 20)
        .catch((e: Error) => { throw new Error(`${name}: ${e.message}; so far:\n${results.join('\n')}\nlog: ${(proxy.stdout + proxy.stderr).slice(-1500)}`); });
      await sleep(600); // more events from the same change must not count again
      const f1 = await stat('remora_config_reload_failures_total');
      const r1 = await stat('remora_config_reloads_total');
      const ready = await proxy.admin('/ready');
      const dump = JSON.parse((await proxy.admin('/config_dump')).body) as { lastError: { errors: string[] } | null };
      const logged = (proxy.stdout + proxy.stderr).length > errLen && /config rejected/.test(proxy.stdout + proxy.stderr);
      const webNow = await get('web');
      const extraNow = await get('extra');
      results.push(`${name}: failures +${f1 - f0}, reloads +${r1 - r0}, /ready ${ready.status}, web ${webNow}, extra ${extraNow}, v2 requests +${v2.requests - v2Before}, lastError ${JSON.stringify(dump.lastError?.errors[0]?.slice(0, 90))}`);
      expect(f1 - f0, name).toBe(1);
      expect(r1, name).toBe(r0);
      expect(ready.status, name).toBe(200);
      expect(logged, name).toBe(true);
      expect(dump.lastError, name).not.toBeNull();
      expect(webNow, name).toBe('200 v1');
      expect(extraNow, name).toBe('200 extra');
      expect(v2.requests, name).toBe(v2Before); // nothing of the rejected change applied, not even its valid part
      fix();
      if (expectFixReload) await waitFor(async () => (await stat('remora_config_reloads_total')) > r1, 4000, 20);
      await sleep(300);
    };
    await bad('invalid YAML', () => writeFileSync(file, 'kind: ServiceEntry\nspec: {hosts: [extra\n  - : :\n'), () => writeFileSync(file, extraYaml + '\n# 1\n'));
    await bad('schema error', () => writeFileSync(file, extraYaml.replace('resolution: STATIC', 'resolution: SOMETIMES')), () => writeFileSync(file, extraYaml + '\n# 2\n'));
    // A writer that is not atomic: half the file now, the rest later. The half is rejected, the whole then applied.
    const full = extraYaml + '\n# 3\n';
    await bad('truncated write', () => writeFileSync(file, full.slice(0, full.indexOf('ports:') + 12)), () => writeFileSync(file, full));
    await bad('file deleted', () => unlinkSync(file), () => writeFileSync(file, extraYaml + '\n# 4\n'));
    // ..data swaps: to a directory whose valid weight change comes with a schema error in another file (all or nothing).
    await bad('..data → bad target', () => swapData({ 'web.yaml': web(0, 100), 'bad.yaml': web(50, 50).replace(/weight: 50/g, 'weight: -50') }), () => { swapData({ 'web.yaml': web(100, 0) + '\n# 5\n' }); unlinkSync(join(cm, 'bad.yaml')); });
    await bad('..data → missing target', () => swapData(null), () => swapData({ 'web.yaml': web(100, 0) + '\n# 6\n' }));
    const out = await load;
    const errors = Object.values(out.errors).reduce((a, b) => a + b, 0);
    console.log(`row 21 bad config under load (${out.completed}/${out.scheduled} at 200/s, errors ${errors}, statuses ${JSON.stringify(out.statusCounts)}):\n  ${results.join('\n  ')}`);
    expect(errors).toBe(0);
    expect(out.completed).toBe(out.scheduled);
    expect(out.statusCounts).toEqual({ '200': out.completed });
    expect(proxy.exitCode).toBeNull();
  });
});
