/** The rollout as the sidecar's dashboard shows it (from the VirtualService annotation) and the terminal's lines. */
import { describe, expect, it } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile } from '../../../src/config/compile.js';
import { dashboardHtml, routesView } from '../../../src/admin/dashboard.js';
import { ANNOTATION, HEADER_ROUTE_NAME, type RolloutState } from '../../../src/rollout/state.js';
import { buildPlan } from '../../../src/rollout/plan.js';
import { formatEvent, formatStatus } from '../../../src/rollout/view.js';
import { evaluate } from '../../../src/rollout/analysis.js';

const NOW = Date.UTC(2026, 11, 4, 12, 0, 0);

function state(over: Partial<RolloutState> = {}): RolloutState {
  return {
    version: 1, virtualService: 'reviews', namespace: 'default', stable: 'v1', canary: 'v2', steps: buildPlan({ steps: [10, 50] }),
    stepIndex: 1, canaryWeight: 50, phase: 'Progressing', criteria: { maxErrorRate: 0.01, minRequests: 100, maxP99Ms: 300 },
    intervalMs: 60_000, threshold: 1, maxHolds: 5, failedChecks: 0, heldChecks: 0, message: 'checks passed, next weight 50%',
    startedAt: new Date(NOW - 60_000).toISOString(), updatedAt: new Date(NOW).toISOString(), stepStartedAt: new Date(NOW).toISOString(),
    lock: { owner: 'ci:42:abc', heartbeatAt: new Date(NOW).toISOString(), ttlMs: 180_000 }, history: [],
    lastCheck: { at: new Date(NOW).toISOString(), stepIndex: 0, canaryWeight: 10, verdict: 'pass', action: 'advance', reason: 'checks passed', canary: { requests: 120, failures: 0, successRate: 1, p99Ms: 4.5 }, stable: { requests: 1080, failures: 1, successRate: 1079 / 1080, p99Ms: 3.9 } },
    ...over,
  };
}

const config = (s: RolloutState): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
  annotations:
    ${ANNOTATION}: '${JSON.stringify(s)}'
spec:
  hosts: [reviews]
  http:
  - name: ${HEADER_ROUTE_NAME}
    match: [{headers: {x-canary: {exact: "true"}}}]
    route: [{destination: {host: reviews, subset: v2}, weight: 100}]
  - name: main
    route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v2}, weight: 50}
  - name: other
    route: [{destination: {host: ratings}}]
`;

describe('dashboard: the rollout beside the route', () => {
  it('routesView attaches the annotation\'s state to the rollout route only', () => {
    const { resources, errors } = parseDocuments(config(state()), 'vs.yaml', 'default');
    expect(errors).toEqual([]);
    const snap = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
    const { routes } = routesView(snap, new Map());
    const main = routes.find((r) => r.name === 'main')!;
    expect(main.rollout).toMatchObject({ phase: 'Progressing', stable: 'v1', canary: 'v2', step: 2, steps: 3, canaryWeight: 50, canarySuccessRate: 1, canaryP99Ms: 4.5, message: 'checks passed, next weight 50%' });
    expect(routes.find((r) => r.name === HEADER_ROUTE_NAME)!.rollout).toBeUndefined();
    expect(routes.find((r) => r.name === 'other')!.rollout).toBeUndefined();
    expect(dashboardHtml()).toContain("'data-rollout': ro.phase");
  });

  it('an annotation that is not a rollout record is ignored', () => {
    const { resources } = parseDocuments(config(state()).replace(/remora\.io\/rollout: '.*'/, "remora.io/rollout: 'not json'"), 'vs.yaml', 'default');
    const snap = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
    expect(routesView(snap, new Map()).routes.every((r) => r.rollout === undefined)).toBe(true);
  });
});

describe('terminal view', () => {
  it('a check line shows the step it checked, both subsets and the decision; plain without a TTY', () => {
    const s = state();
    const check = evaluate({ requests: 120, failures: 0, buckets: [[5, 120], [Infinity, 120]] }, { requests: 1080, failures: 1, buckets: [[5, 1080], [Infinity, 1080]] }, s.criteria);
    const line = formatEvent({ kind: 'step', state: s, check, action: 'advance', message: s.message });
    expect(line).toBe('12:00:00 step 1/3 | v1/v2 90/10 | v1 ok 99.91% p99 5.0ms n=1080 | v2 ok 100.00% p99 5.0ms n=120 | advance: checks passed, next weight 50%\n');
    expect(formatEvent({ kind: 'step', state: s, check, action: 'advance', message: s.message }, true)).toContain('\x1b[32madvance\x1b[0m');
  });
  it('status: phase, plan, weights, criteria, last check and the runner', () => {
    const out = formatStatus(state(), NOW + 10_000);
    expect(out).toContain('rollout default/reviews: Progressing');
    expect(out).toContain('step 2/3 (10, 50, 100), weights v1/v2 50/50');
    expect(out).toContain('max error rate 1.00%, max p99 300ms, min requests 100, threshold 1');
    expect(out).toContain('runner ci:42:abc, last seen 10 s ago');
    expect(formatStatus(state(), NOW + 200_000)).toContain('(stale: a new run resumes it)');
    expect(formatStatus(state({ lock: null }), NOW)).toContain('no runner: run the same `remora rollout` command to resume');
  });
});
