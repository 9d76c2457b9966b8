/**
 * `remora explain` and `/debug/route`: which route, destination, subset, endpoints and policies a
 * request would get, and why (each earlier route with the reason it did not match). Pure.
 */
import type { Snapshot } from '../config/snapshot.js';
import { lookupHost } from '../config/compile.js';
import { parseTarget } from './request-target.js';
import { describeMatch, destinationPort, explainMatch, matchRoute, type RequestView } from './route.js';
import type { ClusterDef, RetryPolicy } from '../model.js';
import { serverIdentities } from '../security/spiffe.js';
import { DEFAULT_BACKOFF_BASE_MS } from '../proxy/retry-policy.js';
import { routeReason } from '../gateway/translate.js';
import { E } from '../errors.js';

export interface ExplainRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
}

export interface Explanation {
  request: { method: string; authority: string; path: string; query: string; port: number };
  configVersion: number;
  host: { name: string; matched: string | undefined; virtualService: string | undefined; service: string | undefined; gatewayRoutes?: string };
  /** `rank`: for Gateway API routes, where the match sits in the spec's precedence and why. */
  routes: Array<{ name: string; origin: string; matched: boolean; match?: string; why: string[]; rank?: string }>;
  outcome: string;
  route?: string;
  action?: string;
  destinations?: Array<{ host: string; subset: string; port: number; weight: number; share: string; cluster: string | undefined; endpoints: string[]; lb?: string; connectionPool?: unknown; outlierDetection?: unknown; mtls?: string[]; failStatus?: number }>;
  timeout?: string;
  /** The route's compiled retry policy (`describeRetries` gives the text form). */
  retries?: RetryPolicy;
  fault?: unknown;
  mirrors?: string[];
  rewrite?: unknown;
}

export function explainRequest(snap: Snapshot, req: ExplainRequest): Explanation {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v;
  const t = parseTarget(req.url, headers.host);
  const method = req.method.toUpperCase();
  const base: Explanation = {
    request: { method, authority: t?.authority ?? '', path: t?.path ?? '', query: t?.query ?? '', port: t ? t.explicitPort || 80 : 0 },
    configVersion: snap.version,
    host: { name: t?.host ?? '', matched: undefined, virtualService: undefined, service: undefined },
    routes: [],
    outcome: '',
  };
  if (!t) return { ...base, outcome: '400 bad request target' };
  const port = t.explicitPort || (t.scheme === 'https' ? 443 : 80);
  const entry = lookupHost(snap, t.host);
  if (!entry || !entry.vhost) {
    base.outcome = snap.outboundTrafficPolicy === 'REGISTRY_ONLY'
      ? `502 (flag NR): ${t.host} is not in the registry and outboundTrafficPolicy is REGISTRY_ONLY`
      : `passthrough to ${t.host}:${port} (ALLOW_ANY): no VirtualService or ServiceEntry knows ${t.host}`;
    return base;
  }
  base.host.matched = entry.host;
  base.host.virtualService = entry.vhost.origin.startsWith('VirtualService/') ? entry.vhost.origin : undefined;
  if (/^(HTTP|GRPC)Route\//.test(entry.vhost.origin)) {
    base.host.gatewayRoutes = [...new Set(entry.vhost.routes.map((r) => r.origin).filter((o) => /^(HTTP|GRPC)Route\//.test(o)))].join(', ');
  }
  base.host.service = entry.service?.origin;
  headers.host ??= t.authority;
  const view: RequestView = { method, path: t.path, query: t.query, scheme: t.scheme, authority: t.authority, port, headers };
  for (const r of entry.vhost.routes) {
    const mi = matchRoute(r, view);
    if (mi >= 0) {
      const rank = routeReason(r);
      base.routes.push({ name: r.name, origin: r.origin, matched: true, match: r.matches.length ? describeMatch(r.matches[mi]!) : 'everything', why: [], ...(rank !== undefined ? { rank } : {}) });
      base.route = r.name;
      base.timeout = r.timeoutMs > 0 ? `${r.timeoutMs}ms` : 'disabled (Istio default)';
      base.retries = { ...r.retry };
      if (r.fault) base.fault = r.fault;
      if (r.rewrite) base.rewrite = { uri: r.rewrite.uri, authority: r.rewrite.authority, regex: r.rewrite.regex?.source };
      if (r.mirrors.length) base.mirrors = r.mirrors.map((m) => `${m.destination.host}${m.destination.subset ? ` subset ${m.destination.subset}` : ''} (${m.percent}%)`);
      const a = r.action;
      if (a.kind === 'direct') { base.action = `direct response ${a.status}`; base.outcome = `${a.status} direct response`; }
      else if (a.kind === 'redirect') { base.action = `redirect ${a.code}`; base.outcome = `${a.code} redirect${a.uri ? ` to ${a.uri}` : ''}`; }
      else {
        base.action = 'route';
        base.destinations = a.destinations.map((d) => {
          const p = destinationPort(d, port, t.explicitPort);
          const c = d.clusters.get(p);
          const share = a.total > 0 ? `${((d.weight / a.total) * 100).toFixed(1)}%` : '0%';
          const out: NonNullable<Explanation['destinations']>[number] = {
            host: d.host, subset: d.subset, port: p, weight: d.weight, share, cluster: c?.name,
            endpoints: c ? c.endpoints.map((e) => `${e.key}${Object.keys(e.labels).length ? ` ${JSON.stringify(e.labels)}` : ''}${e.weight !== 1 ? ` weight ${e.weight}` : ''}`) : [],
          };
          if (c) { out.lb = c.policy.lb.kind; out.connectionPool = c.policy.pool; out.outlierDetection = c.policy.outlier ?? 'off'; }
          const mtls = c ? explainMtls(c) : [];
          if (mtls.length > 0) out.mtls = mtls;
          if (d.failStatus !== undefined) { out.failStatus = d.failStatus; out.host = '(unresolved backendRef)'; }
          return out;
        });
        const missing = base.destinations.filter((d) => !d.cluster);
        const failing = a.destinations.filter((d) => d.failStatus !== undefined);
        base.outcome = failing.length === a.destinations.length
          ? `${failing[0]!.failStatus} (flag ${E.backendRefInvalid.flag}): no backendRef of the rule could be resolved (see the route's ResolvedRefs condition)`
          : missing.length === base.destinations.length
          ? `${E.noCluster.status} (flag ${E.noCluster.flag}): no cluster for ${missing.map((m) => `${m.host}${m.subset ? ` subset ${m.subset}` : ''} port ${m.port}`).join(', ')}`
          : `forwarded to ${base.destinations.map((d) => `${d.failStatus !== undefined ? `answered ${d.failStatus}` : d.cluster ?? E.noCluster.flag} (${d.share})`).join(', ')}`;
      }
      return base;
    }
    const rank = routeReason(r);
    base.routes.push({ name: r.name, origin: r.origin, matched: false, why: r.matches.map((m, i) => `match[${i}] (${describeMatch(m)}): ${explainMatch(m, view).join('; ')}`), ...(rank !== undefined ? { rank } : {}) });
  }
  base.outcome = '404 (flag NR): no route matched';
  return base;
}

/**
 * For a sidecar with a workload certificate: which endpoints of `c` get Istio mTLS (ISTIO_MUTUAL, or auto mTLS to
 * an endpoint labelled security.istio.io/tlsMode=istio) and the identity each must present (serverIdentities,
 * written with the trust domain as <td>), or that none is known and its connections are refused.
 */
function explainMtls(c: ClusterDef): string[] {
  const p = c.policy;
  const out: string[] = [];
  for (const ep of c.endpoints) {
    const why = p.tlsMode === 'ISTIO_MUTUAL' ? 'ISTIO_MUTUAL' : p.tlsAuto === true && ep.labels['security.istio.io/tlsMode'] === 'istio' ? 'auto mTLS' : undefined;
    if (why === undefined) continue;
    const ids = serverIdentities(p.subjectAltNames, c.serviceSubjectAltNames, ep.identity, '<td>', new Set(['<td>']));
    out.push(ids.length > 0
      ? `${ep.key}: ${why}, the server must present ${ids.join(' or ')}`
      : `${ep.key}: ${why}, no identity is known for it: refused (503 UF); set subjectAltNames or the endpoint's serviceAccount`);
  }
  return out;
}

/** A duration in ms as a person writes it: `200ms`, `1s`, `1.5s`. */
function duration(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${ms / 1000}s`;
}

/**
 * A compiled retry policy as one line, e.g. `2 attempts (3 tries at most) on connect-failure, refused-stream, 503,
 * gRPC cancelled/unavailable; per try: no timeout; other hosts preferred` (Istio's default), or `off`. Conditions
 * use Istio's `retryOn` tokens; the backoff appears only when it is not Envoy's default (25 ms base, 250 ms cap).
 */
export function describeRetries(p: RetryPolicy): string {
  if (p.attempts <= 0) return 'off';
  const r = p.retryOn;
  const on = [
    r.fiveXx && '5xx', r.gatewayError && 'gateway-error', r.reset && 'reset', r.connectFailure && 'connect-failure',
    r.refusedStream && 'refused-stream', r.retriable4xx && 'retriable-4xx', ...r.statusCodes.map(String),
    r.grpc.length > 0 && `gRPC ${r.grpc.join('/')}`,
  ].filter((x): x is string => typeof x === 'string');
  const parts = [
    `${p.attempts} attempt${p.attempts === 1 ? '' : 's'} (${p.attempts + 1} tries at most) on ${on.length > 0 ? on.join(', ') : 'no condition (nothing in retryOn applies here)'}`,
    `per try: ${p.perTryTimeoutMs > 0 ? duration(p.perTryTimeoutMs) : 'no timeout'}`,
    p.retryIgnorePreviousHosts ? 'other hosts preferred' : 'the same host may be retried',
  ];
  if (p.backoffBaseMs !== DEFAULT_BACKOFF_BASE_MS || p.backoffMaxMs !== 10 * DEFAULT_BACKOFF_BASE_MS) {
    parts.push(`backoff ${duration(p.backoffBaseMs)} (up to ${duration(p.backoffMaxMs)})`);
  }
  if (p.retryRemoteLocalities) parts.push('retryRemoteLocalities not applied');
  return parts.join('; ');
}

export function formatExplanation(e: Explanation): string {
  const out: string[] = [];
  out.push(`request:  ${e.request.method} ${e.request.authority}${e.request.path}${e.request.query ? `?${e.request.query}` : ''} (port ${e.request.port}), config version ${e.configVersion}`);
  out.push(`host:     ${e.host.name} → ${e.host.matched ?? '(not in registry)'}${e.host.virtualService ? ` via ${e.host.virtualService}` : ''}${e.host.gatewayRoutes ? ` via ${e.host.gatewayRoutes}` : ''}${e.host.service ? ` [service from ${e.host.service}]` : ''}`);
  for (const r of e.routes) {
    if (r.matched) out.push(`route:    ✔ ${r.name} (${r.origin}) matched on ${r.match}`);
    else {
      out.push(`route:    ✘ ${r.name} (${r.origin}) did not match:`);
      for (const w of r.why) out.push(`            ${w}`);
    }
    if (r.rank !== undefined) out.push(`            (${r.rank})`);
  }
  if (e.destinations) {
    for (const d of e.destinations) {
      if (d.failStatus !== undefined) {
        out.push(`dest:     ${d.host}: weight ${d.weight} (${d.share}) → answered ${d.failStatus} (Gateway API: an invalid backend's share fails)`);
        continue;
      }
      out.push(`dest:     ${d.host}${d.subset ? ` subset ${d.subset}` : ''} port ${d.port}: weight ${d.weight} (${d.share}) → ${d.cluster ?? 'NO CLUSTER (503 NC)'}`);
      if (d.cluster) {
        out.push(`          lb ${d.lb}; outlier detection ${typeof d.outlierDetection === 'string' ? d.outlierDetection : JSON.stringify(d.outlierDetection)}`);
        out.push(`          endpoints: ${d.endpoints.length ? d.endpoints.join(', ') : '(none → 503 UH)'}`);
        for (const m of d.mtls ?? []) out.push(`          mTLS ${m}`);
      }
    }
  }
  if (e.timeout) out.push(`timeout:  ${e.timeout}`);
  if (e.retries) out.push(`retries:  ${describeRetries(e.retries)}`);
  if (e.fault) out.push(`fault:    ${JSON.stringify(e.fault)}`);
  if (e.rewrite) out.push(`rewrite:  ${JSON.stringify(e.rewrite)}`);
  if (e.mirrors) out.push(`mirrors:  ${e.mirrors.join(', ')}`);
  out.push(`outcome:  ${e.outcome}`);
  return `${out.join('\n')}\n`;
}
