/**
 * What every kind's validation shares: the problem reporter, value rules (labels, ports, header names and values,
 * RE2 regexes, exportTo, gateway names, percentages) and the host-name memo. Pure.
 */
import { errorAt, type ConfigError, type FieldPath, type Resource } from '../resource.js';
import { parseDurationMs } from '../duration.js';
import { isDns1123Label, isK8sNamespace, validateFqdn, validateWildcardDomain } from '../hosts.js';


export type Obj = Record<string, unknown>;
export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
export const objOf = (v: unknown): Obj | undefined => (isObj(v) ? v : undefined);
export const listOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
export const strOf = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
export const numOf = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
export const has = (o: Obj | undefined, k: string): boolean => o !== undefined && o[k] !== undefined && o[k] !== null;

/** Collects the problems of one resource. */
export class Reporter {
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

export const TCHAR_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
export const PSEUDO_HEADERS = new Set([':method', ':scheme', ':authority', ':path', ':status']);
export const JWT_CLAIM_PREFIX = '@request.auth.claims';
export const LABEL_KEY = /^(?:([a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*)\/)?((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;
export const LABEL_VALUE = /^(?:(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Status codes Go's net/http knows (Istio accepts a numeric retryOn token only if http.StatusText is non-empty). */
export const KNOWN_STATUS = new Set([
  100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308,
  400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423, 424,
  425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);
export const GRPC_STATUS = new Set([
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE',
  'DATA_LOSS', 'UNAUTHENTICATED',
]);
export const CORS_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', '*']);
/** Redirect codes Envoy can produce (RedirectResponseCode); Istio accepts any 3xx but drops the others. */
export const REDIRECT_CODES = new Set([301, 302, 303, 307, 308]);
/** Port protocols Istio's protocol.Parse knows (case-insensitive). */
export const PROTOCOLS = new Set(['HTTP', 'HTTPS', 'HTTP2', 'HTTP_PROXY', 'GRPC', 'GRPC-WEB', 'MONGO', 'REDIS', 'MYSQL', 'TCP', 'TLS', 'UDP']);
export const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'HTTP_PROXY', 'GRPC', 'GRPC-WEB']);
export const TLS_PROTOCOLS = new Set(['HTTPS', 'TLS']);
/** Envoy's maximum ring size for ring-hash (`maximum_ring_size` upper bound, 8M). */
export const MAX_RING_SIZE = 8_388_608;

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
export function checkHeaderBound(rep: Reporter, v: unknown, path: FieldPath, what: string): void {
  // eslint-disable-next-line no-control-regex
  if (typeof v === 'string' && /[\x00-\x1F\x7F]/.test(v)) rep.error(path, `${what} must not contain control characters (CR, LF, NUL ...)`);
}

/** Envoy header value: no control characters but tab, and `%` only as `%%` or a `%VARIABLE%` substitution. */

export function checkHeaderValue(v: string): string | undefined {
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

export function checkLabels(rep: Reporter, labels: unknown, path: FieldPath): void {
  const o = objOf(labels);
  if (!o) return;
  for (const [k, v] of Object.entries(o)) {
    const m = LABEL_KEY.exec(k);
    if (!m || (m[1] !== undefined && m[1].length > 253) || (m[2] ?? '').length > 63) rep.error([...path, k], `invalid label key "${k}"`);
    if (typeof v === 'string' && !LABEL_VALUE.test(v)) rep.error([...path, k], `invalid label value ${JSON.stringify(v)}`);
  }
}

export function checkSelectorLabels(rep: Reporter, labels: unknown, path: FieldPath): void {
  const o = objOf(labels);
  if (!o) return;
  for (const [k, v] of Object.entries(o)) {
    if (k === '') rep.error([...path, k], 'empty key is not supported in selector');
    if (k.includes('*') || (typeof v === 'string' && v.includes('*'))) rep.error([...path, k], 'wildcard is not supported in selector');
  }
}

/** Istio percentage (`Percent.value`): 0, or within [0.0001, 100]. */
export function checkPercentage(rep: Reporter, p: unknown, path: FieldPath): void {
  const v = numOf(objOf(p)?.value);
  if (v === undefined) return;
  if (v < 0 || v > 100 || (v > 0 && v < 0.0001)) rep.error([...path, 'value'], `percentage ${v} is neither 0.0, nor in range [0.0001, 100.0]`);
}

export function checkPort(rep: Reporter, v: unknown, path: FieldPath): void {
  const n = numOf(v);
  if (n !== undefined && Number.isInteger(n) && (n < 1 || n > 65535)) rep.error(path, `port number ${n} must be in the range 1..65535`);
}

export function checkExportTo(rep: Reporter, exportTo: unknown, path: FieldPath, namespace: string, isServiceEntry: boolean): void {
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

export function checkGatewayNames(rep: Reporter, gateways: unknown, path: FieldPath): void {
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
 * validateWildcardDomain, remembered: a mesh names each host several times (the ServiceEntry, the VirtualService,
 * each destination), and 10,000 services make that 40,000 checks. The answer depends on the name alone, so the memo
 * is kept across validations (an edit re-checks the names it touches); bounded, it starts over when full.
 */
const hostReasons = new Map<string, string | undefined>();
export function hostReason(host: string): string | undefined {
  const known = hostReasons.get(host);
  if (known !== undefined || hostReasons.has(host)) return known;
  const reason = validateWildcardDomain(host);
  if (hostReasons.size >= 65_536) hostReasons.clear();
  hostReasons.set(host, reason);
  return reason;
}

export function durationMsOf(v: unknown): number | undefined {
  return typeof v === 'string' ? parseDurationMs(v) : undefined;
}
