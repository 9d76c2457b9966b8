/**
 * The admin dashboard (`GET /` on the admin port): the JSON model it polls (`/debug/routes`, `/debug/dashboard`),
 * computed from the live snapshot, the per-cluster dashboard aggregates and the cluster views, and the page itself —
 * one self-contained HTML document with inline CSS and JS (no build step, no external assets).
 */
import type { ClusterView } from '../model.js';
import type { HostEntry, Snapshot } from '../config/snapshot.js';
import { clusterName } from '../config/compile.js';
import type { CompiledMatch, CompiledRoute } from '../routing/route.js';
import type { CompiledStringMatch } from '../routing/string-match.js';
import { latencyPercentile, type ClusterSummary } from '../telemetry/metrics.js';
// state.ts imports nothing at run time: the sidecar's bundle does not load the yaml package for it.
import { ANNOTATION as ROLLOUT_ANNOTATION, HEADER_ROUTE_NAME, badgeOf, parseState, type RolloutBadge } from '../rollout/state.js';

/** Rows beyond these are counted in `omitted…` rather than sent: a mesh of 10k services stays a small page. */
export const MAX_ROUTES = 300;
export const MAX_CLUSTERS = 300;

export interface DestinationView {
  host: string;
  subset: string;
  /** Explicit destination port, 0 = the request's port. */
  port: number;
  /** Configured weight (VirtualService `route[].weight`; a lone destination is 100). */
  weight: number;
  /** Configured share of the route's traffic, 0..1. */
  configuredShare: number;
  clusters: string[];
  /** Requests of this route served by this destination's clusters since start or /reset_counters. */
  requests: number;
  /** Observed share of the route's requests, 0..1; null before any request. */
  observedShare: number | null;
}

export interface RouteView {
  /** Hosts this route table serves (a VirtualService with several hosts shares one table). */
  hosts: string[];
  origin: string;
  name: string;
  index: number;
  match: string;
  kind: 'route' | 'redirect' | 'direct';
  timeoutMs: number;
  retries: number;
  requests: number;
  destinations: DestinationView[];
  /** A `remora rollout` of this route: the state it keeps in the VirtualService's `remora.io/rollout` annotation. */
  rollout?: RolloutBadge;
}

export interface EjectedEndpointView {
  cluster: string;
  endpoint: string;
  healthFlags: string[];
  ejections: number;
  /** ms until the ejection ends; null when unknown. */
  remainingMs: number | null;
}

export interface ClusterDashboardView {
  name: string;
  requests: number;
  success: number;
  /** success / requests (non-5xx share), null before any request. */
  successRate: number | null;
  p50Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  activeRequests: number;
  pendingRequests: number;
  endpoints: number;
  healthyEndpoints: number;
  ejectionsActive: number;
}

export interface DashboardModel {
  server: { version: string; state: string; uptimeSeconds: number; configVersion: number | null; configHash: string | null };
  routes: RouteView[];
  omittedRoutes: number;
  clusters: ClusterDashboardView[];
  omittedClusters: number;
  ejected: EjectedEndpointView[];
}

const MATCH_KINDS = ['exact', 'prefix', 'regex', 'present'] as const;

function stringMatch(m: CompiledStringMatch): string {
  const kind = MATCH_KINDS[m.kind as number] ?? 'match';
  return kind === 'present' ? 'present' : `${kind} ${m.value}${m.ignoreCase ? ' (i)' : ''}`;
}

/** One line per match block, e.g. `uri prefix /api, header end-user exact jason`; blocks are OR-ed with ` | `. */
export function describeMatches(matches: readonly CompiledMatch[]): string {
  if (matches.length === 0) return '*';
  return matches
    .map((m) => {
      const parts: string[] = [];
      if (m.uri) parts.push(`uri ${stringMatch(m.uri)}`);
      if (m.method) parts.push(`method ${stringMatch(m.method)}`);
      if (m.authority) parts.push(`authority ${stringMatch(m.authority)}`);
      if (m.scheme) parts.push(`scheme ${stringMatch(m.scheme)}`);
      for (const h of m.headers) parts.push(`header ${h.name} ${stringMatch(h.match)}`);
      for (const h of m.withoutHeaders) parts.push(`without header ${h.name} ${stringMatch(h.match)}`);
      for (const q of m.queryParams) parts.push(`query ${q.name} ${stringMatch(q.match)}`);
      if (m.port) parts.push(`port ${m.port}`);
      return parts.length ? parts.join(', ') : '*';
    })
    .join(' | ');
}

/**
 * Every route of the live config with its configured weight split and the split observed in
 * finished requests. The observed count of a destination is the requests of this route name served by the
 * destination's clusters, so two routes with the same name sending to the same cluster share their counts.
 * Registry hosts without a VirtualService (Istio's synthesized `default` route) are listed only once they got traffic.
 */
export function routesView(snap: Snapshot | undefined, summaries: ReadonlyMap<string, ClusterSummary>): { routes: RouteView[]; omitted: number } {
  if (!snap) return { routes: [], omitted: 0 };
  // A VirtualService with several hosts compiles to one route table shared by its hosts.
  const tables = new Map<readonly CompiledRoute[], string[]>();
  const seen = new Set<string>();
  const addHost = (host: string, routes: readonly CompiledRoute[] | undefined): void => {
    if (!routes || seen.has(host)) return;
    seen.add(host);
    const hosts = tables.get(routes);
    if (hosts) hosts.push(host);
    else tables.set(routes, [host]);
  };
  // A default route is listed only once it has traffic: one whose clusters have none is left unbuilt (routes are
  // compiled on first read, and a large mesh has thousands nobody calls).
  const idleDefault = (e: HostEntry): boolean => e.vhost!.compiled === false && !e.vhost!.origin.startsWith('VirtualService/') &&
    !(e.service?.ports ?? []).some((p) => summaries.has(clusterName(p.number, '', e.vhost!.host)));
  for (const [name, entry] of snap.hosts) if (entry.vhost && entry.vhost.host === name && !idleDefault(entry)) addHost(name, entry.vhost.routes);
  for (const w of snap.wildcards) if (w.entry.vhost && !idleDefault(w.entry)) addHost(w.entry.vhost.host, w.entry.vhost.routes);

  // Rollouts recorded on VirtualServices (`remora rollout` writes its state there; see docs/rollouts.md).
  const rollouts = new Map<string, RolloutBadge>();
  const now = Date.now();
  for (const res of snap.resources) {
    const a = res.kind === 'VirtualService' ? res.metadata.annotations?.[ROLLOUT_ANNOTATION] : undefined;
    if (a === undefined) continue;
    try {
      const st = parseState(a);
      if (st) rollouts.set(`VirtualService/${res.metadata.namespace}/${res.metadata.name}`, badgeOf(st, now));
    } catch { /* not ours to judge: the dashboard shows no rollout */ }
  }

  const out: RouteView[] = [];
  for (const [routes, hosts] of tables) {
    for (const r of routes) {
      const destinations: DestinationView[] = [];
      let requests = 0;
      if (r.action.kind === 'route') {
        const total = r.action.total;
        for (const d of r.action.destinations) {
          const clusters = [...d.clusters.values()].map((c) => c.name);
          let n = 0;
          for (const c of clusters) n += summaries.get(c)?.byRoute.get(r.name)?.requests ?? 0;
          requests += n;
          destinations.push({
            host: d.host, subset: d.subset, port: d.port, weight: d.weight,
            configuredShare: total > 0 ? d.weight / total : 0,
            clusters, requests: n, observedShare: null,
          });
        }
        for (const d of destinations) d.observedShare = requests > 0 ? d.requests / requests : null;
      }
      const fromVirtualService = r.origin.startsWith('VirtualService/');
      if (!fromVirtualService && requests === 0) continue;
      const view: RouteView = {
        hosts: [...hosts].sort(), origin: r.origin, name: r.name, index: r.index, match: describeMatches(r.matches),
        kind: r.action.kind, timeoutMs: r.timeoutMs, retries: r.retry.attempts, requests, destinations,
      };
      const ro = rollouts.get(r.origin);
      if (ro && r.name !== HEADER_ROUTE_NAME && destinations.some((d) => d.subset === ro.stable || d.subset === ro.canary)) view.rollout = ro;
      out.push(view);
    }
  }
  // Busiest first, then by config order so a table's routes stay together.
  out.sort((a, b) => b.requests - a.requests || a.hosts[0]!.localeCompare(b.hosts[0]!) || a.index - b.index);
  return { routes: out.slice(0, MAX_ROUTES), omitted: Math.max(0, out.length - MAX_ROUTES) };
}

/** Per-cluster success rate and latency percentiles (requests since start or /reset_counters), live gauges and ejections. */
export function clustersView(
  views: readonly ClusterView[],
  summaries: ReadonlyMap<string, ClusterSummary>,
  now: number,
): { clusters: ClusterDashboardView[]; omitted: number; ejected: EjectedEndpointView[] } {
  const byName = new Map<string, ClusterView>();
  for (const v of views) byName.set(v.name, v);
  const names = new Set<string>([...byName.keys(), ...summaries.keys()]);
  const clusters: ClusterDashboardView[] = [];
  const ejected: EjectedEndpointView[] = [];
  for (const name of names) {
    const v = byName.get(name);
    const s = summaries.get(name);
    const requests = s?.requests ?? 0;
    clusters.push({
      name,
      requests,
      success: s?.success ?? 0,
      successRate: s && requests > 0 ? s.success / requests : null,
      p50Ms: s ? latencyPercentile(s.latency, 0.5) ?? null : null,
      p90Ms: s ? latencyPercentile(s.latency, 0.9) ?? null : null,
      p99Ms: s ? latencyPercentile(s.latency, 0.99) ?? null : null,
      activeRequests: v?.activeRequests ?? 0,
      pendingRequests: v?.pendingRequests ?? 0,
      endpoints: v?.endpoints.length ?? 0,
      healthyEndpoints: v ? v.endpoints.filter((e) => e.healthy).length : 0,
      ejectionsActive: v?.ejectionsActive ?? 0,
    });
    for (const e of v?.endpoints ?? []) {
      if (!e.healthFlags.includes('failed_outlier_check')) continue;
      ejected.push({
        cluster: name, endpoint: e.key, healthFlags: e.healthFlags, ejections: e.ejections,
        remainingMs: e.ejectedUntil !== undefined ? Math.max(0, Math.round(e.ejectedUntil - now)) : null,
      });
    }
  }
  clusters.sort((a, b) => b.requests - a.requests || a.name.localeCompare(b.name));
  ejected.sort((a, b) => a.cluster.localeCompare(b.cluster) || a.endpoint.localeCompare(b.endpoint));
  return { clusters: clusters.slice(0, MAX_CLUSTERS), omitted: Math.max(0, clusters.length - MAX_CLUSTERS), ejected };
}

/** The page. Data comes from `GET /debug/dashboard` (polled every 2 s); values are inserted as text, never as HTML. */
export function dashboardHtml(): string {
  return DASHBOARD_HTML;
}

const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Remora admin</title>
<style>
:root { --bg:#f4f6f8; --card:#fff; --ink:#1d2733; --muted:#6b7785; --line:#e3e8ee; --accent:#0b7285;
  --cfg:#9aa9b8; --obs:#12b886; --bad:#e03131; --warn:#f08c00; }
* { box-sizing:border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; background:var(--bg); color:var(--ink); }
header { display:flex; align-items:center; gap:18px; padding:12px 24px; background:#102a43; color:#fff; }
header h1 { margin:0; font-size:19px; letter-spacing:.5px; }
header .pill { padding:2px 10px; border-radius:10px; background:#2f4a66; font-size:12px; }
header .pill.live { background:#2b8a3e; } header .pill.down { background:var(--bad); }
header .meta { color:#bcccdc; font-size:12px; } header .spacer { flex:1; }
header a { color:#bcccdc; font-size:12px; }
main { padding:16px 24px 32px; display:grid; gap:16px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 16px; }
section h2 { margin:0 0 8px; font-size:15px; display:flex; gap:8px; align-items:baseline; }
section h2 small { color:var(--muted); font-weight:normal; font-size:12px; }
table { width:100%; border-collapse:collapse; }
th { text-align:left; color:var(--muted); font-weight:600; font-size:12px; border-bottom:1px solid var(--line); padding:6px 8px; }
td { border-bottom:1px solid var(--line); padding:6px 8px; vertical-align:top; }
tr:last-child td { border-bottom:none; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
code, .mono { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px; }
.muted { color:var(--muted); } .bad { color:var(--bad); font-weight:600; } .ok { color:#2b8a3e; } .warn { color:var(--warn); }
.dest { display:grid; grid-template-columns:minmax(0,1.4fr) minmax(120px,2fr) 104px; gap:2px 10px; align-items:center; margin:3px 0; }
.dest > .mono:first-child { overflow-wrap:anywhere; }
.dest b { font-weight:600; }
.bars { display:grid; gap:2px; }
.bar { position:relative; height:9px; background:#eef1f4; border-radius:5px; overflow:hidden; }
.bar > span { position:absolute; left:0; top:0; bottom:0; border-radius:5px; }
.bar.cfg > span { background:var(--cfg); } .bar.obs > span { background:var(--obs); }
.legend { display:flex; gap:14px; font-size:12px; color:var(--muted); }
.legend i { display:inline-block; width:18px; height:8px; border-radius:4px; margin-right:4px; vertical-align:middle; }
.empty { color:var(--muted); padding:6px 8px; }
.tag { display:inline-block; padding:0 6px; border-radius:4px; background:#e7f5ff; color:#1864ab; font-size:11px; margin-right:4px; }
.tag.red { background:#fff5f5; color:var(--bad); }
.rollout { margin-top:4px; font-size:12px; }
#error { display:none; background:#fff5f5; color:var(--bad); border:1px solid #ffc9c9; }
</style>
</head>
<body>
<header>
  <h1>Remora</h1>
  <span id="state" class="pill">loading…</span>
  <span class="meta" id="meta"></span>
  <span class="spacer"></span>
  <span class="meta" id="updated"></span>
  <a href="/help">endpoints</a>
</header>
<main>
  <section id="error"></section>
  <section>
    <h2>Routes <small>configured weight vs observed share of requests</small></h2>
    <div class="legend"><span><i style="background:var(--cfg)"></i>configured</span><span><i style="background:var(--obs)"></i>observed (since start / reset_counters)</span><span>30 s: observed in the last 30 s of polling</span></div>
    <table id="routes"><thead><tr><th>host</th><th>route</th><th>match</th><th>destinations</th><th class="num">requests</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Clusters <small>downstream requests by serving cluster; success = non-5xx</small></h2>
    <table id="clusters"><thead><tr><th>cluster</th><th class="num">requests</th><th class="num">success</th><th class="num">p50</th><th class="num">p90</th><th class="num">p99</th><th class="num">active</th><th class="num">healthy</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Ejected endpoints <small>outlier detection</small></h2>
    <table id="ejected"><thead><tr><th>cluster</th><th>endpoint</th><th>flags</th><th class="num">ejections</th><th class="num">back in</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
(function () {
  'use strict';
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) { if (k === 'text') e.textContent = attrs[k]; else if (k === 'cls') e.className = attrs[k]; else e.setAttribute(k, attrs[k]); }
    (kids || []).forEach(function (c) { if (c !== null && c !== undefined) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }
  function pct(x) { return x === null || x === undefined ? '–' : Math.round(x * 1000) / 10 + '%'; }
  function ms(x) {
    if (x === null || x === undefined) return '–';
    if (x < 1) return x.toFixed(2) + ' ms';
    if (x < 1000) return (x < 10 ? x.toFixed(1) : Math.round(x)) + ' ms';
    return (x / 1000).toFixed(x < 10000 ? 2 : 1) + ' s';
  }
  function bar(cls, share, title) {
    var s = el('span'); s.style.width = Math.max(0, Math.min(100, (share || 0) * 100)).toFixed(1) + '%';
    return el('div', { cls: 'bar ' + cls, title: title }, [s]);
  }
  function fill(id, rows, emptyText, cols) {
    var tb = document.querySelector('#' + id + ' tbody');
    tb.replaceChildren.apply(tb, rows.length ? rows : [el('tr', {}, [el('td', { cls: 'empty', colspan: String(cols), text: emptyText })])]);
  }
  function destName(d) { return d.host + (d.subset ? ' · ' + d.subset : '') + (d.port ? ':' + d.port : ''); }
  // Recent split: the cumulative counters are diffed against the oldest poll of the last 30 s, so a weight change
  // shows up at once instead of being averaged with everything since start.
  var WINDOW_MS = 30000;
  var history = [];
  function recentShares(routes) {
    var now = Date.now(), counts = {};
    routes.forEach(function (r) { r.destinations.forEach(function (d) { counts[r.hosts.join(',') + '|' + r.name + '|' + destName(d)] = d.requests; }); });
    while (history.length && now - history[0].t > WINDOW_MS) history.shift();
    var base = history[0];
    history.push({ t: now, counts: counts });
    var out = {};
    if (!base) return out;
    routes.forEach(function (r) {
      var deltas = [], total = 0, ok = true;
      r.destinations.forEach(function (d) {
        var k = r.hosts.join(',') + '|' + r.name + '|' + destName(d);
        var dd = (counts[k] || 0) - (base.counts[k] || 0);
        if (dd < 0) ok = false; // /reset_counters in between
        deltas.push([k, dd]); total += dd;
      });
      if (ok && total > 0) deltas.forEach(function (x) { out[x[0]] = x[1] / total; });
    });
    return out;
  }
  function render(m) {
    var recent = recentShares(m.routes);
    var st = document.getElementById('state');
    st.textContent = m.server.state; st.className = 'pill ' + (m.server.state === 'LIVE' ? 'live' : 'down');
    document.getElementById('meta').textContent = 'v' + m.server.version + ' · config ' + (m.server.configVersion === null ? '–' : '#' + m.server.configVersion) +
      (m.server.configHash ? ' (' + String(m.server.configHash).slice(0, 19) + ')' : '') + ' · up ' + m.server.uptimeSeconds + ' s';
    document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    fill('routes', m.routes.map(function (r) {
      var dests = r.kind !== 'route' ? [el('span', { cls: 'tag', text: r.kind })] : r.destinations.map(function (d) {
        return el('div', { cls: 'dest', 'data-dest': destName(d) }, [
          el('span', { cls: 'mono', title: destName(d) }, [d.subset ? el('b', { text: d.subset + ' ' }) : null, el('span', { cls: 'muted', text: d.host + (d.port ? ':' + d.port : '') })]),
          el('div', { cls: 'bars' }, [bar('cfg', d.configuredShare, 'configured ' + pct(d.configuredShare)), bar('obs', d.observedShare, 'observed ' + pct(d.observedShare))]),
          el('span', { cls: 'num mono', 'data-share': d.observedShare === null ? '' : d.observedShare.toFixed(3) }, [
            pct(d.configuredShare) + ' → ' + pct(d.observedShare),
            recent[r.hosts.join(',') + '|' + r.name + '|' + destName(d)] === undefined ? null
              : el('div', { cls: 'muted', title: 'share of the requests of the last 30 s', text: '30 s: ' + pct(recent[r.hosts.join(',') + '|' + r.name + '|' + destName(d)]) }),
          ]),
        ]);
      });
      var tags = [];
      if (r.timeoutMs) tags.push(el('span', { cls: 'tag', text: 'timeout ' + ms(r.timeoutMs) }));
      if (r.retries) tags.push(el('span', { cls: 'tag', text: 'retries ' + r.retries }));
      if (r.rollout) {
        var ro = r.rollout;
        tags.push(el('div', { cls: 'rollout', 'data-rollout': ro.phase }, [
          el('span', { cls: 'tag' + (ro.phase === 'RolledBack' || ro.phase === 'Aborted' ? ' red' : ''), text: 'rollout ' + ro.stable + ' → ' + ro.canary + ' · ' + ro.phase + ' · step ' + ro.step + '/' + ro.steps + ' · canary ' + ro.canaryWeight + '%' }),
          el('div', { cls: 'muted', text: ro.message }),
          ro.canarySuccessRate === null && ro.stableSuccessRate === null ? null : el('div', { cls: 'muted mono', text: ro.stable + ' ' + pct(ro.stableSuccessRate) + ' p99 ' + ms(ro.stableP99Ms) + ' · ' + ro.canary + ' ' + pct(ro.canarySuccessRate) + ' p99 ' + ms(ro.canaryP99Ms) }),
        ]));
      }
      return el('tr', { 'data-route': r.name, 'data-host': r.hosts.join(',') }, [
        el('td', { cls: 'mono', text: r.hosts.join(', ') }),
        el('td', {}, [el('div', { text: r.name }), el('div', { cls: 'muted mono', text: r.origin })].concat(tags)),
        el('td', { cls: 'mono', text: r.match }),
        el('td', {}, dests),
        el('td', { cls: 'num', text: String(r.requests) }),
      ]);
    }).concat(m.omittedRoutes ? [el('tr', {}, [el('td', { cls: 'empty', colspan: '5', text: m.omittedRoutes + ' more routes not shown' })])] : []),
    'no VirtualService routes and no traffic yet', 5);
    fill('clusters', m.clusters.map(function (c) {
      var sr = c.successRate;
      return el('tr', { 'data-cluster': c.name }, [
        el('td', { cls: 'mono', text: c.name }),
        el('td', { cls: 'num', text: String(c.requests) }),
        el('td', { cls: 'num ' + (sr === null ? 'muted' : sr < 0.95 ? 'bad' : sr < 0.999 ? 'warn' : 'ok'), 'data-success': sr === null ? '' : sr.toFixed(4), text: pct(sr) }),
        el('td', { cls: 'num', text: ms(c.p50Ms) }), el('td', { cls: 'num', text: ms(c.p90Ms) }), el('td', { cls: 'num', text: ms(c.p99Ms) }),
        el('td', { cls: 'num', text: String(c.activeRequests) + (c.pendingRequests ? ' (+' + c.pendingRequests + ' pending)' : '') }),
        el('td', { cls: 'num ' + (c.healthyEndpoints < c.endpoints ? 'bad' : ''), text: c.healthyEndpoints + '/' + c.endpoints }),
      ]);
    }).concat(m.omittedClusters ? [el('tr', {}, [el('td', { cls: 'empty', colspan: '8', text: m.omittedClusters + ' more clusters not shown' })])] : []),
    'no clusters yet', 8);
    fill('ejected', m.ejected.map(function (e) {
      return el('tr', { 'data-ejected': e.endpoint, 'data-cluster': e.cluster }, [
        el('td', { cls: 'mono', text: e.cluster }),
        el('td', { cls: 'mono bad', text: e.endpoint }),
        el('td', {}, e.healthFlags.map(function (f) { return el('span', { cls: 'tag red', text: f }); })),
        el('td', { cls: 'num', text: String(e.ejections) }),
        el('td', { cls: 'num', text: e.remainingMs === null ? '–' : ms(e.remainingMs) }),
      ]);
    }), 'no endpoint is ejected', 5);
  }
  function poll() {
    fetch('/debug/dashboard', { cache: 'no-store' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (m) {
      document.getElementById('error').style.display = 'none';
      render(m);
    }).catch(function (err) {
      var e = document.getElementById('error');
      e.textContent = 'cannot load /debug/dashboard: ' + err.message; e.style.display = 'block';
      var st = document.getElementById('state'); st.textContent = 'UNREACHABLE'; st.className = 'pill down';
    });
  }
  poll();
  setInterval(poll, 2000);
})();
</script>
</body>
</html>
`;
