/**
 * VirtualService rules of Istio's validation (istio/istio pkg/config/validation: validateVirtualService and the
 * HTTP/TLS/TCP route checks), one resource alone; what it shares with others (subsets, delegates, hosts claimed
 * twice) is checked in cross-checks.ts. Pure.
 */
import type { FieldPath } from '../resource.js';
import { parseRetryOn } from '../../proxy/retry-policy.js';
import { hostCovers, hostsOverlap, isDns1123Label, isIpAddress, validateIpOrCidr, validateWildcardDomain } from '../hosts.js';
import {
  CORS_METHODS, GRPC_STATUS, JWT_CLAIM_PREFIX, KNOWN_STATUS, PSEUDO_HEADERS, REDIRECT_CODES, TCHAR_TOKEN, Reporter, checkExportTo,
  checkGatewayNames, checkHeaderBound, checkHeaderValue, checkLabels, checkPercentage, checkPort, checkRegex, durationMsOf, has,
  hostReason, listOf, numOf, objOf, strOf, type Obj,
} from './common.js';

function checkStringMatch(rep: Reporter, sm: unknown, path: FieldPath, emptyPrefixOk: boolean): void {
  const o = objOf(sm);
  if (!o) return;
  if (typeof o.prefix === 'string' && o.prefix === '' && !emptyPrefixOk) rep.error([...path, 'prefix'], 'prefix string match should not be empty');
  if (typeof o.regex === 'string') {
    if (o.regex === '') rep.error([...path, 'regex'], 'regex string match should not be empty');
    else rep.check([...path, 'regex'], checkRegex(o.regex));
  }
}

function checkMatchHeaderName(rep: Reporter, name: string, path: FieldPath, appliesToGateway: boolean): void {
  if (name === '') return rep.error(path, 'header name cannot be empty');
  if (name.startsWith(JWT_CLAIM_PREFIX)) {
    if (!appliesToGateway) rep.error(path, `JWT claim based routing (key: ${name}) is only supported for gateway`);
    return;
  }
  if (PSEUDO_HEADERS.has(name)) return;
  if (!TCHAR_TOKEN.test(name)) return rep.error(path, `header name ${name} is not a valid header name`);
  // Istio accepts upper case here (Envoy lowercases names before matching); its API asks for lowercase.
  if (name !== name.toLowerCase()) rep.warn(path, `header names are matched case-insensitively; write "${name.toLowerCase()}" (the Istio API expects lowercase names)`);
}

function checkHeaderOps(rep: Reporter, headers: unknown, path: FieldPath): void {
  const h = objOf(headers);
  if (!h) return;
  for (const side of ['request', 'response'] as const) {
    const ops = objOf(h[side]);
    if (!ops) continue;
    for (const op of ['set', 'add'] as const) {
      for (const [name, value] of Object.entries(objOf(ops[op]) ?? {})) {
        const p = [...path, side, op, name];
        const authority = side === 'request' && (name.toLowerCase() === 'host' || name.toLowerCase() === ':authority');
        if (name === '') rep.error(p, 'header name cannot be empty');
        else if (name.startsWith(':') && !authority) rep.error(p, `invalid header "${name}": header cannot have ":" prefix`);
        else if (side === 'response' && name.toLowerCase() === 'host') rep.error(p, `invalid header "${name}": cannot set Host header`);
        else if (!authority && !TCHAR_TOKEN.test(name)) rep.error(p, `"${name}" is not a valid HTTP header name`);
        if (typeof value === 'string') rep.check(p, checkHeaderValue(value));
      }
    }
    listOf(ops.remove).forEach((name, i) => {
      if (typeof name !== 'string') return;
      const p = [...path, side, 'remove', i];
      if (name === '') rep.error(p, 'header name cannot be empty');
      else if (name.toLowerCase() === 'host') rep.error(p, `invalid header "${name}": cannot set Host header`);
      else if (name.startsWith(':')) rep.error(p, `invalid header "${name}": header cannot have ":" prefix`);
      else if (!TCHAR_TOKEN.test(name)) rep.error(p, `"${name}" is not a valid HTTP header name`);
    });
  }
}

function checkDestination(rep: Reporter, d: unknown, path: FieldPath): void {
  const o = objOf(d);
  if (!o) return;
  const host = strOf(o.host);
  if (host !== undefined) {
    if (host === '*') rep.error([...path, 'host'], `invalid destination host ${host}`);
    else rep.check([...path, 'host'], hostReason(host));
  }
  const subset = strOf(o.subset);
  if (subset !== undefined) {
    if (subset === '') rep.error([...path, 'subset'], 'subset name cannot be empty');
    else if (!isDns1123Label(subset)) rep.error([...path, 'subset'], `subset name is invalid: ${subset}`);
  }
  const port = objOf(o.port);
  if (port) checkPort(rep, port.number, [...path, 'port', 'number']);
}

function checkRouteDestinations(rep: Reporter, route: unknown, path: FieldPath, http: boolean): void {
  const list = listOf(route);
  let total = 0;
  list.forEach((rd, i) => {
    const o = objOf(rd);
    if (!o) return;
    const p = [...path, i];
    checkDestination(rep, o.destination, [...p, 'destination']);
    if (http && o.headers !== undefined) checkHeaderOps(rep, o.headers, [...p, 'headers']);
    const w = numOf(o.weight);
    if (w !== undefined && w < 0) rep.error([...p, 'weight'], `weight ${w} < 0`);
    total += w !== undefined && w > 0 ? w : 0;
  });
  // Weights are relative (Istio ≥ 1.x does not require a sum of 100); only an all-zero split is rejected.
  if (list.length > 1 && total === 0) rep.error(path, 'total destination weight = 0');
}

function checkHttpRoute(rep: Reporter, http: Obj, path: FieldPath, ctx: { isDelegateVs: boolean; appliesToGateway: boolean }): void {
  const isRoot = !ctx.isDelegateVs && has(http, 'delegate');
  const routes = listOf(http.route);
  // --- conflicts (validateHTTPRouteConflict) ---
  if (isRoot) {
    if (has(http, 'redirect')) rep.error([...path, 'redirect'], `root HTTP route ${strOf(http.name) ?? ''} must not specify redirect`.replace('  ', ' '));
    if (has(http, 'route')) rep.error([...path, 'route'], `root HTTP route ${strOf(http.name) ?? ''} must not specify route`.replace('  ', ' '));
    const d = objOf(http.delegate);
    const name = strOf(d?.name);
    // Whether the delegate exists is a cross-check (cross-checks.ts, vsFacts).
    if (!name) rep.error([...path, 'delegate', 'name'], 'delegate name is required');
  } else {
    if (ctx.isDelegateVs && has(http, 'delegate')) rep.error([...path, 'delegate'], 'delegate HTTP route cannot contain delegate');
    if (has(http, 'redirect')) {
      if (routes.length > 0) rep.error([...path, 'redirect'], 'HTTP route cannot contain both route and redirect');
      if (has(http, 'fault')) rep.error([...path, 'fault'], 'HTTP route cannot contain both fault and redirect');
      if (has(http, 'rewrite')) rep.error([...path, 'rewrite'], 'HTTP route rule cannot contain both rewrite and redirect');
      if (has(http, 'directResponse')) rep.error([...path, 'directResponse'], 'HTTP route rule cannot contain both direct_response and redirect');
    } else if (has(http, 'directResponse')) {
      if (routes.length > 0) rep.error([...path, 'directResponse'], 'HTTP route cannot contain both route and direct_response');
      if (has(http, 'fault')) rep.error([...path, 'fault'], 'HTTP route cannot contain both fault and direct_response');
      if (has(http, 'rewrite')) rep.error([...path, 'rewrite'], 'HTTP route rule cannot contain both rewrite and direct_response');
    } else if (routes.length === 0) {
      rep.error(path, 'HTTP route, redirect or direct_response is required');
    }
  }
  if (has(http, 'mirror') && listOf(http.mirrors).length > 0) rep.error([...path, 'mirrors'], 'HTTP route cannot contain both mirror and mirrors');

  // --- match ---
  listOf(http.match).forEach((m, j) => {
    const o = objOf(m);
    if (!o) return;
    const p = [...path, 'match', j];
    for (const [name, sm] of Object.entries(objOf(o.headers) ?? {})) {
      checkMatchHeaderName(rep, name, [...p, 'headers', name], ctx.appliesToGateway);
      checkStringMatch(rep, sm, [...p, 'headers', name], false);
    }
    for (const [name, sm] of Object.entries(objOf(o.withoutHeaders) ?? {})) {
      checkMatchHeaderName(rep, name, [...p, 'withoutHeaders', name], ctx.appliesToGateway);
      // `regex: "*"` is Istio's spelling of "present", not an RE2 regex.
      if (strOf(objOf(sm)?.regex) !== '*') checkStringMatch(rep, sm, [...p, 'withoutHeaders', name], false);
    }
    // Envoy allows an empty uri prefix, but not an empty scheme/method/authority/query prefix.
    // Absent fields are skipped before their field paths are built: at 10,000 routes the paths are most of the garbage.
    if (o.uri !== undefined) checkStringMatch(rep, o.uri, [...p, 'uri'], true);
    if (o.scheme !== undefined) checkStringMatch(rep, o.scheme, [...p, 'scheme'], false);
    if (o.method !== undefined) checkStringMatch(rep, o.method, [...p, 'method'], false);
    if (o.authority !== undefined) checkStringMatch(rep, o.authority, [...p, 'authority'], false);
    for (const [name, sm] of Object.entries(objOf(o.queryParams) ?? {})) checkStringMatch(rep, sm, [...p, 'queryParams', name], false);
    const port = numOf(o.port);
    if (port !== undefined && port !== 0) checkPort(rep, port, [...p, 'port']);
    if (o.sourceLabels !== undefined) checkLabels(rep, o.sourceLabels, [...p, 'sourceLabels']);
    if (o.gateways !== undefined) checkGatewayNames(rep, o.gateways, [...p, 'gateways']);
    const sns = strOf(o.sourceNamespace);
    if (sns && !isDns1123Label(sns)) rep.error([...p, 'sourceNamespace'], `sourceNamespace match ${sns} is invalid`);
  });

  // --- header manipulation ---
  if (http.headers !== undefined) checkHeaderOps(rep, http.headers, [...path, 'headers']);
  const rewriteAuthority = strOf(objOf(http.rewrite)?.authority);
  const req = objOf(objOf(http.headers)?.request);
  let authoritySet = rewriteAuthority ? 1 : 0;
  for (const op of ['set', 'add'] as const) {
    for (const name of Object.keys(objOf(req?.[op]) ?? {})) {
      const lower = name.toLowerCase();
      if (lower !== 'host' && lower !== ':authority') continue;
      authoritySet++;
      if (authoritySet > 1) rep.error([...path, 'headers', 'request', op, name], 'authority header cannot be set multiple times (rewrite.authority and headers, or host and :authority)');
    }
  }

  // --- CORS ---
  const cors = objOf(http.corsPolicy);
  if (cors) {
    const cp = [...path, 'corsPolicy'];
    listOf(cors.allowOrigins).forEach((sm, i) => {
      const o = objOf(sm);
      if (!o) return;
      const v = strOf(o.exact) ?? strOf(o.prefix) ?? strOf(o.regex);
      if (!v) rep.error([...cp, 'allowOrigins', i], `'${v ?? ''}' is not a valid match type for CORS allow origins`);
      else checkStringMatch(rep, o, [...cp, 'allowOrigins', i], true);
    });
    listOf(cors.allowMethods).forEach((m, i) => {
      if (typeof m === 'string' && !CORS_METHODS.has(m)) rep.error([...cp, 'allowMethods', i], `"${m}" is not a supported HTTP method`);
    });
    for (const key of ['allowHeaders', 'exposeHeaders'] as const) {
      listOf(cors[key]).forEach((h, i) => {
        if (typeof h !== 'string') return;
        if (h === '') rep.error([...cp, key, i], 'header name cannot be empty');
        else if (h !== '*' && !TCHAR_TOKEN.test(h)) rep.error([...cp, key, i], `header name ${h} is not a valid header name`);
      });
    }
    const maxAge = durationMsOf(cors.maxAge);
    if (maxAge !== undefined && maxAge >= 1 && maxAge % 1000 !== 0) rep.error([...cp, 'maxAge'], 'max_age duration is accurate only to seconds precision');
  }

  // --- fault ---
  const fault = objOf(http.fault);
  if (fault) {
    const fp = [...path, 'fault'];
    if (!has(fault, 'abort') && !has(fault, 'delay')) rep.error(fp, 'HTTP fault injection must have an abort and/or a delay');
    const abort = objOf(fault.abort);
    if (abort) {
      checkPercentage(rep, abort.percentage, [...fp, 'abort', 'percentage']);
      const status = numOf(abort.httpStatus);
      if (has(abort, 'grpcStatus')) {
        const g = strOf(abort.grpcStatus);
        if (g !== undefined && !GRPC_STATUS.has(g)) rep.error([...fp, 'abort', 'grpcStatus'], `gRPC status "${g}" is not supported; use a name such as NOT_FOUND or UNAVAILABLE`);
      } else if (has(abort, 'http2Error')) {
        rep.error([...fp, 'abort', 'http2Error'], 'HTTP/2 abort fault injection not supported yet');
      } else if (status !== undefined) {
        if (status < 200 || status > 599) rep.error([...fp, 'abort', 'httpStatus'], `HTTP status ${status} is not in range 200-599`);
      } else if (!has(abort, 'httpStatus')) {
        rep.warn([...fp, 'abort'], 'abort configured, but error type not set');
      }
    }
    const delay = objOf(fault.delay);
    if (delay) {
      checkPercentage(rep, delay.percentage, [...fp, 'delay', 'percentage']);
      const pct = numOf(delay.percent);
      if (pct !== undefined && (pct < 0 || pct > 100)) rep.error([...fp, 'delay', 'percent'], `percentage ${pct} is not in range 0..100`);
      if (has(delay, 'exponentialDelay')) rep.error([...fp, 'delay', 'exponentialDelay'], 'exponentialDelay not supported yet');
      else if (!has(delay, 'fixedDelay')) rep.error([...fp, 'delay', 'fixedDelay'], 'delay requires fixedDelay');
    }
  }

  // --- mirroring ---
  const mirrorPercent = numOf(http.mirrorPercent) ?? numOf(http.mirror_percent);
  if (mirrorPercent !== undefined && mirrorPercent > 100) {
    rep.error([...path, has(http, 'mirrorPercent') ? 'mirrorPercent' : 'mirror_percent'], `mirror_percent must have a max value of 100 (it has ${mirrorPercent})`);
  }
  const mp = numOf(objOf(http.mirrorPercentage)?.value);
  if (mp !== undefined && (mp < 0 || mp > 100)) rep.error([...path, 'mirrorPercentage', 'value'], `mirror_percentage must be in range 0..100 (it has ${mp})`);
  if (http.mirror !== undefined) checkDestination(rep, http.mirror, [...path, 'mirror']);
  listOf(http.mirrors).forEach((m, i) => {
    const o = objOf(m);
    if (!o) return;
    checkDestination(rep, o.destination, [...path, 'mirrors', i, 'destination']);
    const v = numOf(objOf(o.percentage)?.value);
    if (v !== undefined && (v < 0 || v > 100)) rep.error([...path, 'mirrors', i, 'percentage', 'value'], `mirror percentage must be in range 0..100 (it has ${v})`);
  });

  // --- redirect ---
  const redirect = objOf(http.redirect);
  if (redirect) {
    const rp = [...path, 'redirect'];
    if (!strOf(redirect.uri) && !strOf(redirect.authority) && !has(redirect, 'port') && !has(redirect, 'derivePort') && !strOf(redirect.scheme)) {
      rep.error(rp, 'redirect must specify URI, authority, scheme, or port');
    }
    const code = numOf(redirect.redirectCode);
    if (code !== undefined && code !== 0 && !REDIRECT_CODES.has(code)) {
      rep.error([...rp, 'redirectCode'], `${code} is not a supported redirect code: use 301, 302, 303, 307 or 308 (Envoy cannot send other codes)`);
    }
    const scheme = strOf(redirect.scheme);
    if (scheme && scheme !== 'http' && scheme !== 'https') rep.error([...rp, 'scheme'], 'invalid redirect scheme, must be "http" or "https"');
    checkHeaderBound(rep, redirect.uri, [...rp, 'uri'], 'redirect uri (sent in Location)');
    checkHeaderBound(rep, redirect.authority, [...rp, 'authority'], 'redirect authority (sent in Location)');
    const port = numOf(redirect.port);
    if (port !== undefined && port > 0) checkPort(rep, port, [...rp, 'port']);
  }

  // --- direct response ---
  const dr = objOf(http.directResponse);
  if (dr) {
    const status = numOf(dr.status);
    if (status !== undefined && (status < 200 || status > 599)) rep.error([...path, 'directResponse', 'status'], `HTTP status ${status} is not in range 200-599`);
    const body = objOf(dr.body);
    const bodyStr = strOf(body?.string);
    const bodyBytes = strOf(body?.bytes);
    const size = bodyStr !== undefined ? Buffer.byteLength(bodyStr) : bodyBytes !== undefined ? Math.floor((bodyBytes.length * 3) / 4) : 0;
    if (size > 1024 * 1024) rep.error([...path, 'directResponse', 'body'], 'large direct_responses may impact control plane performance, must be less than 1MB');
    else if (size > 100 * 1024) rep.warn([...path, 'directResponse', 'body'], 'large direct_responses may impact control plane performance');
  }

  // --- retries ---
  const retries = objOf(http.retries);
  if (retries) {
    const rp = [...path, 'retries'];
    const attempts = numOf(retries.attempts) ?? 0;
    if (attempts < 0) rep.error([...rp, 'attempts'], 'attempts cannot be negative');
    if (attempts === 0 && (has(retries, 'perTryTimeout') || strOf(retries.retryOn) || has(retries, 'retryRemoteLocalities'))) {
      rep.error([...rp, 'attempts'], 'http retry policy configured when attempts are set to 0 (disabled)');
    }
    const retryOn = strOf(retries.retryOn);
    if (retryOn) {
      // The vocabulary is the runtime's (parseRetryOn); on top, Istio splits on "," without trimming and
      // accepts a number only if it is a status code Go knows, so " reset" and "599" are rejected.
      for (const token of retryOn.split(',')) {
        const asNum = /^[0-9]+$/.test(token) ? Number(token) : NaN;
        const known = Number.isNaN(asNum) ? token !== '' && token.trim() === token && !('error' in parseRetryOn(token)) : KNOWN_STATUS.has(asNum);
        if (!known) {
          const hint = token.trim() !== token && !('error' in parseRetryOn(token.trim())) ? ' (remove the spaces around commas)' : '';
          rep.error([...rp, 'retryOn'], `"${token}" is not a valid retryOn policy${hint}`);
        }
      }
    }
  }

  // --- rewrite ---
  const rewrite = objOf(http.rewrite);
  if (rewrite) {
    const rp = [...path, 'rewrite'];
    checkHeaderBound(rep, rewrite.uri, [...rp, 'uri'], 'rewrite uri (sent as the request path)');
    checkHeaderBound(rep, rewrite.authority, [...rp, 'authority'], 'rewrite authority (sent as Host)');
    const rr = objOf(rewrite.uriRegexRewrite);
    if (strOf(rewrite.uri) && rr) rep.error([...rp, 'uriRegexRewrite'], 'rewrite may only contain one of URI or UriRegexRewrite');
    else if (!strOf(rewrite.uri) && !rr && !strOf(rewrite.authority)) rep.error(rp, 'rewrite must specify at least one of URI, UriRegexRewrite, or authority');
    if (rr) {
      const m = strOf(rr.match);
      if (!m || !strOf(rr.rewrite)) rep.error([...rp, 'uriRegexRewrite'], 'UriRegexRewrite requires both Rewrite and Match fields to be specified');
      if (m) rep.check([...rp, 'uriRegexRewrite', 'match'], checkRegex(m));
    }
  }

  checkRouteDestinations(rep, http.route, [...path, 'route'], true);
}

export function validateVirtualService(rep: Reporter, spec: Obj): void {
  const r = rep.r;
  const hosts = listOf(spec.hosts).filter((h): h is string => typeof h === 'string');
  const gateways = listOf(spec.gateways).filter((g): g is string => typeof g === 'string');
  const appliesToMesh = gateways.length === 0 || gateways.includes('mesh');
  const appliesToGateway = gateways.length > 0 && !gateways.includes('mesh');
  const isDelegateVs = hosts.length === 0;

  if (isDelegateVs) {
    // Only a delegate may omit hosts; whether something delegates to it is checked across resources.
    if (gateways.length) rep.error(['spec', 'gateways'], 'delegate virtual service must have no gateways specified');
    if (listOf(spec.tls).length) rep.error(['spec', 'tls'], 'delegate virtual service must have no tls route specified');
    if (listOf(spec.tcp).length) rep.error(['spec', 'tcp'], 'delegate virtual service must have no tcp route specified');
  } else {
    checkGatewayNames(rep, spec.gateways, ['spec', 'gateways']);
    if (appliesToGateway) rep.warn(['spec', 'gateways'], 'bound only to gateways (no "mesh"): not applied to sidecar traffic');
  }

  let allHostsValid = true;
  listOf(spec.hosts).forEach((h, i) => {
    if (typeof h !== 'string') return;
    const reason = hostReason(h);
    if (reason !== undefined) {
      if (!isIpAddress(h)) {
        rep.error(['spec', 'hosts', i], reason);
        allHostsValid = false;
      }
    } else if (appliesToMesh && h === '*') {
      rep.error(['spec', 'hosts', i], 'wildcard host * is not allowed for virtual services bound to the mesh gateway');
      allHostsValid = false;
    }
  });
  if (allHostsValid) {
    for (let i = 0; i < hosts.length; i++) {
      for (let j = i + 1; j < hosts.length; j++) {
        if (hostsOverlap(hosts[i]!.toLowerCase(), hosts[j]!.toLowerCase())) rep.error(['spec', 'hosts', j], `duplicate hosts in virtual service: ${hosts[i]} & ${hosts[j]}`);
      }
    }
  }

  const http = listOf(spec.http);
  if (http.length === 0 && listOf(spec.tcp).length === 0 && listOf(spec.tls).length === 0) rep.error(['spec'], 'http, tcp or tls must be provided in virtual service');
  http.forEach((route, i) => {
    const o = objOf(route);
    if (o) checkHttpRoute(rep, o, ['spec', 'http', i], { isDelegateVs, appliesToGateway });
  });
  listOf(spec.tls).forEach((t, i) => {
    const o = objOf(t);
    if (!o) return;
    const p = ['spec', 'tls', i];
    if (listOf(o.match).length === 0) rep.error([...p, 'match'], 'TLS route must have at least one match condition');
    listOf(o.match).forEach((m, j) => {
      const mo = objOf(m);
      if (!mo) return;
      listOf(mo.sniHosts).forEach((s, k) => {
        if (typeof s !== 'string') return;
        const reason = validateWildcardDomain(s);
        if (reason && isIpAddress(s)) rep.warn([...p, 'match', j, 'sniHosts', k], `using an IP address ("${s}") goes against SNI spec and most clients do not support this`);
        else if (reason) rep.error([...p, 'match', j, 'sniHosts', k], reason);
        else if (!hosts.some((h) => hostCovers(h.toLowerCase(), s.toLowerCase()))) {
          rep.error([...p, 'match', j, 'sniHosts', k], `SNI host "${s}" is not a compatible subset of any of the virtual service hosts: [${hosts.join(', ')}]`);
        }
      });
      listOf(mo.destinationSubnets).forEach((s, k) => typeof s === 'string' && rep.check([...p, 'match', j, 'destinationSubnets', k], validateIpOrCidr(s)));
      const port = numOf(mo.port);
      if (port) checkPort(rep, port, [...p, 'match', j, 'port']);
      checkLabels(rep, mo.sourceLabels, [...p, 'match', j, 'sourceLabels']);
      checkGatewayNames(rep, mo.gateways, [...p, 'match', j, 'gateways']);
    });
    if (listOf(o.route).length === 0) rep.error([...p, 'route'], 'TLS route is required');
    checkRouteDestinations(rep, o.route, [...p, 'route'], false);
  });
  listOf(spec.tcp).forEach((t, i) => {
    const o = objOf(t);
    if (!o) return;
    const p = ['spec', 'tcp', i];
    listOf(o.match).forEach((m, j) => {
      const mo = objOf(m);
      if (!mo) return;
      listOf(mo.destinationSubnets).forEach((s, k) => typeof s === 'string' && rep.check([...p, 'match', j, 'destinationSubnets', k], validateIpOrCidr(s)));
      const port = numOf(mo.port);
      if (port) checkPort(rep, port, [...p, 'match', j, 'port']);
      checkLabels(rep, mo.sourceLabels, [...p, 'match', j, 'sourceLabels']);
      checkGatewayNames(rep, mo.gateways, [...p, 'match', j, 'gateways']);
    });
    if (listOf(o.route).length === 0) rep.error([...p, 'route'], 'TCP route is required');
    checkRouteDestinations(rep, o.route, [...p, 'route'], false);
  });
  checkExportTo(rep, spec.exportTo, ['spec', 'exportTo'], r.metadata.namespace, false);
}
