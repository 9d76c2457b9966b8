// Report building: JSON schema shape, medians over rounds, added latency vs the baseline,
// generator warnings, and the SVG/HTML renderings (one polyline per target, self-contained).
import { describe, it, expect } from 'vitest';
import { buildReport, renderMarkdown, renderTable, SCHEMA_VERSION, validateReport, type BenchReport } from '../../../src/bench/report.js';
import { DEFAULT_LOAD_OPTIONS, type ErrorKind, type RunOutcome } from '../../../src/bench/generator.js';
import { LatencyHistogram } from '../../../src/bench/histogram.js';
import { niceMax, renderHtml, renderSvg, seriesOf } from '../../../src/bench/plot.js';

function outcome(latMs: number, opts: { rps?: number; upstreamMs?: number; cpu?: number; lagMs?: number; errors?: Partial<Record<ErrorKind, number>> } = {}): RunOutcome {
  const latency = new LatencyHistogram();
  const service = new LatencyHistogram();
  const upstream = new LatencyHistogram();
  const proxy = new LatencyHistogram();
  const scheduleLag = new LatencyHistogram();
  for (let i = 0; i < 1000; i++) {
    latency.record(latMs);
    service.record(latMs);
    scheduleLag.record(opts.lagMs ?? 0.05);
    if (opts.upstreamMs !== undefined) {
      upstream.record(opts.upstreamMs);
      proxy.record(latMs - opts.upstreamMs);
    }
  }
  return {
    url: 'http://x/',
    completed: 1000,
    scheduled: 1000,
    errors: { connect: 0, timeout: 0, reset: 0, parse: 0, status5xx: 0, ...opts.errors },
    statusCounts: { '200': 1000 },
    measuredMs: 1000,
    achievedRps: opts.rps ?? 1000,
    latency, service, upstream, proxy, scheduleLag,
    generatorCpu: opts.cpu ?? 0.2,
    preciseTimer: true,
    responseBytes: 98000,
  };
}

function report(): BenchReport {
  return buildReport({
    targets: [
      { name: 'direct', url: 'http://127.0.0.1:1/', rounds: [{ outcome: outcome(0.1), usage: null }, { outcome: outcome(0.12), usage: null }, { outcome: outcome(0.5), usage: null }] },
      {
        name: 'remora',
        url: 'http://127.0.0.1:2/',
        rounds: [0.4, 0.3, 0.35].map((l) => ({ outcome: outcome(l, { upstreamMs: 0.1 }), usage: [{ pid: 42, cpuMs: 150, peakRssMB: 40, peakAnonMB: 12 }] })),
      },
    ],
    opts: { ...DEFAULT_LOAD_OPTIONS, rate: 1000 },
    rounds: 3,
    baseline: 'direct',
    startedAt: new Date(0),
    finishedAt: new Date(1000),
    command: ['remora', 'bench'],
    machine: { nproc: 2, cpuModel: 'test cpu', node: 'v20', platform: 'linux', loadavg1: 0.1 },
  });
}

describe('buildReport', () => {
  it('produces the documented schema, medians over rounds and added latency vs the baseline', () => {
    const r = report();
    expect(r.schemaVersion).toBe(SCHEMA_VERSION);
    expect(validateReport(JSON.parse(JSON.stringify(r)))).toEqual([]);
    const [direct, remora] = r.targets;
    expect(direct!.summary.p50Ms).toBeCloseTo(0.12, 3); // median of 0.1, 0.12, 0.5
    expect(remora!.summary.p50Ms).toBeCloseTo(0.35, 3);
    expect(direct!.comparison).toBeNull();
    expect(remora!.comparison!.baseline).toBe('direct');
    expect(remora!.comparison!.addedMs.p50).toBeCloseTo(0.23, 3);
    expect(remora!.comparison!.ratio.p50).toBeCloseTo(0.35 / 0.12, 2);
    expect(remora!.summary.cpuMsPer1000Req).toBeCloseTo(150, 6);
    expect(remora!.summary.rpsPerCore).toBeCloseTo(1000 / 0.15, 3);
    expect(remora!.summary.peakRssMB).toBe(40);
    expect(remora!.summary.peakAnonMB).toBe(12);
    expect(remora!.summary.upstreamP50Ms).toBeCloseTo(0.1, 3);
    expect(remora!.summary.proxyP50Ms).toBeCloseTo(0.25, 2);
    expect(r.targets[0]!.rounds).toHaveLength(3);
    expect(r.warnings).toEqual([]);
  });

  it('warns when the generator fell short, saturated its core, sent late or saw errors', () => {
    const r = buildReport({
      targets: [{ name: 't', url: 'http://x/', rounds: [{ outcome: outcome(1, { rps: 900, cpu: 0.95, lagMs: 3, errors: { reset: 2 } }), usage: null }] }],
      opts: { ...DEFAULT_LOAD_OPTIONS, rate: 1000 },
      rounds: 1,
      baseline: null,
      startedAt: new Date(0),
      finishedAt: new Date(0),
      command: [],
      machine: { nproc: 2, cpuModel: 'c', node: 'v20', platform: 'linux', loadavg1: 0 },
    });
    expect(r.warnings.join('\n')).toMatch(/achieved 900 req\/s of 1000/);
    expect(r.warnings.join('\n')).toMatch(/generator CPU at 95%/);
    expect(r.warnings.join('\n')).toMatch(/scheduler lag p99 3\.00 ms/);
    expect(r.warnings.join('\n')).toMatch(/errors reset=2/);
  });

  it('validateReport names what is missing', () => {
    expect(validateReport({ schemaVersion: 0, targets: [{}] })).toEqual(
      expect.arrayContaining(['schemaVersion must be 1', 'targets[0].name must be a string', 'targets[0].summary missing', 'warnings must be an array']),
    );
  });
});

describe('renderings', () => {
  it('table and markdown show every target with added latency and CPU columns', () => {
    const r = report();
    const t = renderTable(r);
    expect(t).toMatch(/remora .* \+0\.230/);
    expect(t).toMatch(/\(baseline\)/);
    expect(t).toContain('CPU ms/1k req');
    const md = renderMarkdown(r);
    expect(md.split('\n').filter((l) => l.startsWith('| '))).toHaveLength(4); // header, rule, 2 targets
    expect(md).toMatch(/Ratios vs `direct`: remora p50 2\.92x/);
  });

  it('SVG has one polyline per target, a legend and a log percentile axis', () => {
    const svg = renderSvg(seriesOf(report()));
    expect(svg.match(/<polyline class="series"/g)).toHaveLength(2);
    expect(svg).toContain('data-target="direct"');
    expect(svg).toContain('data-target="remora"');
    for (const tick of ['0%', '90%', '99%', '99.9%', '99.99%']) expect(svg).toContain(`>${tick}</text>`);
    expect(svg).toContain('latency (ms)');
  });

  it('SVG escapes target names', () => {
    const svg = renderSvg([{ name: '<a&b>', curve: [[0, 1], [50, 2]] }]);
    expect(svg).toContain('&lt;a&amp;b&gt;');
    expect(svg).not.toContain('<a&b>');
  });

  it('HTML is self-contained: inline SVG and CSS, no external references', () => {
    const html = renderHtml(report());
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<svg');
    expect(html).toContain('<style>');
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|<img[^>]+src=|url\(|@import/i);
    expect(html).not.toMatch(/(src|href)="https?:/);
    expect(html).toContain('schemaVersion');
  });

  it('niceMax rounds up to 1/2/2.5/5 x 10^k', () => {
    expect(niceMax(0.37)).toBe(0.5);
    expect(niceMax(3)).toBe(5);
    expect(niceMax(21)).toBe(25);
    expect(niceMax(0)).toBe(1);
  });
});

describe('SVG y axis', () => {
  it('switches to a log axis when the tail dwarfs the medians, keeping curves inside the plot', () => {
    const series = [
      { name: 'a', curve: [[0, 0.1], [50, 0.2], [99, 5], [99.99, 100]] as Array<[number, number]> },
      { name: 'b', curve: [[0, 0.2], [50, 0.4], [99, 1], [99.99, 2]] as Array<[number, number]> },
    ];
    const svg = renderSvg(series);
    expect(svg).toContain('latency (ms, log scale)');
    for (const tick of ['0.1', '1', '10', '100']) expect(svg).toContain(`>${tick}</text>`);
    const ys = [...svg.matchAll(/points="([^"]+)"/g)].flatMap((m) => m[1]!.split(' ').map((pt) => Number(pt.split(',')[1])));
    expect(Math.min(...ys)).toBeGreaterThanOrEqual(40);
    expect(Math.max(...ys)).toBeLessThanOrEqual(430);
    expect(renderSvg(series, 't', 860, 480, 'linear')).toContain('latency (ms)<');
  });
});
