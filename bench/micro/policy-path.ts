/**
 * Micro-benchmark: CPU and allocation per request of the full policy path outside the HTTP layer (bench/configs.ts
 * policyYaml: header match, 80/20 subsets, Istio's default retries, outlier detection, metrics, tracing), driving the
 * same calls, in the same order and with the same argument shapes, as src/proxy/outbound.ts + forwarder.ts; plus each
 * hot call of routing/upstream/telemetry timed alone (`--calls`). Run (compiled to a scratch directory, never dist/):
 *   npx tsc -p tsconfig.bench.json --outDir .h-me/build && cd .h-me/build/bench/micro
 *   node --max-semi-space-size=64 --min-semi-space-size=64 policy-path.js [--calls | variant…]   (env N, ROUNDS)
 * The large young generation lets the allocation probe run without a scavenge; CPU figures are medians of ROUNDS.
 */
import { performance } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import type { Send } from '../../src/telemetry/otel-sdk.js';
import { parseDocuments } from '../../src/config/parse.js';
import { compile, lookupHost } from '../../src/config/compile.js';
import type { Snapshot } from '../../src/config/snapshot.js';
import type { AttemptOutcome, ClusterRuntime, RequestRecord } from '../../src/model.js';
import { applyRetryOverrides, routeTimeoutOverride, shouldRetry } from '../../src/proxy/retry-policy.js';
import { downstreamResponseHeaders, upstreamRequestHeaders } from '../../src/proxy/headers.js';
import { parseTarget } from '../../src/routing/request-target.js';
import { destinationPort, findRoute, pickDestination, type CompiledDestination, type RequestView, type RouteAction } from '../../src/routing/route.js';
import { ClusterManager } from '../../src/upstream/cluster-manager.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { TRACING_OFF } from '../../src/telemetry/tracing-off.js';
import type { ProxyTracing, ServerSpan, ClientSpan } from '../../src/telemetry/tracing.js';
import { seededRandom } from '../../src/util/random.js';
import { policyYaml, POLICY_HOST } from '../configs.js';

const N = Number(process.env.N ?? 200_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);

// === fixtures: what node:http and undici hand the proxy ===

/** A request as the app sends it (curl-like), as node:http parses it: raw pairs and the lowercase object. */
function appRequest(i: number): { rawHeaders: string[]; headers: Record<string, string> } {
  const rawHeaders = ['Host', `${POLICY_HOST}:18080`, 'User-Agent', 'bench/1.0', 'Accept', '*/*', 'X-Request-Id', `3f2b8c1e-1a2b-4c3d-8e9f-${String(i).padStart(12, '0')}`];
  const headers: Record<string, string> = {};
  for (let k = 0; k < rawHeaders.length; k += 2) headers[rawHeaders[k]!.toLowerCase()] = rawHeaders[k + 1]!;
  return { rawHeaders, headers };
}
const REQS = Array.from({ length: 1024 }, (_, i) => appRequest(i));
/** Upstream response headers as undici's legacy handler API gives them. */
const RAW_RESPONSE = ['Content-Type', 'text/plain', 'Content-Length', '2', 'Date', 'Sun, 22 Nov 2026 02:00:00 GMT', 'Connection', 'keep-alive', 'Keep-Alive', 'timeout=5'].map((s) => Buffer.from(s, 'latin1'));

function snapshot(): Snapshot {
  const { resources, errors } = parseDocuments(policyYaml(18081, 18082), 'policy.yaml');
  if (errors.length > 0) throw new Error(errors.map((e) => e.message).join('\n'));
  return compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
}

/** Export requests are encoded, then discarded. */
const noopSend: Send = () => Promise.resolve({ status: 'success' });

async function tracingFor(mode: string): Promise<ProxyTracing> {
  if (mode === 'off') return TRACING_OFF;
  const { createTracing } = await import('../../src/telemetry/otel-sdk.js');
  const [pct, prop] = mode === 'p0-noprop' ? [0, false] : mode === 'p0' ? [0, true] : mode === 'p1' ? [1, true] : [100, true];
  return createTracing({ send: noopSend, samplingPercent: pct, serviceName: 'bench.default', propagateUnsampled: prop, rand: seededRandom(7) });
}

// === the per-request path ===

interface Env {
  snap: Snapshot;
  clusters: ClusterManager;
  metrics: Metrics;
  tracing: ProxyTracing;
  rand: () => number;
  /** Stages to run; a stage switched off is skipped (for attribution by difference). */
  routing: boolean;
  upstream: boolean;
  metricsOn: boolean;
  headersOn: boolean;
}

const NO_PICK = {};
/** Stand-in for the forwarder's RequestRecord class (same fields, so metrics see the same shape). */
class Rec implements RequestRecord {
  direction: 'outbound' | 'inbound' = 'outbound';
  startTime = 0;
  durationMs = 0;
  method = 'GET';
  path = '/';
  protocol = 'HTTP/1.1';
  authority = '';
  requestId = '';
  status = 200;
  flags = '-';
  details = 'via_upstream';
  bytesReceived = 0;
  bytesSent = 2;
  upstreamServiceTimeMs: number | undefined = 0;
  upstreamHost: string | undefined;
  upstreamCluster = '';
  attempts = 1;
  routeName: string | undefined;
  downstreamRemoteAddress = '';
  downstreamLocalAddress = '127.0.0.1:15001';
  destinationService = '';
  destinationServiceName = '';
  destinationServiceNamespace: string | undefined;
  destinationVersion: string | undefined;
  grpcStatus: number | undefined;
  requestHeaders: Record<string, string> = {};
}

let sink = 0;

function oneRequest(env: Env, i: number): void {
  const r = REQS[i & 1023]!;
  const startHr = performance.now();
  const now = startHr;
  // outbound.ts: target, host, route, weighted destination, cluster.
  let rt: ClusterRuntime;
  let routeName: string | undefined;
  let retry = undefined as unknown as ReturnType<typeof applyRetryOverrides>;
  let dest: CompiledDestination | undefined;
  const target = parseTarget('/reviews/1?page=2', r.headers.host)!;
  if (env.routing) {
    const entry = lookupHost(env.snap, target.host)!;
    const port = target.explicitPort || 80;
    const view: RequestView = { method: 'GET', path: target.path, query: target.query, scheme: target.scheme, authority: target.authority, port, headers: r.headers };
    const m = findRoute(entry.vhost!, view)!;
    const action = m.route.action as Extract<RouteAction, { kind: 'route' }>;
    dest = pickDestination(action, env.rand())!;
    const def = dest.clusters.get(destinationPort(dest, port, target.explicitPort))!;
    rt = env.clusters.runtime(def);
    routeName = m.route.name;
    retry = applyRetryOverrides(m.route.retry, r.headers);
    sink += routeTimeoutOverride(r.headers) ?? 0;
  } else {
    rt = FIXED_RT!;
    retry = FIXED_RETRY!;
  }
  let headers: string[] = [];
  if (env.headersOn) {
    headers = upstreamRequestHeaders(r.rawHeaders, undefined, { stripAllEnvoy: false });
    headers.push('Host', target.authority, 'x-request-id', r.headers['x-request-id']!, 'x-forwarded-for', '127.0.0.1', 'x-forwarded-proto', 'http');
  }
  // forwarder.ts: Exchange constructor, start(), tryOnce().
  let span: ServerSpan | undefined;
  if (env.tracing.enabled) {
    span = env.tracing.startServer(r.headers, { method: 'GET', path: '/reviews/1?page=2', authority: target.authority, direction: 'outbound', peer: `127.0.0.1:${40000 + (i & 1023)}` });
  }
  const counters = env.metrics.cluster(rt.def.name);
  let ep = FIXED_EP;
  if (env.upstream) {
    if (rt.admit() !== 'ok') throw new Error('overflow');
    ep = rt.pick(NO_PICK, now)!;
    rt.attemptStarted(ep, now);
  }
  counters.upstream_rq_total++;
  const h = headers.slice();
  h.push('x-envoy-attempt-count', String(1));
  let cs: ClientSpan | undefined;
  if (span !== undefined) {
    cs = span.startAttempt(1, { cluster: rt.def.name, upstreamHost: ep!.key });
    for (const [k, v] of cs.headers()) h.push(k, v);
  }
  if (env.upstream) env.clusters.pool(ep!, rt.def.policy.pool);
  sink += h.length;
  // onResponseHeaders + commitResponse.
  const outcome: AttemptOutcome = { kind: 'response', status: 200 };
  if (env.upstream) rt.attemptFinished(ep!, outcome, 0.4, now + 0.4);
  counters.response(200);
  cs?.end(200);
  if (shouldRetry(retry, outcome)) sink++;
  if (env.headersOn) {
    const out = downstreamResponseHeaders(RAW_RESPONSE).headers;
    out.push('x-envoy-upstream-service-time', String(Math.round(0.4)));
    sink += out.length;
  }
  // complete(): release, record, spans.
  if (env.upstream) rt.release();
  const rec = new Rec();
  rec.durationMs = performance.now() - startHr;
  rec.authority = target.authority;
  rec.requestId = r.headers['x-request-id']!;
  rec.upstreamHost = ep!.key;
  rec.upstreamCluster = rt.def.name;
  rec.routeName = routeName;
  rec.downstreamRemoteAddress = `127.0.0.1:${40000 + (i & 1023)}`;
  rec.destinationService = rt.def.host;
  rec.destinationServiceName = 'policy';
  rec.destinationVersion = rt.def.subset || undefined;
  rec.requestHeaders = r.headers;
  if (env.metricsOn) env.metrics.recordRequest(rec);
  if (span !== undefined) span.end(rec);
  if (dest !== undefined) sink += dest.weight;
}

let FIXED_RT: ClusterRuntime | undefined;
let FIXED_RETRY: ReturnType<typeof applyRetryOverrides> | undefined;
let FIXED_EP: ReturnType<ClusterRuntime['pick']>;

interface Variant { tracing: string; routing: boolean; upstream: boolean; metricsOn: boolean; headersOn: boolean }
const VARIANTS: Record<string, Variant> = {
  // Everything the policy path does outside the HTTP layer, by tracing mode.
  'full, tracing off': { tracing: 'off', routing: true, upstream: true, metricsOn: true, headersOn: true },
  'full, tracing 0% not propagated': { tracing: 'p0-noprop', routing: true, upstream: true, metricsOn: true, headersOn: true },
  'full, tracing 0% propagated': { tracing: 'p0', routing: true, upstream: true, metricsOn: true, headersOn: true },
  'full, tracing 1%': { tracing: 'p1', routing: true, upstream: true, metricsOn: true, headersOn: true },
  'full, tracing 100%': { tracing: 'p100', routing: true, upstream: true, metricsOn: true, headersOn: true },
  // Attribution: one stage removed at a time (tracing off).
  'no routing (fixed cluster)': { tracing: 'off', routing: false, upstream: true, metricsOn: true, headersOn: true },
  'no cluster runtime (admit/pick/attempt*/release/pool)': { tracing: 'off', routing: true, upstream: false, metricsOn: true, headersOn: true },
  'no Istio metrics record': { tracing: 'off', routing: true, upstream: true, metricsOn: false, headersOn: true },
  'no header arrays (proxy/headers.ts)': { tracing: 'off', routing: true, upstream: true, metricsOn: true, headersOn: false },
};

async function makeEnv(v: Variant): Promise<Env> {
  const snap = snapshot();
  const clusters = new ClusterManager(seededRandom(1), () => performance.now(), { keepAliveMs: 4000, headersTimeoutMs: 0 });
  clusters.onSnapshot(snap);
  const metrics = new Metrics({ sourceWorkload: 'productpage-v1', sourceNamespace: 'default', sourceApp: 'productpage', sourceVersion: 'v1' });
  const def = [...snap.clusters.values()].find((d) => d.subset === 'v1')!;
  FIXED_RT = clusters.runtime(def);
  FIXED_RETRY = applyRetryOverrides(snap.hosts.get(POLICY_HOST)!.vhost!.routes[1]!.retry, {});
  FIXED_EP = FIXED_RT.pick({}, performance.now());
  return { snap, clusters, metrics, rand: seededRandom(3), routing: v.routing, upstream: v.upstream, metricsOn: v.metricsOn, headersOn: v.headersOn, tracing: await tracingFor(v.tracing) };
}

function newSpaceUsed(): number {
  for (const s of getHeapSpaceStatistics()) if (s.space_name === 'new_space') return s.space_used_size;
  return 0;
}

/** CPU µs per request over N requests. */
function cpuRun(env: Env): number {
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) oneRequest(env, i);
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / N;
}

/** Bytes allocated per request: new-space growth over a run short enough not to trigger a scavenge (needs a large semi-space). */
function allocRun(env: Env): number | undefined {
  const n = 2000;
  const g0 = gcCount;
  const before = newSpaceUsed();
  for (let i = 0; i < n; i++) oneRequest(env, i);
  const after = newSpaceUsed();
  return gcCount === g0 && after >= before ? (after - before) / n : undefined;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

let gcCount = 0;
const { PerformanceObserver } = await import('node:perf_hooks');
new PerformanceObserver((l) => { gcCount += l.getEntries().length; }).observe({ entryTypes: ['gc'] });

if (process.argv[2] === '--calls') {
  await perCall();
  process.exit(0);
}

/** Each hot call of the policy path alone: CPU ns per call (median of ROUNDS) and bytes allocated per call. */
async function perCall(): Promise<void> {
  const env = await makeEnv({ tracing: 'off', routing: true, upstream: true, metricsOn: true, headersOn: true });
  const unsampled = await tracingFor('p0');
  const notPropagated = await tracingFor('p0-noprop');
  const r = REQS[0]!;
  const entry = lookupHost(env.snap, POLICY_HOST)!;
  const view: RequestView = { method: 'GET', path: '/', query: '', scheme: 'http', authority: r.headers.host!, port: 18080, headers: r.headers };
  const split = entry.vhost!.routes[1]!.action as Extract<RouteAction, { kind: 'route' }>;
  const rt = FIXED_RT!;
  const ep = FIXED_EP!;
  const outcome: AttemptOutcome = { kind: 'response', status: 200 };
  const rec = new Rec();
  Object.assign(rec, { upstreamCluster: rt.def.name, destinationService: rt.def.host, destinationServiceName: 'policy', destinationVersion: 'v1', routeName: 'split', durationMs: 0.7, bytesSent: 98 });
  const attrs = { method: 'GET', path: '/', authority: r.headers.host!, direction: 'outbound' as const, peer: '127.0.0.1:40000' };
  const attempt = { cluster: rt.def.name, upstreamHost: ep.key };
  // Host headers and URLs as node:http hands them over: fresh strings per request (no cached hash).
  const hosts = Array.from({ length: 1024 }, () => Buffer.from(r.headers.host!).toString('latin1'));
  const urls = Array.from({ length: 1024 }, () => Buffer.from('/reviews/1?page=2').toString('latin1'));
  const calls: Record<string, (i: number) => void> = {
    'parseTarget (fresh url and Host strings)': (i) => { sink += parseTarget(urls[i & 1023]!, hosts[i & 1023])!.explicitPort; },
    'findRoute (header-match route misses, split matches)': () => { sink += findRoute(entry.vhost!, view)!.matchIndex; },
    'pickDestination (80/20)': () => { sink += pickDestination(split, env.rand())!.weight; },
    'ClusterManager.runtime(def)': () => { sink += env.clusters.runtime(rt.def).def.port; },
    'admit + pick + attemptStarted + attemptFinished + release': () => {
      const now = performance.now();
      rt.admit();
      const e = rt.pick(NO_PICK, now)!;
      rt.attemptStarted(e, now);
      rt.attemptFinished(e, outcome, 0.5, now);
      rt.release();
    },
    'ClusterManager.pool(ep, limits)': () => { sink += env.clusters.pool(ep, rt.def.policy.pool) === undefined ? 0 : 1; },
    'Metrics.cluster(name) + upstream_rq_total++ + response(200)': () => { const c = env.metrics.cluster(rt.def.name); c.upstream_rq_total++; c.response(200); },
    'Metrics.recordRequest': () => { env.metrics.recordRequest(rec); },
    'tracing 0%, decision not propagated': () => { sink += notPropagated.startServer(r.headers, attrs) === undefined ? 0 : 1; },
    'tracing 0%, propagated: start, attempt, headers, end ×2': () => {
      const s = unsampled.startServer(r.headers, attrs)!;
      const c = s.startAttempt(1, attempt);
      for (const [k, v] of c.headers()) sink += k.length + v.length;
      c.end(200);
      s.end(rec);
    },
  };
  const n = Math.max(1, Math.floor(N * 5));
  console.log(`node ${process.version}, ${n} calls × ${ROUNDS} rounds (median CPU; allocation per call)`);
  for (const [name, fn] of Object.entries(calls)) {
    for (let i = 0; i < 200_000; i++) fn(i);
    const ns: number[] = [];
    for (let k = 0; k < ROUNDS; k++) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < n; i++) fn(i);
      const c = process.cpuUsage(c0);
      ns.push(((c.user + c.system) * 1000) / n);
    }
    const g0 = gcCount;
    const before = newSpaceUsed();
    for (let i = 0; i < 5000; i++) fn(i);
    const bytes = gcCount === g0 ? `${((newSpaceUsed() - before) / 5000).toFixed(0)} B` : 'n/a';
    console.log(`${name.padEnd(62)} ${median(ns).toFixed(0).padStart(5)} ns  ${bytes}`);
  }
}

const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(VARIANTS);
const envs = new Map<string, Env>();
for (const n of names) {
  const v = VARIANTS[n];
  if (v === undefined) throw new Error(`unknown variant ${n}; known: ${Object.keys(VARIANTS).join(' | ')}`);
  const env = await makeEnv(v);
  for (let i = 0; i < 50_000; i++) oneRequest(env, i); // warm-up (JIT)
  envs.set(n, env);
}
const cpu = new Map<string, number[]>(names.map((n) => [n, []]));
const alloc = new Map<string, number[]>(names.map((n) => [n, []]));
// Alternate variants round by round so that machine noise hits them alike; report medians.
for (let r = 0; r < ROUNDS; r++) {
  for (const n of names) {
    cpu.get(n)!.push(cpuRun(envs.get(n)!));
    await new Promise((res) => setImmediate(res)); // let the GC observer and batch timers run
    const a = allocRun(envs.get(n)!);
    if (a !== undefined) alloc.get(n)!.push(a);
  }
}
console.log(`node ${process.version}, N=${N}, rounds=${ROUNDS} (median; min–max)`);
for (const n of names) {
  const xs = cpu.get(n)!;
  const as = alloc.get(n)!;
  const al = as.length > 0 ? `${median(as).toFixed(0)} B/request` : 'alloc n/a (run with --max-semi-space-size=64 --min-semi-space-size=64)';
  console.log(`${n.padEnd(56)} ${median(xs).toFixed(2)} µs (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})  ${al}`);
}
for (const env of envs.values()) await env.tracing.shutdown(100);
process.exit(sink < 0 ? 1 : 0);
