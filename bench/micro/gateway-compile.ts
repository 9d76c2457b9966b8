/**
 * Config build time for N HTTPRoutes vs N VirtualServices over the same registry (N Kubernetes Services with their
 * EndpointSlices, in files): read (parse), validate, compile — the steps the config store times — and, apart, building
 * every route table (routes are compiled on first use, so a sidecar pays that only for the services it calls).
 * Each route does the same thing in both forms: a prefix match to a two-way 90/10 split, and a catch-all.
 * Runs alternate the two forms; medians of ROUNDS. Run (compiled to a scratch directory, never dist/):
 *   npx tsc -p tsconfig.bench.json --outDir .h-me/build && node .h-me/build/bench/micro/gateway-compile.js   (env N, ROUNDS)
 */
import { performance } from 'node:perf_hooks';
import { parseDocuments } from '../../src/config/parse.js';
import { validateResources } from '../../src/config/validate.js';
import { compile } from '../../src/config/compile.js';

const N = Number(process.env.N ?? 10_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
/** ONLY=VirtualService or ONLY=HTTPRoute: time one form (for a CPU profile of it). */
const ONLY = process.env.ONLY;

function registry(n: number): string {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    for (const v of ['', '-v2']) {
      parts.push(`apiVersion: v1
kind: Service
metadata: {name: svc-${i}${v}, namespace: default}
spec: {clusterIP: 10.${(i >> 8) & 255}.${i & 255}.${v ? 2 : 1}, ports: [{name: http, port: 8080, appProtocol: http}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-${i}${v}-1, namespace: default, labels: {kubernetes.io/service-name: svc-${i}${v}}}
addressType: IPv4
endpoints: [{addresses: [127.0.${(i >> 8) & 255}.${(i & 255) || 1}]}]
ports: [{name: http, port: ${v ? 9002 : 9001}}]
`);
    }
  }
  return parts.join('---\n');
}

function virtualServices(n: number): string {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    parts.push(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc-${i}, namespace: default}
spec:
  hosts: [svc-${i}]
  http:
  - match: [{uri: {prefix: /api/v${i % 3}}}]
    route: [{destination: {host: svc-${i}}, weight: 90}, {destination: {host: svc-${i}-v2}, weight: 10}]
  - route: [{destination: {host: svc-${i}}}]
`);
  }
  return parts.join('---\n');
}

function httpRoutes(n: number): string {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    parts.push(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: svc-${i}, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: svc-${i}}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api/v${i % 3}}}]
    backendRefs: [{name: svc-${i}, port: 8080, weight: 90}, {name: svc-${i}-v2, port: 8080, weight: 10}]
  - backendRefs: [{name: svc-${i}, port: 8080}]
`);
  }
  return parts.join('---\n');
}

interface Times { parse: number; validate: number; compile: number; build: number }

function once(text: string): Times {
  const t0 = performance.now();
  const { resources, errors } = parseDocuments(text, 'bench.yaml', 'default');
  const t1 = performance.now();
  const problems = validateResources(resources).filter((p) => p.severity !== 'warning');
  const t2 = performance.now();
  if (errors.length + problems.length > 0) throw new Error(JSON.stringify([...errors, ...problems].slice(0, 3)));
  const snap = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
  const t3 = performance.now();
  let routes = 0;
  for (const e of new Set(snap.hosts.values())) routes += e.vhost?.routes.length ?? 0;
  const t4 = performance.now();
  if (routes < N) throw new Error(`only ${routes} routes built`);
  return { parse: t1 - t0, validate: t2 - t1, compile: t3 - t2, build: t4 - t3 };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const base = registry(N);
const texts = { VirtualService: `${base}---\n${virtualServices(N)}`, HTTPRoute: `${base}---\n${httpRoutes(N)}` };
const results: Record<string, Times[]> = { VirtualService: [], HTTPRoute: [] };
if (ONLY !== undefined) {
  const t = once(texts[ONLY as keyof typeof texts]);
  process.stdout.write(`${ONLY}: ${JSON.stringify(t)}\n`);
  process.exit(0);
}
once(texts.VirtualService); // warm-up: JIT and module caches for both forms
once(texts.HTTPRoute);
for (let r = 0; r < ROUNDS; r++) {
  for (const k of (r % 2 === 0 ? ['VirtualService', 'HTTPRoute'] : ['HTTPRoute', 'VirtualService']) as Array<keyof typeof texts>) {
    global.gc?.();
    results[k]!.push(once(texts[k]));
  }
}
const row = (k: string): Record<string, number> => {
  const t = results[k]!;
  const m = (f: keyof Times): number => Math.round(median(t.map((x) => x[f])));
  return { parse: m('parse'), validate: m('validate'), compile: m('compile'), validatePlusCompile: Math.round(median(t.map((x) => x.validate + x.compile))), buildAllRoutes: m('build') };
};
const vs = row('VirtualService');
const hr = row('HTTPRoute');
process.stdout.write(`${N} routes over ${N * 2} Services, median of ${ROUNDS} alternating runs (ms):\n`);
process.stdout.write(`${JSON.stringify({ VirtualService: vs, HTTPRoute: hr, ratio: { validatePlusCompile: +(hr.validatePlusCompile! / vs.validatePlusCompile!).toFixed(2), compile: +(hr.compile! / vs.compile!).toFixed(2), buildAllRoutes: +(hr.buildAllRoutes! / vs.buildAllRoutes!).toFixed(2) } }, null, 2)}\n`);
