/**
 * Where the rollout's numbers come from, behind one interface:
 *   - `PrometheusSource`: a Prometheus server's HTTP API (`/api/v1/query`), PromQL over Istio's
 *     `istio_requests_total` and `istio_request_duration_milliseconds_bucket` by `destination_version`;
 *   - `StatsSource`: without Prometheus, the sidecars' own `/stats/prometheus`, scraped when a window begins and when
 *     it ends; the window is the difference of the counters and histogram buckets.
 * Both select one service (`destination_service`, the FQDN) and one reporter (`source`: the calling sidecars, whose
 * `destination_version` is the route's subset; `destination`: the serving workloads' own sidecars).
 * The parsing and aggregation are pure and exported for the unit tests.
 */
import { request } from 'undici';
import type { Window } from './analysis.js';

export interface Selector {
  /** `destination_service` label value (FQDN, e.g. reviews.default.svc.cluster.local). */
  service: string;
  stable: string;
  canary: string;
  /** `reporter` label value; 'any' = both (counts a request once per reporting sidecar). */
  reporter: 'source' | 'destination' | 'any';
  /**
   * `destination_app` of the canary's workload (by Istio's convention the service's short name). During a mirror
   * step the canary's requests are shadows, which the calling sidecar does not report: they are counted from the
   * canary's own sidecar (reporter="destination", destination_version=canary, destination_app=this).
   */
  app: string;
  /**
   * HTTPRoute/GRPCRoute rollouts: stable and canary are two Services (backendRefs), told apart by
   * `destination_service` (these FQDNs) instead of `destination_version`; `service` is then unused.
   */
  services?: { stable: string; canary: string };
}

/** Options of one collect(): `mirror` = the step mirrors to a canary that has no weight (see Selector.app). */
export interface CollectOptions {
  mirror?: boolean;
}

export interface Windows {
  stable: Window;
  canary: Window;
}

export interface MetricSource {
  readonly description: string;
  /** A window starts now (stats mode scrapes its baseline). */
  begin(opts?: CollectOptions): Promise<void>;
  /** The stable and canary windows since begin() (Prometheus: over the last `windowMs`). */
  collect(windowMs: number, opts?: CollectOptions): Promise<Windows>;
}

// === Prometheus text exposition ===

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse Prometheus text format (0.0.4) samples, keeping only metric names `keep` accepts. */
export function parseExposition(text: string, keep: (name: string) => boolean = () => true): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    const nameEnd = brace >= 0 && (space < 0 || brace < space) ? brace : space;
    if (nameEnd <= 0) continue;
    const name = line.slice(0, nameEnd);
    if (!keep(name)) continue;
    const labels: Record<string, string> = {};
    let i = nameEnd;
    if (line[i] === '{') {
      i++;
      while (i < line.length && line[i] !== '}') {
        const eq = line.indexOf('=', i);
        if (eq < 0) break;
        const key = line.slice(i, eq).trim().replace(/^,/, '').trim();
        i = eq + 1;
        if (line[i] !== '"') break;
        i++;
        let v = '';
        while (i < line.length && line[i] !== '"') {
          if (line[i] === '\\' && i + 1 < line.length) {
            const n = line[i + 1];
            v += n === 'n' ? '\n' : n;
            i += 2;
          } else v += line[i++];
        }
        i++; // closing quote
        labels[key] = v;
        while (line[i] === ',' || line[i] === ' ') i++;
      }
      i++; // closing brace
    }
    const rest = line.slice(i).trim().split(/\s+/);
    const value = parseValue(rest[0] ?? '');
    if (value === undefined) continue;
    out.push({ name, labels, value });
  }
  return out;
}

function parseValue(s: string): number | undefined {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const n = Number(s);
  return s !== '' && !Number.isNaN(n) ? n : undefined;
}

/** Cumulative per-version counts of one scrape (or the sum of several sidecars' scrapes). */
export interface Totals {
  requests: number;
  failures: number;
  /** le → cumulative count. */
  buckets: Map<number, number>;
}

/** A failed request: a 5xx, no response at all (code 0), or any Envoy response flag ("-" = none). */
export function isFailure(code: string | undefined, flags: string | undefined): boolean {
  return (code !== undefined && (/^5\d\d$/.test(code) || code === '0')) || (flags !== undefined && flags !== '' && flags !== '-');
}

const REQUESTS = 'istio_requests_total';
const BUCKET = 'istio_request_duration_milliseconds_bucket';

/** Which subset a sample counts for (undefined = neither): the service and reporter selected, or a mirror step's canary. */
function subsetOf(l: Record<string, string>, sel: Selector, mirror: boolean): string | undefined {
  if (sel.services !== undefined) {
    if (mirror && l.reporter === 'destination' && l.destination_app === sel.app) return sel.canary;
    const ds = l.destination_service;
    const side = ds === sel.services.stable ? sel.stable : !mirror && ds === sel.services.canary ? sel.canary : undefined;
    if (side === undefined) return undefined;
    if (sel.reporter !== 'any' && l.reporter !== sel.reporter) return undefined;
    return side;
  }
  const ver = l.destination_version ?? '';
  if (mirror && ver === sel.canary) return l.reporter === 'destination' && l.destination_app === sel.app ? ver : undefined;
  if (ver !== sel.stable && ver !== sel.canary) return undefined;
  if (l.destination_service !== sel.service) return undefined;
  if (sel.reporter !== 'any' && l.reporter !== sel.reporter) return undefined;
  return ver;
}

/** Add the samples of one scrape to `into`, per `destination_version`, for the selected service and reporter. */
export function accumulate(samples: readonly Sample[], sel: Selector, into: Map<string, Totals>, mirror = false): void {
  for (const s of samples) {
    const l = s.labels;
    const ver = subsetOf(l, sel, mirror);
    if (ver === undefined) continue;
    let t = into.get(ver);
    if (!t) into.set(ver, (t = { requests: 0, failures: 0, buckets: new Map() }));
    if (s.name === REQUESTS) {
      t.requests += s.value;
      if (isFailure(l.response_code, l.response_flags)) t.failures += s.value;
    } else if (s.name === BUCKET) {
      const le = parseValue(l.le ?? '');
      if (le === undefined) continue;
      t.buckets.set(le, (t.buckets.get(le) ?? 0) + s.value);
    }
  }
}

/** end − begin as a Window; a counter that went down (a restarted sidecar, /reset_counters) counts from zero. */
export function delta(begin: Totals | undefined, end: Totals | undefined): Window {
  if (!end) return { requests: 0, failures: 0, buckets: [] };
  const reset = begin !== undefined && end.requests < begin.requests;
  const b = reset ? undefined : begin;
  const buckets: Array<[number, number]> = [];
  for (const [le, c] of end.buckets) buckets.push([le, Math.max(0, c - (b?.buckets.get(le) ?? 0))]);
  buckets.sort((x, y) => x[0] - y[0]);
  return {
    requests: Math.max(0, end.requests - (b?.requests ?? 0)),
    failures: Math.max(0, end.failures - (b?.failures ?? 0)),
    buckets,
  };
}

async function getText(url: string, timeoutMs: number): Promise<string> {
  const r = await request(url, { method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  const body = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`${url}: HTTP ${r.statusCode}: ${body.slice(0, 200)}`);
  return body;
}

/** `/stats/prometheus` of one or more sidecars (their admin or stats port), differenced over the window. */
export class StatsSource implements MetricSource {
  private base: Map<string, Totals> | undefined;
  readonly description: string;

  constructor(private readonly urls: readonly string[], private readonly sel: Selector, private readonly timeoutMs = 5000) {
    this.description = `sidecar stats ${urls.join(', ')}`;
  }

  async scrape(mirror = false): Promise<Map<string, Totals>> {
    const into = new Map<string, Totals>();
    for (const u of this.urls) {
      const text = await getText(u, this.timeoutMs);
      accumulate(parseExposition(text, (n) => n === REQUESTS || n === BUCKET), this.sel, into, mirror);
    }
    return into;
  }

  private mirror = false;

  /** The baseline of a window; `mirror` as the collect() that ends it. */
  async begin(opts: CollectOptions = {}): Promise<void> {
    this.mirror = opts.mirror === true;
    this.base = await this.scrape(this.mirror);
  }

  async collect(_windowMs: number, opts: CollectOptions = {}): Promise<Windows> {
    const mirror = opts.mirror === true;
    // A baseline taken under the other selection does not count: this window starts now.
    if (mirror !== this.mirror) this.base = undefined;
    const end = await this.scrape(mirror);
    const base = this.base;
    this.base = end; // the next window starts here unless begin() is called again
    return { stable: delta(base?.get(this.sel.stable), end.get(this.sel.stable)), canary: delta(base?.get(this.sel.canary), end.get(this.sel.canary)) };
  }
}

const promString = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
const promRegexLiteral = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The PromQL the Prometheus source sends, for a window of `seconds` (exported for the docs and tests). In a mirror
 * step the canary's series come from its own sidecar (see Selector.app), joined with `or`.
 */
export function promQueries(sel: Selector, seconds: number, mirror = false): { requests: string; failures5xx: string; failuresFlagged: string; buckets: string } {
  const w = `[${Math.max(1, Math.round(seconds))}s]`;
  if (sel.services !== undefined) return servicePromQueries(sel, sel.services, w, mirror);
  const selectors: string[][] = [];
  const versions = mirror ? promRegexLiteral(sel.stable) : `${promRegexLiteral(sel.stable)}|${promRegexLiteral(sel.canary)}`;
  const main = [`destination_service=${promString(sel.service)}`, `destination_version=~${promString(versions)}`];
  if (sel.reporter !== 'any') main.unshift(`reporter=${promString(sel.reporter)}`);
  selectors.push(main);
  if (mirror) selectors.push(['reporter="destination"', `destination_app=${promString(sel.app)}`, `destination_version=${promString(sel.canary)}`]);
  const q = (by: string, metric: string, extra: string[]): string =>
    selectors.map((base) => `sum by (${by}) (increase(${metric}{${[...base, ...extra].join(',')}}${w}))`).join(' or ');
  return {
    requests: q('destination_version', REQUESTS, []),
    failures5xx: q('destination_version', REQUESTS, ['response_code=~"5..|0"']),
    failuresFlagged: q('destination_version', REQUESTS, ['response_code!~"5..|0"', 'response_flags!~"-|"']),
    buckets: q('destination_version, le', BUCKET, []),
  };
}

/** promQueries for two Services (HTTPRoute/GRPCRoute backends): by destination_service, a mirror's canary by destination_app. */
function servicePromQueries(sel: Selector, svc: { stable: string; canary: string }, w: string, mirror: boolean): ReturnType<typeof promQueries> {
  const services = mirror ? promRegexLiteral(svc.stable) : `${promRegexLiteral(svc.stable)}|${promRegexLiteral(svc.canary)}`;
  const main = [`destination_service=~${promString(services)}`];
  if (sel.reporter !== 'any') main.unshift(`reporter=${promString(sel.reporter)}`);
  const shadow = ['reporter="destination"', `destination_app=${promString(sel.app)}`];
  const q = (by: string, metric: string, extra: string[]): string => {
    const a = `sum by (destination_service${by}) (increase(${metric}{${[...main, ...extra].join(',')}}${w}))`;
    return mirror ? `${a} or sum by (destination_app${by}) (increase(${metric}{${[...shadow, ...extra].join(',')}}${w}))` : a;
  };
  return {
    requests: q('', REQUESTS, []),
    failures5xx: q('', REQUESTS, ['response_code=~"5..|0"']),
    failuresFlagged: q('', REQUESTS, ['response_code!~"5..|0"', 'response_flags!~"-|"']),
    buckets: q(', le', BUCKET, []),
  };
}

interface PromVector {
  status: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

/** A Prometheus server's `/api/v1/query`; windows are `increase(…[window])` at the time of the query. */
export class PrometheusSource implements MetricSource {
  readonly description: string;
  constructor(private readonly baseUrl: string, private readonly sel: Selector, private readonly timeoutMs = 10_000) {
    this.description = `Prometheus ${baseUrl}`;
  }

  async query(q: string): Promise<Array<{ metric: Record<string, string>; value: number }>> {
    const url = `${this.baseUrl.replace(/\/$/, '')}/api/v1/query?query=${encodeURIComponent(q)}`;
    const j = JSON.parse(await getText(url, this.timeoutMs)) as PromVector;
    if (j.status !== 'success' || !j.data) throw new Error(`Prometheus: ${j.error ?? 'query failed'}`);
    return j.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  }

  async begin(): Promise<void> { /* Prometheus keeps the history */ }

  async collect(windowMs: number, opts: CollectOptions = {}): Promise<Windows> {
    const q = promQueries(this.sel, windowMs / 1000, opts.mirror === true);
    const [req, f5, ff, b] = await Promise.all([this.query(q.requests), this.query(q.failures5xx), this.query(q.failuresFlagged), this.query(q.buckets)]);
    const svc = this.sel.services;
    const app = this.sel.app;
    // Which rows count for a side: by destination_version, or (two Services) by destination_service, a mirror's
    // canary by destination_app.
    const rowOf = (ver: string) => (m: Record<string, string>): boolean => svc === undefined
      ? m.destination_version === ver
      : ver === this.sel.stable ? m.destination_service === svc.stable : m.destination_service === svc.canary || (m.destination_app !== undefined && m.destination_app === app);
    const win = (ver: string): Window => {
      const is = rowOf(ver);
      const pick = (rows: typeof req): number => rows.filter((r) => is(r.metric)).reduce((a, r) => a + (Number.isFinite(r.value) ? r.value : 0), 0);
      const buckets: Array<[number, number]> = b
        .filter((r) => is(r.metric))
        .map((r) => [parseValue(r.metric.le ?? '') ?? NaN, Number.isFinite(r.value) ? r.value : 0] as [number, number])
        .filter((x) => !Number.isNaN(x[0]))
        .sort((x, y) => x[0] - y[0]);
      return { requests: pick(req), failures: pick(f5) + pick(ff), buckets };
    };
    return { stable: win(this.sel.stable), canary: win(this.sel.canary) };
  }
}

/** `reviews` in `default` → `reviews.default.svc.cluster.local` (Istio's short-name rule: only dotless hosts). */
export function serviceFqdn(host: string, namespace: string, clusterDomain = 'cluster.local'): string {
  return host.includes('.') ? host : `${host}.${namespace}.svc.${clusterDomain}`;
}
