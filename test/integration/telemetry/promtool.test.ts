/** The exposition passes `promtool check metrics` (parse errors fail; only Istio/Envoy-name lint warnings are allowed). */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { REVIEWS_V1, record } from '../../unit/telemetry/records.js';

const hasPromtool = spawnSync('promtool', ['--version']).status === 0;
if (!hasPromtool) console.warn('promtool not found: install the Debian package `prometheus` to run this test');

/** Lint warnings caused by keeping Istio's and Envoy's exact metric names, which existing dashboards query. */
const ALLOWED_LINT = [
  /^istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"$/,
  /^envoy_cluster_\w+ counter metrics should have "_total" suffix$/,
  /^envoy_cluster_membership_total non-counter metrics should not have "_total" suffix$/,
  /^envoy_cluster_\w+ no help text$/,
];

function promtoolCheck(text: string): { status: number | null; problems: string[] } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
  const problems = (r.stdout + r.stderr)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return { status: r.status, problems };
}

describe.skipIf(!hasPromtool)('promtool check metrics', () => {
  it('accepts the full exposition with only the known Istio/Envoy naming lints', () => {
    const m = new Metrics({ sourceWorkload: 'productpage-v1', sourceNamespace: 'default', sourceApp: 'productpage', sourceVersion: 'v1' });
    const c = m.cluster(REVIEWS_V1);
    c.upstream_rq_total = 3;
    c.response(200);
    c.response(503);
    m.recordRequest(record());
    m.recordRequest(record({ status: 504, flags: 'UT', durationMs: 15000 }));
    m.recordRequest(record({ direction: 'inbound', destinationService: 'odd "name"\\\n' }));
    m.recordRequest(record({ status: 503, flags: 'UO,URX' }));
    m.configReloads.inc();
    m.setConfigInfo('7', 'sha256:abc');
    m.observe('remora_tracing_spans_dropped_total', 'counter', 'Spans dropped.', () => 2);
    const text = m.render({
      clusters: [{ name: REVIEWS_V1, activeRequests: 0, pendingRequests: 0, activeRetries: 0, ejectionsActive: 0, endpoints: [] }],
    });
    const { status, problems } = promtoolCheck(text);
    // Exit 1 = parse error; 3 = lint warnings only.
    expect(status, problems.join('\n')).not.toBe(1);
    const unexpected = problems.filter((p) => !ALLOWED_LINT.some((re) => re.test(p)));
    expect(unexpected).toEqual([]);
    expect(status === 0 || status === 3).toBe(true);
  });

  it('sanity: promtool does reject a broken exposition', () => {
    const { status } = promtoolCheck('# TYPE x counter\nx{a="unterminated} 1\n');
    expect(status).toBe(1);
  });
});
