// Latency-percentile plots as self-contained SVG (and an HTML page around it): x is the
// percentile on the HdrHistogram log axis (0 → 99.99), y is latency in ms, one polyline per target.
import { percentileToLogX, type Curve } from './histogram.js';
import { renderMarkdown, tableRows, TABLE_COLUMNS, type BenchReport } from './report.js';

export interface Series {
  name: string;
  curve: Curve;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const X_TICKS: Array<[number, string]> = [
  [0, '0%'],
  [90, '90%'],
  [99, '99%'],
  [99.9, '99.9%'],
  [99.99, '99.99%'],
];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** A "nice" axis maximum (1, 2, 2.5, 5 × 10^k) at or above v. */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * 'auto' picks a log latency axis when the tail is more than 20× the smallest median, so sub-ms
 * medians stay readable next to a long tail; otherwise linear, as HdrHistogram plots are.
 */
export type YScale = 'linear' | 'log' | 'auto';

export function chooseYScale(series: Series[], scale: YScale): 'linear' | 'log' {
  if (scale !== 'auto') return scale;
  const all = series.flatMap((s) => s.curve.map(([, v]) => v));
  const medians = series.map((s) => s.curve.find(([p]) => p >= 50)?.[1] ?? 0).filter((v) => v > 0);
  if (all.length === 0 || medians.length === 0) return 'linear';
  return Math.max(...all) / Math.min(...medians) > 20 ? 'log' : 'linear';
}

export function renderSvg(series: Series[], title = 'Latency by percentile', width = 860, height = 480, scale: YScale = 'auto'): string {
  const m = { left: 70, right: 180, top: 40, bottom: 50 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const values = series.flatMap((s) => s.curve.map(([, v]) => v));
  const yScale = chooseYScale(series, scale);
  const maxY = niceMax(Math.max(0, ...values));
  // Log axis: whole decades around the data, values below the floor drawn at the floor.
  const lo = Math.pow(10, Math.floor(Math.log10(Math.max(0.001, Math.min(...values.filter((v) => v > 0), maxY)))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(maxY, lo * 10))));
  const x = (p: number) => m.left + (percentileToLogX(p) / 4) * pw;
  const y =
    yScale === 'linear'
      ? (v: number) => m.top + ph - (v / maxY) * ph
      : (v: number) => m.top + ph - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph;
  const yTicks: number[] = [];
  if (yScale === 'linear') for (let i = 0; i <= 5; i++) yTicks.push((maxY * i) / 5);
  else for (let v = lo; v <= hi * 1.0001; v *= 10) yTicks.push(v);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`);
  // Grid and axes.
  for (const v of yTicks) {
    const yy = y(v).toFixed(1);
    parts.push(`<line x1="${m.left}" y1="${yy}" x2="${m.left + pw}" y2="${yy}" stroke="#ddd"/>`);
    parts.push(`<text x="${m.left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${+v.toPrecision(4)}</text>`);
  }
  for (const [p, label] of X_TICKS) {
    const xx = x(p).toFixed(1);
    parts.push(`<line x1="${xx}" y1="${m.top}" x2="${xx}" y2="${m.top + ph}" stroke="#ddd"/>`);
    parts.push(`<text x="${xx}" y="${m.top + ph + 16}" text-anchor="middle">${label}</text>`);
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#444"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${height - 12}" text-anchor="middle">percentile</text>`);
  parts.push(`<text x="18" y="${m.top + ph / 2}" text-anchor="middle" transform="rotate(-90 18 ${m.top + ph / 2})">latency (ms${yScale === 'log' ? ', log scale' : ''})</text>`);
  // One polyline per target, then its legend entry.
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const pts = s.curve.map(([p, v]) => `${x(p).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline class="series" data-target="${escapeXml(s.name)}" fill="none" stroke="${color}" stroke-width="2" points="${pts}"/>`);
    const ly = m.top + 10 + i * 20;
    const lx = m.left + pw + 16;
    parts.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${color}" stroke-width="3"/>`);
    parts.push(`<text x="${lx + 30}" y="${ly}" dominant-baseline="middle">${escapeXml(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

export function seriesOf(r: BenchReport): Series[] {
  return r.targets.map((t) => ({ name: t.name, curve: t.curve }));
}

/** A self-contained HTML page: inline CSS, the SVG plot, the results table, the raw JSON. No external assets. */
export function renderHtml(r: BenchReport, title = 'remora bench report'): string {
  const rows = tableRows(r);
  const th = TABLE_COLUMNS.map((h) => `<th>${escapeXml(h)}</th>`).join('');
  const trs = rows.map((row) => `<tr>${row.map((c, i) => (i === 0 ? `<th>${escapeXml(c)}</th>` : `<td>${escapeXml(c)}</td>`)).join('')}</tr>`).join('\n');
  const md = renderMarkdown(r);
  const summaryLine = escapeXml(md.split('\n')[2] ?? '');
  const warnings = r.warnings.length ? `<ul class="warn">${r.warnings.map((w) => `<li>${escapeXml(w)}</li>`).join('')}</ul>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeXml(title)}</title>
<style>
body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px}td{text-align:right;font-variant-numeric:tabular-nums}
.warn{color:#a40}pre{background:#f6f6f6;padding:1em;overflow:auto;max-height:30em}
</style></head><body>
<h1>${escapeXml(title)}</h1>
<p>${summaryLine}</p>
<p>Latency is measured from each request's intended send time (coordinated-omission corrected); figures are medians over interleaved rounds.</p>
${renderSvg(seriesOf(r))}
<table><thead><tr>${th}</tr></thead><tbody>
${trs}
</tbody></table>
${warnings}
<details><summary>Raw JSON (schemaVersion ${r.schemaVersion})</summary><pre>${escapeXml(JSON.stringify(r, null, 2))}</pre></details>
</body></html>
`;
}
