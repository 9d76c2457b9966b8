/**
 * `remora validate` semantics: every problem in a set of resources, each at its field and line. A structural
 * pass (schema.ts: what the Kubernetes API server would reject), then the rules of Istio's own validation
 * (istio/istio pkg/config/validation), then cross-resource references (subsets, delegates, duplicates).
 */
import { errorAt, type ConfigError, type FieldPath, type Resource } from '../../../src/config/resource.js';
import { ISTIO_API_VERSIONS, ISTIO_KINDS, type IstioKind } from '../../../src/config/types.js';
import { OBJECT_SCHEMA, SPEC_SCHEMAS, checkSchema, type SchemaIssue } from '../../../src/config/schema.js';
import { parseDurationMs } from '../../../src/config/duration.js';
import { parseRetryOn } from '../../../src/proxy/retry-policy.js';
import {
  DEFAULT_CLUSTER_DOMAIN, expandHost, hostCovers, hostsOverlap, isDns1123Label, isIpAddress, isK8sName, isK8sNamespace,
  validateFqdn, validateIpOrCidr, validateWildcardDomain,
} from '../../../src/config/hosts.js';
import { isAuthzKind, validateAuthzResource } from '../../../src/authz/validate-authz.js';
import { identityWarnings } from './identity-check-v1.js';
import { isSecretName } from '../../../src/security/credential-name.js';
import { validateGatewayRoute } from '../../../src/gateway/validate.js';
import { isGatewayRoute } from '../../../src/gateway/types.js';
import { isKubernetesRegistryKind, validateKubernetesObject } from '../../../src/gateway/k8s-validate.js';

export interface ValidateOptions {
  /** Kubernetes cluster domain used to expand short host names (`--cluster-domain`); default `cluster.local`. */
  clusterDomain?: string;
}


type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const objOf = (v: unknown): Obj | undefined => (isObj(v) ? v : undefined);
const listOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const strOf = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const numOf = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const has = (o: Obj | undefined, k: string): boolean => o !== undefined && o[k] !== undefined && o[k] !== null;

/** Collects the problems of one resource. */
class Reporter {
  constructor(readonly r: Resource, private readonly out: ConfigError[]) {}
  error(path: FieldPath, message: string): void {
    this.out.push(errorAt(this.r, path, message));
  }
  warn(path: FieldPath, message: string): void {
    this.out.push(errorAt(this.r, path, message, 'warning'));
  }
  /** Report `message` if it is defined (helpers return a reason or undefined). */
  check(path: FieldPath, message: string | undefined): void {
    if (message !== undefined) this.error(path, message);
  }
}

// === Shared value rules ===

const TCHAR_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PSEUDO_HEADERS = new Set([':method', ':scheme', ':authority', ':path', ':status']);
const JWT_CLAIM_PREFIX = '@request.auth.claims';
const LABEL_KEY = /^(?:([a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*)\/)?((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;
const LABEL_VALUE = /^(?:(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Status codes Go's net/http knows (Istio accepts a numeric retryOn token only if http.StatusText is non-empty). */
const KNOWN_STATUS = new Set([
  100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308,
  400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423, 424,
  425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);
const GRPC_STATUS = new Set([
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE',
  'DATA_LOSS', 'UNAUTHENTICATED',
]);
const CORS_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', '*']);
/** Redirect codes Envoy can produce (RedirectResponseCode); Istio accepts any 3xx but drops the others. */
const REDIRECT_CODES = new Set([301, 302, 303, 307, 308]);
/** Port protocols Istio's protocol.Parse knows (case-insensitive). */
const PROTOCOLS = new Set(['HTTP', 'HTTPS', 'HTTP2', 'HTTP_PROXY', 'GRPC', 'GRPC-WEB', 'MONGO', 'REDIS', 'MYSQL', 'TCP', 'TLS', 'UDP']);
const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'HTTP_PROXY', 'GRPC', 'GRPC-WEB']);
const TLS_PROTOCOLS = new Set(['HTTPS', 'TLS']);
/** Envoy's maximum ring size for ring-hash (`maximum_ring_size` upper bound, 8M). */
const MAX_RING_SIZE = 8_388_608;

/**
 * Whether an RE2 pattern is usable: RE2 syntax that JavaScript compiles with the same meaning, as
 * `^(?:pattern)$` (the full match the router compiles). Returns the reason when it is not.
 */
export function checkRegex(pattern: string): string | undefined {
  // Istio approximates Envoy's re2.max_program_size by length.
  if (pattern.length > 1024) return 'regex is too large, max length allowed is 1024';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      const n = pattern[i + 1] ?? '';
      if (!inClass && /[1-9]/.test(n)) return `backreference "\\${n}" is not supported (Istio uses RE2 regexes, which have no backreferences)`;
      if (n === 'k' && pattern[i + 2] === '<') return 'named backreferences are not supported (Istio uses RE2 regexes)';
      // RE2 escapes that JavaScript would silently read as literal letters.
      if ('AzQEpPC'.includes(n)) return `the RE2 escape "\\${n}" is not supported by Remora yet`;
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      else if (c === '[' && pattern[i + 1] === ':') return 'POSIX classes like [[:alpha:]] are not supported by Remora yet';
      continue;
    }
    if (c === '[') {
      inClass = true;
      if (pattern[i + 1] === '^') i++;
      if (pattern[i + 1] === ']') i++;
      continue;
    }
    if (c === '(' && pattern[i + 1] === '?') {
      const a = pattern[i + 2];
      const b = pattern[i + 3];
      if (a === '=' || a === '!') return 'lookahead assertions are not supported (Istio uses RE2 regexes)';
      if (a === '<' && (b === '=' || b === '!')) return 'lookbehind assertions are not supported (Istio uses RE2 regexes)';
      if (a === 'P' && b === '<') return 'named groups in the (?P<name>...) form are not supported by Remora yet; write (?<name>...)';
      if (a !== undefined && /[imsU-]/.test(a)) return 'inline flags such as (?i) are not supported by Remora yet';
    }
  }
  try {
    new RegExp(`^(?:${pattern})$`);
  } catch (err) {
    return `invalid regex: ${(err as Error).message.replace(/^Invalid regular expression: /, '')}`;
  }
  return undefined;
}

/** A config string that ends up in a header (Location, Host, :path, Set-Cookie): no control byte may split it. */
function checkHeaderBound(rep: Reporter, v: unknown, path: FieldPath, what: string): void {
  // eslint-disable-next-line no-control-regex
  if (typeof v === 'string' && /[\x00-\x1F\x7F]/.test(v)) rep.error(path, `${what} must not contain control characters (CR, LF, NUL ...)`);
}

/** Envoy header value: no control characters but tab, and `%` only as `%%` or a `%VARIABLE%` substitution. */

function checkHeaderValue(v: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0A-\x1F\x7F]/.test(v)) return 'header value must not contain control characters (CR, LF, NUL ...)';
  for (let i = 0; i < v.length; i++) {
    if (v[i] !== '%') continue;
    if (v[i + 1] === '%') {
      i++;
      continue;
    }
    const j = v.indexOf('%', i + 1);
    const name = j < 0 ? '' : v.slice(i + 1, j);
    if (j < 0 || !/^[A-Z][A-Z0-9_]*(?:\(.*\))?(?::[0-9]+)?$/.test(name)) {
      return `invalid "%" in header value ${JSON.stringify(v)}: write "%%" for a literal percent sign, or %VARIABLE% for a substitution`;
    }
    i = j;
  }
  return undefined;
}

function checkLabels(rep: Reporter, labels: unknown, path: FieldPath): void {
  const o = objOf(labels);
  if (!o) return;
  for (const [k, v] of Object.entries(o)) {
    const m = LABEL_KEY.exec(k);
    if (!m || (m[1] !== undefined && m[1].length > 253) || (m[2] ?? '').length > 63) rep.error([...path, k], `invalid label key "${k}"`);
    if (typeof v === 'string' && !LABEL_VALUE.test(v)) rep.error([...path, k], `invalid label value ${JSON.stringify(v)}`);
  }
}

function checkSelectorLabels(rep: Reporter, labels: unknown, path: FieldPath): void {
  const o = objOf(labels);
  if (!o) return;
  for (const [k, v] of Object.entries(o)) {
    if (k === '') rep.error([...path, k], 'empty key is not supported in selector');
    if (k.includes('*') || (typeof v === 'string' && v.includes('*'))) rep.error([...path, k], 'wildcard is not supported in selector');
  }
}

/** Istio percentage (`Percent.value`): 0, or within [0.0001, 100]. */
function checkPercentage(rep: Reporter, p: unknown, path: FieldPath): void {
  const v = numOf(objOf(p)?.value);
  if (v === undefined) return;
  if (v < 0 || v > 100 || (v > 0 && v < 0.0001)) rep.error([...path, 'value'], `percentage ${v} is neither 0.0, nor in range [0.0001, 100.0]`);
}

function checkPort(rep: Reporter, v: unknown, path: FieldPath): void {
  const n = numOf(v);
  if (n !== undefined && Number.isInteger(n) && (n < 1 || n > 65535)) rep.error(path, `port number ${n} must be in the range 1..65535`);
}

function checkExportTo(rep: Reporter, exportTo: unknown, path: FieldPath, namespace: string, isServiceEntry: boolean): void {
  const list = listOf(exportTo);
  const seen = new Set<string>();
  list.forEach((e, i) => {
    if (typeof e !== 'string') return;
    const key = e === '.' ? namespace : e;
    if (seen.has(key)) rep.error([...path, i], key !== e ? `duplicate entries in exportTo: . and current namespace ${namespace}` : `duplicate entries in exportTo for entry ${e}`);
    seen.add(key);
    if (e === '~' ? !isServiceEntry : e !== '.' && e !== '*' && !isK8sNamespace(e)) rep.error([...path, i], `invalid exportTo value "${e}": use ".", "*"${isServiceEntry ? ', "~"' : ''} or a namespace name`);
  });
  if (seen.has('*') && list.length > 1) rep.error(path, 'cannot have both public (*) and non-public exportTo values for a resource');
  if (seen.has('~') && list.length > 1) rep.error(path, 'cannot export service entry to no one (~) and someone');
}

function checkGatewayNames(rep: Reporter, gateways: unknown, path: FieldPath): void {
  listOf(gateways).forEach((g, i) => {
    if (typeof g !== 'string') return;
    const p = [...path, i];
    const slash = g.indexOf('/');
    if (slash < 0) {
      if (g.includes('.')) {
        const parts = g.split('.');
        rep.warn(p, `using legacy gatewayName format "${g}"; prefer the <namespace>/<name> format: "${parts[1]}/${parts[0]}"`);
      }
      rep.check(p, validateFqdn(g));
      return;
    }
    const ns = g.slice(0, slash);
    const name = g.slice(slash + 1);
    if (ns === '' || name === '') rep.error(p, 'config namespace and gateway name cannot be empty');
    else {
      if (!isDns1123Label(ns)) rep.error(p, `invalid value for namespace: "${ns}"`);
      if (!isDns1123Label(name)) rep.error(p, `invalid value for gateway name: "${name}"`);
    }
  });
}

/**
 * validateWildcardDomain, remembered for one validateResources run: a mesh names each host several times (the
 * ServiceEntry, the VirtualService, each destination), and 10,000 services make that 40,000 checks.
 */
let hostReasons: Map<string, string | undefined> | undefined;
function hostReason(host: string): string | undefined {
  if (hostReasons === undefined) return validateWildcardDomain(host);
  if (hostReasons.has(host)) return hostReasons.get(host);
  const reason = validateWildcardDomain(host);
  hostReasons.set(host, reason);
  return reason;
}

function durationMsOf(v: unknown): number | undefined {
  return typeof v === 'string' ? parseDurationMs(v) : undefined;
}

// === VirtualService ===

interface DestRef {
  r: Resource;
  /** Path of the `destination` object. */
  path: FieldPath;
  host: string;
  subset: string;
}

interface VsInfo {
  r: Resource;
  hosts: string[];
  appliesToMesh: boolean;
  delegates: Array<{ path: FieldPath; name: string; namespace: string }>;
  /** Whether some route has a `delegate` (a root VirtualService). */
  isRoot: boolean;
}

interface Collected {
  vs: VsInfo[];
  destRefs: DestRef[];
}

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

function checkDestination(rep: Reporter, d: unknown, path: FieldPath, refs: DestRef[]): void {
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
    else if (host) refs.push({ r: rep.r, path, host, subset });
  }
  const port = objOf(o.port);
  if (port) checkPort(rep, port.number, [...path, 'port', 'number']);
}

function checkRouteDestinations(rep: Reporter, route: unknown, path: FieldPath, refs: DestRef[], http: boolean): void {
  const list = listOf(route);
  let total = 0;
  list.forEach((rd, i) => {
    const o = objOf(rd);
    if (!o) return;
    const p = [...path, i];
    checkDestination(rep, o.destination, [...p, 'destination'], refs);
    if (http && o.headers !== undefined) checkHeaderOps(rep, o.headers, [...p, 'headers']);
    const w = numOf(o.weight);
    if (w !== undefined && w < 0) rep.error([...p, 'weight'], `weight ${w} < 0`);
    total += w !== undefined && w > 0 ? w : 0;
  });
  // Weights are relative (Istio ≥ 1.x does not require a sum of 100); only an all-zero split is rejected.
  if (list.length > 1 && total === 0) rep.error(path, 'total destination weight = 0');
}

function checkHttpRoute(rep: Reporter, http: Obj, path: FieldPath, ctx: { isDelegateVs: boolean; appliesToGateway: boolean }, refs: DestRef[], info: VsInfo): void {
  const isRoot = !ctx.isDelegateVs && has(http, 'delegate');
  const routes = listOf(http.route);
  // --- conflicts (validateHTTPRouteConflict) ---
  if (isRoot) {
    info.isRoot = true;
    if (has(http, 'redirect')) rep.error([...path, 'redirect'], `root HTTP route ${strOf(http.name) ?? ''} must not specify redirect`.replace('  ', ' '));
    if (has(http, 'route')) rep.error([...path, 'route'], `root HTTP route ${strOf(http.name) ?? ''} must not specify route`.replace('  ', ' '));
    const d = objOf(http.delegate);
    const name = strOf(d?.name);
    if (!name) rep.error([...path, 'delegate', 'name'], 'delegate name is required');
    else {
      const namespace = strOf(d?.namespace) || rep.r.metadata.namespace;
      info.delegates.push({ path: [...path, 'delegate'], name, namespace });
    }
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
  if (http.mirror !== undefined) checkDestination(rep, http.mirror, [...path, 'mirror'], refs);
  listOf(http.mirrors).forEach((m, i) => {
    const o = objOf(m);
    if (!o) return;
    checkDestination(rep, o.destination, [...path, 'mirrors', i, 'destination'], refs);
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

  checkRouteDestinations(rep, http.route, [...path, 'route'], refs, true);
}

function validateVirtualService(rep: Reporter, spec: Obj, col: Collected): void {
  const r = rep.r;
  const hosts = listOf(spec.hosts).filter((h): h is string => typeof h === 'string');
  const gateways = listOf(spec.gateways).filter((g): g is string => typeof g === 'string');
  const appliesToMesh = gateways.length === 0 || gateways.includes('mesh');
  const appliesToGateway = gateways.length > 0 && !gateways.includes('mesh');
  const info: VsInfo = { r, hosts: [], appliesToMesh, delegates: [], isRoot: false };
  const isDelegateVs = hosts.length === 0;
  // References of a gateway-only VirtualService are not checked: a sidecar never applies it.
  const refs: DestRef[] = [];

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
    info.hosts.push(h);
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
    if (o) checkHttpRoute(rep, o, ['spec', 'http', i], { isDelegateVs, appliesToGateway }, refs, info);
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
    checkRouteDestinations(rep, o.route, [...p, 'route'], refs, false);
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
    checkRouteDestinations(rep, o.route, [...p, 'route'], refs, false);
  });
  checkExportTo(rep, spec.exportTo, ['spec', 'exportTo'], r.metadata.namespace, false);
  if (appliesToMesh) col.destRefs.push(...refs);
  col.vs.push(info);
}

// === DestinationRule ===

function isPrime(x: number): boolean {
  // Envoy's check (source/common/common/utility.cc), which Istio copies.
  if (x !== 0 && x < 4) return true;
  if (x % 2 === 0) return false;
  for (let f = 3; f * f <= x; f += 2) if (x % f === 0) return false;
  return true;
}

function checkTls(rep: Reporter, tls: unknown, path: FieldPath): void {
  const t = objOf(tls);
  if (!t) return;
  const mode = strOf(t.mode);
  if (t.insecureSkipVerify === true) {
    if (mode === 'SIMPLE' && (strOf(t.caCertificates) || strOf(t.credentialName) || has(t, 'subjectAltNames'))) {
      rep.error([...path, 'insecureSkipVerify'], 'cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true');
    }
    if (mode === 'MUTUAL' && (strOf(t.caCertificates) || has(t, 'subjectAltNames'))) {
      rep.error([...path, 'insecureSkipVerify'], 'cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true');
    }
  }
  // A Secret's name, looked up under the credentials directory: never a path (no "/", no "..").
  const cred = strOf(t.credentialName);
  if (cred !== undefined && cred !== '' && !isSecretName(cred)) {
    rep.error([...path, 'credentialName'], `"${cred}" is not a Secret name (lowercase letters, digits, "-" and "."; no "/" and no "..")`);
  }
  if ((mode === 'SIMPLE' || mode === 'MUTUAL') && strOf(t.credentialName)) {
    if (strOf(t.clientCertificate) || strOf(t.caCertificates) || strOf(t.privateKey) || strOf(t.caCrl)) {
      rep.error([...path, 'credentialName'], 'cannot specify client certificates or CA certificate or CA CRL If credentialName is set');
    }
    return;
  }
  if (mode === 'MUTUAL') {
    if (!strOf(t.clientCertificate)) rep.error([...path, 'clientCertificate'], 'client certificate required for mutual tls');
    if (!strOf(t.privateKey)) rep.error([...path, 'privateKey'], 'private key required for mutual tls');
  }
}

function checkOutlierDetection(rep: Reporter, od: unknown, path: FieldPath): void {
  const o = objOf(od);
  if (!o) return;
  if (o.splitExternalLocalOriginErrors !== true && (numOf(o.consecutiveLocalOriginFailures) ?? 0) > 0) {
    rep.error([...path, 'consecutiveLocalOriginFailures'], 'outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false');
  }
  for (const k of ['maxEjectionPercent', 'minHealthPercent'] as const) {
    const v = numOf(o[k]);
    if (v !== undefined && (v < 0 || v > 100)) rep.error([...path, k], `percentage ${v} is not in range 0..100`);
  }
}

function checkConnectionPool(rep: Reporter, cp: unknown, path: FieldPath): void {
  const o = objOf(cp);
  if (!o) return;
  if (!has(o, 'http') && !has(o, 'tcp')) return rep.error(path, 'connection pool must have at least one field');
  const http = objOf(o.http);
  if (http) {
    const names: Record<string, string> = {
      http1MaxPendingRequests: 'http1 max pending requests', http2MaxRequests: 'http2 max requests',
      maxRequestsPerConnection: 'max requests per connection', maxRetries: 'max retries', maxConcurrentStreams: 'max concurrent streams',
    };
    for (const [k, label] of Object.entries(names)) {
      const v = numOf(http[k]);
      if (v !== undefined && v < 0) rep.error([...path, 'http', k], `${label} must be non-negative`);
    }
    if (http.h2UpgradePolicy === 'UPGRADE' && http.useClientProtocol === true) rep.error([...path, 'http', 'useClientProtocol'], 'use client protocol must not be true when H2UpgradePolicy is UPGRADE');
  }
  const tcp = objOf(o.tcp);
  if (tcp) {
    const v = numOf(tcp.maxConnections);
    if (v !== undefined && v < 0) rep.error([...path, 'tcp', 'maxConnections'], 'max connections must be non-negative');
    const idle = durationMsOf(tcp.idleTimeout);
    // "0s" disables the idle timeout; anything else follows the usual ≥ 1ms rule.
    if (idle !== undefined && idle !== 0 && idle < 1) rep.error([...path, 'tcp', 'idleTimeout'], 'duration must be greater than 1ms');
  }
}

function checkLocality(rep: Reporter, lb: unknown, path: FieldPath, outlier: unknown): void {
  const o = objOf(lb);
  if (!o) return;
  const distribute = listOf(o.distribute);
  const failover = listOf(o.failover);
  const priority = listOf(o.failoverPriority);
  if (distribute.length > 0 && failover.length > 0) return rep.error(path, "can not simultaneously specify 'distribute' and 'failover'");
  if (failover.length > 0) {
    for (const p of priority) {
      if (typeof p === 'string' && p.startsWith('topology.kubernetes.io/') || p === 'topology.istio.io/subzone') {
        return rep.error([...path, 'failoverPriority'], `can not simultaneously set 'failover' and topology label '${String(p)}' in 'failover_priority'`);
      }
    }
  }
  distribute.forEach((d, i) => {
    const to = objOf(objOf(d)?.to) ?? {};
    let total = 0;
    for (const [loc, w] of Object.entries(to)) {
      const n = numOf(w) ?? 0;
      if (n <= 0 || n > 100) rep.error([...path, 'distribute', i, 'to', loc], 'locality weight must be in range [1, 100]');
      total += n;
    }
    if (total !== 100) rep.error([...path, 'distribute', i, 'to'], `total locality weight ${total} != 100`);
  });
  if ((failover.length > 0 || priority.length > 0) && outlier === undefined) rep.warn(path, 'outlier detection policy must be provided for failover');
  failover.forEach((f, i) => {
    const fo = objOf(f);
    const from = strOf(fo?.from) ?? '';
    const to = strOf(fo?.to) ?? '';
    if (from === to) rep.error([...path, 'failover', i], 'locality lb failover settings must specify different regions');
    if (from.includes('/') || to.includes('/')) rep.error([...path, 'failover', i], 'locality lb failover only specify region');
    if (from.includes('*') || to.includes('*')) rep.error([...path, 'failover', i], "locality lb failover region should not contain '*' wildcard");
  });
}

function checkLoadBalancer(rep: Reporter, lb: unknown, path: FieldPath, outlier: unknown): void {
  const o = objOf(lb);
  if (!o) return;
  const ch = objOf(o.consistentHash);
  if (ch) {
    const cp = [...path, 'consistentHash'];
    const cookie = objOf(ch.httpCookie);
    if (cookie && strOf(cookie.name) === '') rep.error([...cp, 'httpCookie', 'name'], 'name required for HttpCookie');
    if (cookie) for (const k of ['name', 'path'] as const) checkHeaderBound(rep, cookie[k], [...cp, 'httpCookie', k], `httpCookie ${k} (sent in Set-Cookie)`);
    if (has(ch, 'minimumRingSize') && (has(ch, 'ringHash') || has(ch, 'maglev'))) rep.error([...cp, 'minimumRingSize'], 'only one of MinimumRingSize or Maglev/Ringhash can be specified');
    const ringSize = numOf(objOf(ch.ringHash)?.minimumRingSize) ?? numOf(ch.minimumRingSize);
    if (ringSize !== undefined && ringSize > MAX_RING_SIZE) {
      rep.error(has(ch, 'ringHash') ? [...cp, 'ringHash', 'minimumRingSize'] : [...cp, 'minimumRingSize'], `minimumRingSize must be at most ${MAX_RING_SIZE}`);
    }
    const maglev = objOf(ch.maglev);
    if (maglev) {
      const size = numOf(maglev.tableSize) ?? 0;
      const mp = [...cp, 'maglev', 'tableSize'];
      if (size === 0) rep.error(mp, 'tableSize must be set for maglev');
      else if (size >= 5000011) rep.error(mp, 'tableSize must be less than 5000011 for maglev');
      else if (!isPrime(size)) rep.error(mp, 'tableSize must be a prime number for maglev');
    }
    if (!has(ch, 'httpHeaderName') && !has(ch, 'httpCookie') && !has(ch, 'useSourceIp') && !has(ch, 'httpQueryParameterName')) {
      rep.error(cp, 'consistentHash needs one hash key: httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName');
    }
  }
  checkLocality(rep, o.localityLbSetting, [...path, 'localityLbSetting'], outlier);
  const warm = objOf(o.warmup);
  if (warm) {
    const agg = numOf(warm.aggression);
    if (agg !== undefined && agg < 1) rep.error([...path, 'warmup', 'aggression'], 'aggression should be greater than or equal to 1');
  }
}

const POLICY_FIELDS = ['outlierDetection', 'connectionPool', 'loadBalancer', 'tls', 'portLevelSettings', 'tunnel', 'proxyProtocol', 'retryBudget'];

function checkTrafficPolicy(rep: Reporter, tp: unknown, path: FieldPath): void {
  const o = objOf(tp);
  if (!o) return;
  if (!POLICY_FIELDS.some((f) => has(o, f))) return rep.error(path, 'traffic policy must have at least one field');
  if (has(o, 'tunnel') && has(o, 'proxyProtocol')) return rep.error([...path, 'proxyProtocol'], 'tunnel and proxyProtocol must not be set together');
  checkOutlierDetection(rep, o.outlierDetection, [...path, 'outlierDetection']);
  checkConnectionPool(rep, o.connectionPool, [...path, 'connectionPool']);
  checkLoadBalancer(rep, o.loadBalancer, [...path, 'loadBalancer'], o.outlierDetection ?? undefined);
  checkTls(rep, o.tls, [...path, 'tls']);
  const seenPorts = new Map<number, number>();
  listOf(o.portLevelSettings).forEach((pl, i) => {
    const p = objOf(pl);
    if (!p) return;
    const pp = [...path, 'portLevelSettings', i];
    const num = numOf(objOf(p.port)?.number);
    if (num === undefined) rep.error([...pp, 'port'], 'portTrafficPolicy must have valid port');
    else {
      checkPort(rep, num, [...pp, 'port', 'number']);
      const first = seenPorts.get(num);
      if (first !== undefined) rep.error([...pp, 'port', 'number'], `port ${num} already has settings in portLevelSettings[${first}]`);
      else seenPorts.set(num, i);
    }
    if (!['outlierDetection', 'connectionPool', 'loadBalancer', 'tls'].some((f) => has(p, f))) rep.error(pp, 'port traffic policy must have at least one field');
    checkOutlierDetection(rep, p.outlierDetection, [...pp, 'outlierDetection']);
    checkConnectionPool(rep, p.connectionPool, [...pp, 'connectionPool']);
    checkLoadBalancer(rep, p.loadBalancer, [...pp, 'loadBalancer'], p.outlierDetection ?? undefined);
    checkTls(rep, p.tls, [...pp, 'tls']);
  });
  const tunnel = objOf(o.tunnel);
  if (tunnel) {
    const proto = strOf(tunnel.protocol);
    if (proto && proto !== 'CONNECT' && proto !== 'POST') rep.error([...path, 'tunnel', 'protocol'], 'tunnel protocol must be "CONNECT" or "POST"');
    const target = strOf(tunnel.targetHost);
    if (target !== undefined && validateFqdn(target) !== undefined && !isIpAddress(target)) rep.error([...path, 'tunnel', 'targetHost'], 'tunnel target host must be valid FQDN or IP address');
    checkPort(rep, tunnel.targetPort, [...path, 'tunnel', 'targetPort']);
  }
}

function validateDestinationRule(rep: Reporter, spec: Obj): void {
  const host = strOf(spec.host);
  if (host === undefined || host === '') rep.error(['spec', 'host'], 'host is required');
  else rep.check(['spec', 'host'], validateWildcardDomain(host));
  checkTrafficPolicy(rep, spec.trafficPolicy, ['spec', 'trafficPolicy']);
  const names = new Map<string, number>();
  listOf(spec.subsets).forEach((s, i) => {
    const o = objOf(s);
    if (!o) return;
    const p = ['spec', 'subsets', i];
    const name = strOf(o.name);
    if (name !== undefined) {
      if (name === '') rep.error([...p, 'name'], 'subset name cannot be empty');
      else if (!isDns1123Label(name)) rep.error([...p, 'name'], `subset name is invalid: ${name}`);
      const first = names.get(name);
      if (first !== undefined) rep.error([...p, 'name'], `duplicate subset names: ${name} (also subsets[${first}])`);
      else names.set(name, i);
    }
    checkLabels(rep, o.labels, [...p, 'labels']);
    checkTrafficPolicy(rep, o.trafficPolicy, [...p, 'trafficPolicy']);
  });
  const ws = objOf(spec.workloadSelector);
  checkExportTo(rep, spec.exportTo, ['spec', 'exportTo'], rep.r.metadata.namespace, false);
  if (ws) {
    checkSelectorLabels(rep, ws.matchLabels, ['spec', 'workloadSelector', 'matchLabels']);
    if (Object.keys(objOf(ws.matchLabels) ?? {}).length === 0) rep.warn(['spec', 'workloadSelector'], 'workload selector specified without labels');
    const exp = listOf(spec.exportTo).map((e) => (e === '.' ? rep.r.metadata.namespace : e));
    if (exp.length > 0 && (exp.length > 1 || exp[0] !== rep.r.metadata.namespace)) {
      rep.error(['spec', 'exportTo'], 'destination rule with workload selector cannot have exportTo beyond current namespace');
    }
  }
}

// === WorkloadEntry / ServiceEntry ===

function checkWorkloadEntry(rep: Reporter, we: Obj, path: FieldPath, opts: { servicePorts?: Set<string>; allowFqdn: boolean }): void {
  const addr = strOf(we.address) ?? '';
  if (addr === '') {
    if (!strOf(we.network)) rep.error([...path, 'address'], 'address is required (or set network)');
    else rep.warn([...path, 'address'], `address is unset with network "${String(we.network)}"`);
  } else if (addr.startsWith('unix://')) {
    const sock = addr.slice('unix://'.length);
    if (!sock.startsWith('/') && !sock.startsWith('@')) rep.error([...path, 'address'], 'UDS must be an absolute path or abstract socket');
    else if (sock.endsWith('/')) rep.error([...path, 'address'], 'UDS may not be a dir');
    if (has(we, 'ports')) rep.error([...path, 'ports'], 'UDS may not include ports');
    if (opts.servicePorts && opts.servicePorts.size !== 1) rep.error([...path, 'address'], 'exactly 1 service port required for unix endpoints');
  } else if (!isIpAddress(addr)) {
    if (!opts.allowFqdn) rep.error([...path, 'address'], `endpoint address "${addr}" is not a valid IP address (resolution STATIC needs IPs or unix:// sockets)`);
    else if (validateFqdn(addr) !== undefined) rep.error([...path, 'address'], `endpoint address "${addr}" is not a valid FQDN or an IP address`);
  }
  // Port values (1..65535) are checked by the structural pass, as the CRD's CEL rule does.
  for (const name of Object.keys(objOf(we.ports) ?? {})) {
    // The CRD's rule is on the whole map, so Istio reports a bad name at `ports`; so do we.
    if (!isDns1123Label(name)) rep.error([...path, 'ports'], `port name "${name}" must be valid (a DNS label: letters, digits, '-')`);
    else if (opts.servicePorts && !opts.servicePorts.has(name)) {
      rep.error([...path, 'ports', name], `endpoint port "${name}" is not defined by the service entry (ports: ${[...opts.servicePorts].join(', ') || 'none'})`);
    }
  }
  checkLabels(rep, we.labels, [...path, 'labels']);
}

function validateServiceEntry(rep: Reporter, spec: Obj): void {
  const hosts = listOf(spec.hosts);
  const resolution = strOf(spec.resolution) ?? 'NONE';
  if (has(spec, 'workloadSelector') && has(spec, 'endpoints')) rep.error(['spec', 'endpoints'], 'only one of WorkloadSelector or Endpoints can be set');
  const ws = objOf(spec.workloadSelector);
  if (ws) {
    checkSelectorLabels(rep, ws.labels, ['spec', 'workloadSelector', 'labels']);
    if (Object.keys(objOf(ws.labels) ?? {}).length === 0) rep.warn(['spec', 'workloadSelector'], 'service entry: workload selector specified without labels, will be applied to all services in namespace');
  }
  hosts.forEach((h, i) => {
    if (typeof h !== 'string') return;
    if (h === '*') return rep.error(['spec', 'hosts', i], 'hostname cannot be wildcard');
    rep.check(['spec', 'hosts', i], hostReason(h));
    if (h.includes('*') && !h.startsWith('*.')) rep.warn(['spec', 'hosts', i], `partial wildcard "${h}" not allowed`);
  });
  let cidr = false;
  listOf(spec.addresses).forEach((a, i) => {
    if (typeof a !== 'string') return;
    cidr ||= a.includes('/');
    rep.check(['spec', 'addresses', i], validateIpOrCidr(a));
  });
  if (cidr && resolution !== 'NONE' && resolution !== 'STATIC') rep.error(['spec', 'addresses'], 'CIDR addresses are allowed only for NONE/STATIC resolution types');

  const portNames = new Map<string, number>();
  const portNumbers = new Map<number, number>();
  const protocols: string[] = [];
  listOf(spec.ports).forEach((p, i) => {
    const o = objOf(p);
    if (!o) return;
    const pp = ['spec', 'ports', i];
    const name = strOf(o.name);
    if (name !== undefined) {
      const first = portNames.get(name);
      if (first !== undefined) rep.error([...pp, 'name'], `Duplicate value: service entry port name "${name}" already defined (ports[${first}])`);
      else portNames.set(name, i);
      if (!isDns1123Label(name)) rep.error([...pp, 'name'], `invalid port name: ${name}`);
    }
    const number = numOf(o.number);
    if (number !== undefined) {
      const first = portNumbers.get(number);
      if (first !== undefined) rep.error([...pp, 'number'], `port number cannot be duplicated: ${number} (ports[${first}])`);
      else portNumbers.set(number, i);
    }
    const proto = strOf(o.protocol) ?? '';
    if (proto !== '' && !PROTOCOLS.has(proto.toUpperCase())) rep.error([...pp, 'protocol'], `unsupported protocol: ${proto} (use one of ${[...PROTOCOLS].join(', ')})`);
    protocols.push(proto.toUpperCase());
  });
  const servicePorts = new Set(portNames.keys());

  const endpoints = listOf(spec.endpoints);
  switch (resolution) {
    case 'NONE':
      if (endpoints.length > 0) rep.error(['spec', 'endpoints'], 'NONE mode cannot set endpoints');
      if (ws) rep.warn(['spec', 'workloadSelector'], 'workloadSelector should not be set when resolution mode is NONE');
      break;
    case 'STATIC':
      endpoints.forEach((e, i) => {
        const o = objOf(e);
        if (o) checkWorkloadEntry(rep, o, ['spec', 'endpoints', i], { servicePorts, allowFqdn: false });
      });
      if (endpoints.length === 0 && !ws) rep.warn(['spec', 'resolution'], 'STATIC resolution without endpoints or workloadSelector: this service has no endpoints');
      break;
    case 'DNS':
    case 'DNS_ROUND_ROBIN':
      if (endpoints.length === 0) {
        hosts.forEach((h, i) => {
          if (typeof h === 'string' && h !== '*' && validateFqdn(h) !== undefined) {
            rep.error(['spec', 'hosts', i], `hosts must be FQDN if no endpoints are provided for resolution mode ${resolution}`);
          }
        });
      }
      if (resolution === 'DNS_ROUND_ROBIN' && endpoints.length > 1) rep.error(['spec', 'endpoints'], 'DNS_ROUND_ROBIN mode cannot have multiple endpoints');
      endpoints.forEach((e, i) => {
        const o = objOf(e);
        if (o) checkWorkloadEntry(rep, o, ['spec', 'endpoints', i], { servicePorts, allowFqdn: true });
      });
      break;
    case 'DYNAMIC_DNS':
      rep.error(['spec', 'resolution'], 'resolution DYNAMIC_DNS is not supported by Remora');
      break;
    default:
      break; // an unknown enum value is reported by the structural pass
  }
  if (resolution !== 'NONE' && hosts.length > 1 && protocols.some((p) => !HTTP_PROTOCOLS.has(p) && !TLS_PROTOCOLS.has(p))) {
    rep.error(['spec', 'ports'], 'multiple hosts provided with non-HTTP, non-TLS ports');
  }
  checkExportTo(rep, spec.exportTo, ['spec', 'exportTo'], rep.r.metadata.namespace, true);
}

function validateWorkloadEntrySpec(rep: Reporter, spec: Obj): void {
  checkWorkloadEntry(rep, spec, ['spec'], { allowFqdn: true });
}

// === Top level ===

function isIstioKind(kind: string): kind is IstioKind {
  return (ISTIO_KINDS as readonly string[]).includes(kind);
}

function issuesTo(rep: Reporter, issues: SchemaIssue[]): void {
  for (const i of issues) {
    if (i.severity === 'warning') rep.warn(i.path, i.message);
    else rep.error(i.path, i.message);
  }
}

/**
 * Validate one resource alone. Returns whether it is an Istio kind that took part (so cross-resource checks
 * include it).
 */
function validateOne(r: Resource, out: ConfigError[], col: Collected): boolean {
  const rep = new Reporter(r, out);
  const raw = r.raw;
  const kind = r.kind;
  const apiVersion = r.apiVersion;
  if (!isIstioKind(kind)) {
    if (!apiVersion || !kind) {
      rep.error(apiVersion ? ['kind'] : ['apiVersion'], 'apiVersion and kind are required');
    } else if (isAuthzKind(apiVersion, kind)) {
      out.push(...validateAuthzResource(r)); // NetworkPolicy, AuthorizationPolicy, Sidecar (src/authz/validate-authz.ts)
    } else if (isGatewayRoute(apiVersion, kind)) {
      out.push(...validateGatewayRoute(r, { checkRegex })); // HTTPRoute, GRPCRoute, TCPRoute, TLSRoute (src/gateway/)
      return true;
    } else if (isKubernetesRegistryKind(apiVersion, kind)) {
      out.push(...validateKubernetesObject(r)); // Service, EndpointSlice, Pod in files: registry hosts
      return true;
    } else {
      rep.warn([], `${kind} (${apiVersion}) is not applied by a sidecar; ignored`);
    }
    return false;
  }
  if (!(ISTIO_API_VERSIONS as readonly string[]).includes(apiVersion)) {
    rep.error(['apiVersion'], `unsupported apiVersion "${apiVersion}" for ${kind}: use ${ISTIO_API_VERSIONS.join(', ')}`);
    return false;
  }
  const issues: SchemaIssue[] = [];
  checkSchema(raw, OBJECT_SCHEMA, [], issues);
  issuesTo(rep, issues);
  const md = objOf(raw.metadata);
  const name = strOf(md?.name);
  if (name !== undefined && name !== '' && !isK8sName(name)) {
    rep.error(['metadata', 'name'], `invalid name "${name}": must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.'; at most 253 characters)`);
  } else if (md && name === '') rep.error(['metadata', 'name'], 'required field is missing');
  const ns = strOf(md?.namespace);
  if (ns !== undefined && ns !== '' && !isK8sNamespace(ns)) rep.error(['metadata', 'namespace'], `invalid namespace "${ns}": must be a lowercase RFC 1123 label (a-z, 0-9, '-'; at most 63 characters)`);
  if (md) checkLabels(rep, md.labels, ['metadata', 'labels']);

  const spec = objOf(raw.spec);
  if (!spec) {
    if (raw.spec !== undefined && raw.spec !== null) rep.error(['spec'], 'spec must be a mapping');
    return false;
  }
  const specIssues: SchemaIssue[] = [];
  checkSchema(spec, SPEC_SCHEMAS[kind], ['spec'], specIssues);
  issuesTo(rep, specIssues);
  switch (kind) {
    case 'VirtualService':
      validateVirtualService(rep, spec, col);
      break;
    case 'DestinationRule':
      validateDestinationRule(rep, spec);
      break;
    case 'ServiceEntry':
      validateServiceEntry(rep, spec);
      break;
    case 'WorkloadEntry':
      validateWorkloadEntrySpec(rep, spec);
      break;
  }
  return true;
}

/**
 * Validate a whole configuration: every resource on its own, then the references between them. Returns all
 * errors and warnings (warnings have `severity: 'warning'` and do not reject a config), ordered by file and line.
 */
export function validateResources(resources: Resource[], opts: ValidateOptions = {}): ConfigError[] {
  const clusterDomain = opts.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
  const out: ConfigError[] = [];
  const col: Collected = { vs: [], destRefs: [] };
  const seen = new Map<string, Resource>();
  const drs: Resource[] = [];

  hostReasons = new Map();
  try {
    for (const r of resources) checkOne(r);
  } finally {
    hostReasons = undefined;
  }

  function checkOne(r: Resource): void {
    const istio = validateOne(r, out, col);
    if (!istio) return;
    // Duplicates: the same kind/namespace/name twice (any apiVersion) — the second is rejected.
    if (r.metadata.name) {
      const key = `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
      const first = seen.get(key);
      if (first) out.push(errorAt(r, ['metadata', 'name'], `duplicate ${key}: already defined at ${first.source.file}:${first.source.line}`));
      else {
        seen.set(key, r);
        if (r.kind === 'DestinationRule') drs.push(r);
      }
    }
  }

  crossCheck(col, drs, clusterDomain, out);
  // Outbound mTLS to endpoints whose identity is unknown is refused: say so (src/security/identity-check.ts).
  out.push(...identityWarnings(resources, clusterDomain));
  return out
    .map((e, i) => ({ e, i }))
    .sort((a, b) => (a.e.file < b.e.file ? -1 : a.e.file > b.e.file ? 1 : a.e.line - b.e.line || a.i - b.i))
    .map((x) => x.e);
}

function crossCheck(col: Collected, drs: Resource[], clusterDomain: string, out: ConfigError[]): void {
  // Subsets per DestinationRule host (expanded against the rule's own namespace).
  const exact = new Map<string, Set<string>>();
  const wildcard: Array<{ host: string; subsets: Set<string> }> = [];
  for (const dr of drs) {
    const host = strOf(dr.spec.host);
    if (!host) continue;
    const h = expandHost(host, dr.metadata.namespace, clusterDomain);
    const names = listOf(dr.spec.subsets).map((s) => strOf(objOf(s)?.name)).filter((n): n is string => !!n);
    if (h.startsWith('*')) {
      wildcard.push({ host: h, subsets: new Set(names) });
      continue;
    }
    const set = exact.get(h) ?? new Set<string>();
    for (const n of names) set.add(n);
    exact.set(h, set);
  }
  const subsetsFor = (h: string): { found: boolean; subsets: Set<string> } => {
    const e = exact.get(h);
    if (e) return { found: true, subsets: e };
    // Istio applies the most specific wildcard rule.
    let best: { host: string; subsets: Set<string> } | undefined;
    for (const w of wildcard) if (hostCovers(w.host, h) && (!best || w.host.length > best.host.length)) best = w;
    return best ? { found: true, subsets: best.subsets } : { found: false, subsets: new Set() };
  };
  for (const ref of col.destRefs) {
    if (ref.host.includes('*')) continue;
    const h = expandHost(ref.host, ref.r.metadata.namespace, clusterDomain);
    const { found, subsets } = subsetsFor(h);
    if (!found) out.push(errorAt(ref.r, [...ref.path, 'subset'], `subset ${ref.subset} is not defined: no DestinationRule for ${h}`));
    else if (!subsets.has(ref.subset)) {
      out.push(errorAt(ref.r, [...ref.path, 'subset'], `subset ${ref.subset} is not defined by any DestinationRule for ${h} (defined: ${[...subsets].sort().join(', ') || 'none'})`));
    }
  }

  // Delegates: a root route must name an existing VirtualService without hosts, and a hostless VirtualService
  // is only valid as someone's delegate.
  const byName = new Map<string, VsInfo>();
  for (const v of col.vs) byName.set(`${v.r.metadata.namespace}/${v.r.metadata.name}`, v);
  const delegated = new Set<string>();
  for (const v of col.vs) {
    for (const d of v.delegates) {
      const key = `${d.namespace}/${d.name}`;
      const target = byName.get(key);
      if (!target) out.push(errorAt(v.r, [...d.path, 'name'], `delegate VirtualService ${key} not found`));
      else if (target.hosts.length > 0) out.push(errorAt(v.r, [...d.path, 'name'], `VirtualService ${key} has hosts, so it cannot be a delegate`));
      delegated.add(key);
    }
  }
  for (const v of col.vs) {
    if (v.hosts.length === 0 && !delegated.has(`${v.r.metadata.namespace}/${v.r.metadata.name}`)) {
      out.push(errorAt(v.r, ['spec', 'hosts'], 'hosts is required: only a delegate VirtualService may omit hosts, and no VirtualService delegates to this one'));
    }
  }

  // Two mesh VirtualServices for one host in one namespace: Istio merges only on gateways, so for a sidecar
  // one of them silently wins.
  const owner = new Map<string, VsInfo>();
  for (const v of col.vs) {
    if (!v.appliesToMesh) continue;
    v.hosts.forEach((host, i) => {
      const key = `${v.r.metadata.namespace}\n${expandHost(host, v.r.metadata.namespace, clusterDomain)}`;
      const first = owner.get(key);
      if (first && first !== v) {
        out.push(errorAt(v.r, ['spec', 'hosts', i], `VirtualService ${first.r.metadata.namespace}/${first.r.metadata.name} (${first.r.source.file}:${first.r.source.line}) also defines host ${host}; Istio merges VirtualServices only on gateways, so for sidecars only one applies`, 'warning'));
      } else if (!first) owner.set(key, v);
    });
  }
}
