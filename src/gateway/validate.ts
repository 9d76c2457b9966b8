/**
 * `remora validate` for Gateway API routes: the CRD's structural schema (schema.ts), its CEL rules and patterns,
 * and what Remora cannot honour, each problem at its field (`file:line: HTTPRoute/ns/name: spec.path: reason`).
 * Pure; the regex checker is passed in by the config validator (it owns the RE2 rules).
 */
import { errorAt, type ConfigError, type FieldPath, type Resource } from '../config/resource.js';
import { checkSchema, OBJECT_SCHEMA, type SchemaIssue } from '../config/schema.js';
import { isK8sName, isK8sNamespace } from '../config/hosts.js';
import { GRPC_FILTER_TYPES, HTTP_FILTER_TYPES, ROUTE_SPEC_SCHEMAS } from './schema.js';
import { GATEWAY_GROUP, GATEWAY_ROUTE_VERSIONS, isGatewayRouteKind, type GatewayRouteKind } from './types.js';
import { gatewayDurationMs, isServiceKind } from './refs.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const objOf = (v: unknown): Obj | undefined => (isObj(v) ? v : undefined);
const listOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const strOf = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const numOf = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

export interface GatewayValidateOptions {
  /** The RE2 compatibility check of the config validator: the reason a pattern is unusable, or undefined. */
  checkRegex(pattern: string): string | undefined;
}

// Patterns of the Gateway API types (apis/v1/shared_types.go, httproute_types.go).
const SECTION_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PRECISE_HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const GROUP = /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const KIND = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$/;
const CORS_ORIGIN = /(^\*$)|(^(http(s)?):\/\/(((\*\.)?([a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+|\*)(:([0-9]{1,5}))?)$)/;
const GRPC_SERVICE = /^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$/i;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;
const REDIRECT_CODES = [301, 302, 303, 307, 308];
const CORS_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', '*']);

class Rep {
  constructor(readonly r: Resource, readonly out: ConfigError[]) {}
  error(path: FieldPath, message: string): void { this.out.push(errorAt(this.r, path, message)); }
  warn(path: FieldPath, message: string): void { this.out.push(errorAt(this.r, path, message, 'warning')); }
}

/** Every problem of one Gateway API route (errors and warnings). */
export function validateGatewayRoute(r: Resource, opts: GatewayValidateOptions): ConfigError[] {
  const out: ConfigError[] = [];
  const rep = new Rep(r, out);
  const kind = r.kind;
  if (!isGatewayRouteKind(kind)) return out;
  const version = r.apiVersion.slice(GATEWAY_GROUP.length + 1);
  const versions = GATEWAY_ROUTE_VERSIONS[kind];
  if (!versions.includes(version)) {
    rep.error(['apiVersion'], `unsupported apiVersion "${r.apiVersion}" for ${kind}: use ${versions.map((v) => `${GATEWAY_GROUP}/${v}`).join(', ')}`);
    return out;
  }
  const issues: SchemaIssue[] = [];
  checkSchema(r.raw, OBJECT_SCHEMA, [], issues);
  const md = objOf(r.raw.metadata);
  const name = strOf(md?.name);
  if (name !== undefined && name !== '' && !isK8sName(name)) rep.error(['metadata', 'name'], `invalid name "${name}": must be a lowercase RFC 1123 subdomain`);
  const ns = strOf(md?.namespace);
  if (ns !== undefined && ns !== '' && !isK8sNamespace(ns)) rep.error(['metadata', 'namespace'], `invalid namespace "${ns}": must be a lowercase RFC 1123 label`);
  const spec = objOf(r.raw.spec);
  if (spec === undefined) {
    for (const i of issues) if (i.severity === 'warning') rep.warn(i.path, i.message); else rep.error(i.path, i.message);
    if (r.raw.spec !== undefined && r.raw.spec !== null) rep.error(['spec'], 'spec must be a mapping');
    return out;
  }
  checkSchema(spec, ROUTE_SPEC_SCHEMAS[kind], ['spec'], issues);
  for (const i of issues) if (i.severity === 'warning') rep.warn(i.path, i.message); else rep.error(i.path, i.message);

  checkParentRefs(rep, spec.parentRefs);
  if (kind !== 'TCPRoute') checkHostnames(rep, kind, spec.hostnames);
  const rules = listOf(spec.rules);
  const names = new Map<string, number>();
  let totalMatches = 0;
  rules.forEach((raw, i) => {
    const rule = objOf(raw);
    if (rule === undefined) return;
    const p = ['spec', 'rules', i];
    const rn = strOf(rule.name);
    if (rn !== undefined) {
      if (!SECTION_NAME.test(rn)) rep.error([...p, 'name'], `invalid rule name "${rn}": lowercase letters, digits, '-' and '.'`);
      const first = names.get(rn);
      if (first !== undefined) rep.error([...p, 'name'], `Rule name must be unique within the route (also rules[${first}])`);
      else names.set(rn, i);
    }
    totalMatches += listOf(rule.matches).length;
    if (kind === 'HTTPRoute') checkHttpRule(rep, rule, p, opts);
    else if (kind === 'GRPCRoute') checkGrpcRule(rep, rule, p, opts);
    else listOf(rule.backendRefs).forEach((b, j) => checkBackendRef(rep, b, [...p, 'backendRefs', j], false));
  });
  if (totalMatches > 128) rep.error(['spec', 'rules'], 'While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules in a route must be less than 128');
  return out;
}

function checkParentRefs(rep: Rep, refs: unknown): void {
  const list = listOf(refs);
  if (list.length === 0) rep.warn(['spec', 'parentRefs'], 'no parentRefs: the route attaches to nothing (a mesh route names a Service: group "", kind Service)');
  const seen = new Map<string, number>();
  list.forEach((raw, i) => {
    const ref = objOf(raw);
    if (ref === undefined) return;
    const p = ['spec', 'parentRefs', i];
    const group = strOf(ref.group) ?? GATEWAY_GROUP;
    const kind = strOf(ref.kind) ?? 'Gateway';
    if (!GROUP.test(group)) rep.error([...p, 'group'], `invalid group "${group}"`);
    if (!KIND.test(kind)) rep.error([...p, 'kind'], `invalid kind "${kind}"`);
    const name = strOf(ref.name);
    if (name === '') rep.error([...p, 'name'], 'name must not be empty');
    const sn = strOf(ref.sectionName);
    if (sn !== undefined && !SECTION_NAME.test(sn)) rep.error([...p, 'sectionName'], `invalid sectionName "${sn}"`);
    const ns = strOf(ref.namespace);
    if (ns !== undefined && ns !== '' && !isK8sNamespace(ns)) rep.error([...p, 'namespace'], `invalid namespace "${ns}"`);
    if (kind === 'Service' && ref.group === undefined) {
      rep.warn([...p, 'group'], 'group is unset, so it defaults to gateway.networking.k8s.io and names no Service: write group: "" (the core group)');
    } else if (kind === 'Gateway' && group === GATEWAY_GROUP) {
      rep.warn(p, 'a Gateway parent is not applied by a sidecar (Remora implements the mesh profile: parentRefs of kind Service)');
    } else if (!isServiceKind(group, kind)) {
      rep.warn(p, `parent ${group === '' ? '' : `${group}/`}${kind} is not supported (Remora attaches routes to Services: group "", kind Service)`);
    }
    const key = `${group}/${kind}/${ns ?? ''}/${name ?? ''}/${sn ?? ''}/${numOf(ref.port) ?? ''}`;
    const first = seen.get(key);
    if (first !== undefined) rep.error(p, `parentRefs must be distinct: same parent, sectionName and port as parentRefs[${first}]`);
    else seen.set(key, i);
  });
}

function checkHostnames(rep: Rep, kind: GatewayRouteKind, hostnames: unknown): void {
  const list = listOf(hostnames);
  list.forEach((h, i) => {
    if (typeof h === 'string' && !HOSTNAME.test(h)) rep.error(['spec', 'hostnames', i], `invalid hostname "${h}": an RFC 1123 name, optionally with a leading "*." (no IPs)`);
  });
  if (list.length > 0 && kind !== 'TLSRoute') {
    rep.warn(['spec', 'hostnames'], 'hostnames are ignored for Service parents (GEP-1294: meshes infer nothing from them); match on the Host header instead');
  }
}

function checkPathValue(rep: Rep, path: FieldPath, value: string, what: string): void {
  if (!value.startsWith('/')) return rep.error(path, `${what} must be an absolute path and start with '/'`);
  for (const bad of ['//', '/./', '/../', '%2f', '%2F', '#']) if (value.includes(bad)) return rep.error(path, `${what} must not contain '${bad}'`);
  if (value.endsWith('/..') || value.endsWith('/.')) return rep.error(path, `${what} must not end with '/..' or '/.'`);
  if (!PATH_CHARS.test(value)) rep.error(path, `${what} has characters a path may not carry (allowed: ${"-A-Za-z0-9/._~!$&'()*+,;=:@"} and %XX)`);
}

function checkValueMatches(rep: Rep, list: unknown, path: FieldPath, opts: GatewayValidateOptions, what: 'header' | 'query parameter'): void {
  const names = new Map<string, number>();
  listOf(list).forEach((raw, i) => {
    const m = objOf(raw);
    if (m === undefined) return;
    const p = [...path, i];
    const name = strOf(m.name);
    if (name !== undefined) {
      if (!HEADER_NAME.test(name)) rep.error([...p, 'name'], `invalid ${what} name "${name}"`);
      const key = what === 'header' ? name.toLowerCase() : name;
      const first = names.get(name);
      const firstFolded = names.get(key);
      if (first !== undefined) rep.error([...p, 'name'], `duplicate ${what} match "${name}" (also [${first}])`);
      else if (firstFolded !== undefined) rep.warn([...p, 'name'], `"${name}" repeats [${firstFolded}] (${what} names compare case-insensitively): only the first is considered`);
      names.set(name, i);
      if (key !== name && !names.has(key)) names.set(key, i);
    }
    const value = strOf(m.value);
    if (value === '') rep.error([...p, 'value'], 'value must not be empty');
    else if (value !== undefined && m.type === 'RegularExpression') {
      const why = opts.checkRegex(value);
      if (why !== undefined) rep.error([...p, 'value'], why);
    }
  });
}

function checkHeaderFilter(rep: Rep, hf: unknown, path: FieldPath): void {
  const f = objOf(hf);
  if (f === undefined) return;
  const actions = new Map<string, string>();
  const note = (name: string, p: FieldPath, action: string): void => {
    if (!HEADER_NAME.test(name)) return rep.error(p, `invalid header name "${name}"`);
    const key = name.toLowerCase();
    const prev = actions.get(key);
    if (prev !== undefined) rep.error(p, `header "${name}" already has an action (${prev}): only one action per header name`);
    else actions.set(key, action);
  };
  for (const op of ['set', 'add'] as const) {
    listOf(f[op]).forEach((raw, i) => {
      const h = objOf(raw);
      const name = strOf(h?.name);
      if (name !== undefined) note(name, [...path, op, i, 'name'], op);
      const value = strOf(h?.value);
      if (value === '') rep.error([...path, op, i, 'value'], 'value must not be empty');
      // eslint-disable-next-line no-control-regex
      else if (value !== undefined && /[\x00-\x08\x0A-\x1F\x7F]/.test(value)) rep.error([...path, op, i, 'value'], 'header value must not contain control characters (CR, LF, NUL ...)');
    });
  }
  listOf(f.remove).forEach((n, i) => { if (typeof n === 'string') note(n, [...path, 'remove', i], 'remove'); });
}

function checkPathModifier(rep: Rep, pm: unknown, path: FieldPath): void {
  const m = objOf(pm);
  if (m === undefined) return;
  const type = strOf(m.type);
  if (type === 'ReplaceFullPath' && m.replaceFullPath === undefined) rep.error([...path, 'replaceFullPath'], "replaceFullPath must be specified when type is set to 'ReplaceFullPath'");
  if (type === 'ReplacePrefixMatch' && m.replacePrefixMatch === undefined) rep.error([...path, 'replacePrefixMatch'], "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'");
  if (m.replaceFullPath !== undefined && type !== 'ReplaceFullPath') rep.error([...path, 'type'], "type must be 'ReplaceFullPath' when replaceFullPath is set");
  if (m.replacePrefixMatch !== undefined && type !== 'ReplacePrefixMatch') rep.error([...path, 'type'], "type must be 'ReplacePrefixMatch' when replacePrefixMatch is set");
  for (const k of ['replaceFullPath', 'replacePrefixMatch'] as const) {
    const v = strOf(m[k]);
    // eslint-disable-next-line no-control-regex
    if (v !== undefined && (/[\x00-\x20\x7F]/.test(v) || (v !== '' && !v.startsWith('/')))) rep.error([...path, k], 'must be a path starting with "/" without spaces or control characters');
  }
}

/** One filter, on a rule or on a backendRef. `grpc`: the GRPCRoute subset of filter types. */
function checkFilter(rep: Rep, raw: unknown, path: FieldPath, grpc: boolean): void {
  const f = objOf(raw);
  if (f === undefined) return;
  const type = strOf(f.type) ?? '';
  const allowed = grpc ? GRPC_FILTER_TYPES : HTTP_FILTER_TYPES;
  if (!allowed.includes(type)) {
    rep.error([...path, 'type'], `unknown filter type "${type}": ${grpc ? 'GRPCRoute' : 'HTTPRoute'} filters are ${allowed.filter((t) => t !== 'ExternalAuth').join(', ')}`);
    return;
  }
  const fields: Record<string, string> = {
    RequestHeaderModifier: 'requestHeaderModifier', ResponseHeaderModifier: 'responseHeaderModifier', RequestMirror: 'requestMirror',
    RequestRedirect: 'requestRedirect', URLRewrite: 'urlRewrite', CORS: 'cors', ExtensionRef: 'extensionRef', ExternalAuth: 'externalAuth',
  };
  for (const [t, field] of Object.entries(fields)) {
    if (t === type && f[field] === undefined) rep.error(path, `filter.${field} must be specified for ${t} filter.type`);
    if (t !== type && f[field] !== undefined) rep.error([...path, field], `filter.${field} must be nil if the filter.type is not ${t}`);
  }
  switch (type) {
    case 'RequestHeaderModifier': return checkHeaderFilter(rep, f.requestHeaderModifier, [...path, 'requestHeaderModifier']);
    case 'ResponseHeaderModifier': return checkHeaderFilter(rep, f.responseHeaderModifier, [...path, 'responseHeaderModifier']);
    case 'RequestMirror': {
      const m = objOf(f.requestMirror);
      if (m === undefined) return;
      const p = [...path, 'requestMirror'];
      checkBackendRef(rep, m.backendRef, [...p, 'backendRef'], false);
      if (m.percent !== undefined && m.fraction !== undefined) rep.error(p, 'Only one of percent or fraction may be specified in HTTPRequestMirrorFilter');
      const fr = objOf(m.fraction);
      const num = numOf(fr?.numerator);
      const den = numOf(fr?.denominator) ?? 100;
      if (num !== undefined && num > den) rep.error([...p, 'fraction'], `numerator ${num} must be less than or equal to denominator ${den}`);
      return;
    }
    case 'RequestRedirect': {
      const rd = objOf(f.requestRedirect);
      if (rd === undefined) return;
      const p = [...path, 'requestRedirect'];
      const host = strOf(rd.hostname);
      if (host !== undefined && !PRECISE_HOSTNAME.test(host)) rep.error([...p, 'hostname'], `invalid hostname "${host}": a lowercase RFC 1123 name without wildcards`);
      const code = numOf(rd.statusCode);
      if (code !== undefined && !REDIRECT_CODES.includes(code)) rep.error([...p, 'statusCode'], `unsupported value ${code}: must be one of ${REDIRECT_CODES.join(', ')}`);
      checkPathModifier(rep, rd.path, [...p, 'path']);
      return;
    }
    case 'URLRewrite': {
      const rw = objOf(f.urlRewrite);
      if (rw === undefined) return;
      const host = strOf(rw.hostname);
      if (host !== undefined && !PRECISE_HOSTNAME.test(host)) rep.error([...path, 'urlRewrite', 'hostname'], `invalid hostname "${host}": a lowercase RFC 1123 name without wildcards`);
      checkPathModifier(rep, rw.path, [...path, 'urlRewrite', 'path']);
      return;
    }
    case 'CORS': return checkCors(rep, f.cors, [...path, 'cors']);
    case 'ExtensionRef':
      rep.error([...path, 'extensionRef'], 'ExtensionRef filters name implementation-specific kinds, and Remora has none: the filter cannot be resolved');
      return;
    case 'ExternalAuth':
      rep.error([...path, 'type'], 'the ExternalAuth filter is not supported by Remora (use an AuthorizationPolicy with a CUSTOM provider where supported)');
  }
}

function checkCors(rep: Rep, raw: unknown, path: FieldPath): void {
  const c = objOf(raw);
  if (c === undefined) return;
  const origins = listOf(c.allowOrigins);
  origins.forEach((o, i) => { if (typeof o === 'string' && !CORS_ORIGIN.test(o)) rep.error([...path, 'allowOrigins', i], `invalid origin "${o}": "*" or <scheme>://<host>[:<port>] with scheme http or https`); });
  if (origins.includes('*') && origins.length > 1) rep.error([...path, 'allowOrigins'], "AllowOrigins cannot contain '*' alongside other origins");
  const methods = listOf(c.allowMethods);
  methods.forEach((m, i) => { if (typeof m === 'string' && !CORS_METHODS.has(m)) rep.error([...path, 'allowMethods', i], `unsupported method "${m}": one of ${[...CORS_METHODS].join(', ')}`); });
  if (methods.includes('*') && methods.length > 1) rep.error([...path, 'allowMethods'], "AllowMethods cannot contain '*' alongside other methods");
  for (const k of ['allowHeaders', 'exposeHeaders'] as const) {
    const hs = listOf(c[k]);
    hs.forEach((h, i) => { if (typeof h === 'string' && h !== '*' && !HEADER_NAME.test(h)) rep.error([...path, k, i], `invalid header name "${h}"`); });
    if (k === 'allowHeaders' && hs.includes('*') && hs.length > 1) rep.error([...path, k], "AllowHeaders cannot contain '*' alongside other headers");
  }
}

/** A backendRef (rule, mirror or L4). `httpFilters`: it may carry filters (HTTPRoute/GRPCRoute backends). */
function checkBackendRef(rep: Rep, raw: unknown, path: FieldPath, httpFilters: boolean, grpc = false): void {
  const b = objOf(raw);
  if (b === undefined) return;
  const group = strOf(b.group) ?? '';
  const kind = strOf(b.kind) ?? 'Service';
  if (!GROUP.test(group)) rep.error([...path, 'group'], `invalid group "${group}"`);
  if (!KIND.test(kind)) rep.error([...path, 'kind'], `invalid kind "${kind}"`);
  if (strOf(b.name) === '') rep.error([...path, 'name'], 'name must not be empty');
  const ns = strOf(b.namespace);
  if (ns !== undefined && ns !== '' && !isK8sNamespace(ns)) rep.error([...path, 'namespace'], `invalid namespace "${ns}"`);
  if (isServiceKind(group, kind) && b.port === undefined) rep.error(path, 'Must have port for Service reference');
  const w = numOf(b.weight);
  if (w !== undefined && (w < 0 || w > 1_000_000)) rep.error([...path, 'weight'], `weight ${w} must be between 0 and 1000000`);
  if (httpFilters) {
    checkFilterList(rep, b.filters, [...path, 'filters'], grpc);
    // Backend filters are implementation-specific; Remora applies the header modifiers there (and says so for the rest).
    listOf(b.filters).forEach((f, i) => {
      const t = strOf(objOf(f)?.type);
      if (t !== undefined && t !== 'RequestHeaderModifier' && t !== 'ResponseHeaderModifier' && (grpc ? GRPC_FILTER_TYPES : HTTP_FILTER_TYPES).includes(t)) {
        rep.error([...path, 'filters', i, 'type'], `${t} is not supported on a backendRef by Remora (RequestHeaderModifier and ResponseHeaderModifier are); put it on the rule`);
      }
    });
  }
}

function checkFilterList(rep: Rep, raw: unknown, path: FieldPath, grpc: boolean): void {
  const filters = listOf(raw);
  const counts = new Map<string, number>();
  filters.forEach((f, i) => {
    checkFilter(rep, f, [...path, i], grpc);
    const t = strOf(objOf(f)?.type);
    if (t !== undefined) counts.set(t, (counts.get(t) ?? 0) + 1);
  });
  for (const t of ['CORS', 'RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite']) {
    if ((counts.get(t) ?? 0) > 1) rep.error(path, `${t} filter cannot be repeated`);
  }
  if (counts.has('RequestRedirect') && counts.has('URLRewrite')) rep.error(path, 'May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both');
}

function checkHttpRule(rep: Rep, rule: Obj, p: FieldPath, opts: GatewayValidateOptions): void {
  const matches = listOf(rule.matches);
  matches.forEach((raw, j) => {
    const m = objOf(raw);
    if (m === undefined) return;
    const mp = [...p, 'matches', j];
    const path = objOf(m.path);
    if (path !== undefined) {
      const type = strOf(path.type) ?? 'PathPrefix';
      const value = strOf(path.value) ?? '/';
      if (type === 'RegularExpression') {
        const why = opts.checkRegex(value);
        if (why !== undefined) rep.error([...mp, 'path', 'value'], why);
      } else checkPathValue(rep, [...mp, 'path', 'value'], value, 'value');
    }
    checkValueMatches(rep, m.headers, [...mp, 'headers'], opts, 'header');
    checkValueMatches(rep, m.queryParams, [...mp, 'queryParams'], opts, 'query parameter');
  });
  checkFilterList(rep, rule.filters, [...p, 'filters'], false);
  const filters = listOf(rule.filters).map(objOf);
  const backends = listOf(rule.backendRefs);
  if (backends.length > 0 && filters.some((f) => f?.type === 'RequestRedirect')) rep.error([...p, 'filters'], 'RequestRedirect filter must not be used together with backendRefs');
  const prefixRewrite = (f: Obj | undefined): boolean => {
    const pm = objOf(objOf(f?.requestRedirect)?.path) ?? objOf(objOf(f?.urlRewrite)?.path);
    return pm?.type === 'ReplacePrefixMatch';
  };
  const onePrefixMatch = matches.length === 1 && (objOf(objOf(matches[0])?.path)?.type ?? 'PathPrefix') === 'PathPrefix' && objOf(matches[0])?.path !== undefined;
  const needsPrefix = filters.some(prefixRewrite) || backends.some((b) => listOf(objOf(b)?.filters).map(objOf).some(prefixRewrite));
  if (needsPrefix && !onePrefixMatch) rep.error([...p, 'matches'], 'When using RequestRedirect or URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified');
  backends.forEach((b, j) => checkBackendRef(rep, b, [...p, 'backendRefs', j], true));
  const timeouts = objOf(rule.timeouts);
  if (timeouts !== undefined) {
    const req = checkDuration(rep, timeouts.request, [...p, 'timeouts', 'request']);
    const back = checkDuration(rep, timeouts.backendRequest, [...p, 'timeouts', 'backendRequest']);
    if (req !== undefined && back !== undefined && req !== 0 && back > req) rep.error([...p, 'timeouts', 'backendRequest'], 'backendRequest timeout cannot be longer than request timeout');
  }
  const retry = objOf(rule.retry);
  if (retry !== undefined) {
    listOf(retry.codes).forEach((c, i) => {
      if (typeof c === 'number' && (c < 400 || c > 599)) rep.error([...p, 'retry', 'codes', i], `retry code ${c} must be between 400 and 599`);
    });
    const attempts = numOf(retry.attempts);
    if (attempts !== undefined && attempts < 0) rep.error([...p, 'retry', 'attempts'], `attempts ${attempts} must not be negative`);
    checkDuration(rep, retry.backoff, [...p, 'retry', 'backoff']);
  }
  if (rule.sessionPersistence !== undefined) rep.warn([...p, 'sessionPersistence'], 'sessionPersistence is not supported by Remora yet: ignored (use a DestinationRule consistentHash httpCookie)');
}

function checkGrpcRule(rep: Rep, rule: Obj, p: FieldPath, opts: GatewayValidateOptions): void {
  listOf(rule.matches).forEach((raw, j) => {
    const m = objOf(raw);
    if (m === undefined) return;
    const mp = [...p, 'matches', j];
    const method = objOf(m.method);
    if (method !== undefined) {
      const type = strOf(method.type) ?? 'Exact';
      const service = strOf(method.service);
      const meth = strOf(method.method);
      if ((service ?? '') === '' && (meth ?? '') === '') rep.error([...mp, 'method'], "One or both of 'service' or 'method' must be specified");
      for (const [k, v, re] of [['service', service, GRPC_SERVICE], ['method', meth, GRPC_METHOD]] as const) {
        if (v === undefined || v === '') continue;
        if (type === 'Exact' && !re.test(v)) rep.error([...mp, 'method', k], `${k} must only contain valid characters (matching ${re.source})`);
        if (type === 'RegularExpression') {
          const why = opts.checkRegex(v);
          if (why !== undefined) rep.error([...mp, 'method', k], why);
        }
      }
    }
    checkValueMatches(rep, m.headers, [...mp, 'headers'], opts, 'header');
  });
  checkFilterList(rep, rule.filters, [...p, 'filters'], true);
  listOf(rule.backendRefs).forEach((b, j) => checkBackendRef(rep, b, [...p, 'backendRefs', j], true, true));
  if (rule.sessionPersistence !== undefined) rep.warn([...p, 'sessionPersistence'], 'sessionPersistence is not supported by Remora yet: ignored');
}

/** A Gateway API Duration (GEP-2257): 1 to 4 `<digits><h|m|s|ms>` terms. Returns ms, or undefined (reported). */
function checkDuration(rep: Rep, v: unknown, path: FieldPath): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') return undefined; // the structural pass reported the type
  const ms = gatewayDurationMs(v);
  if (ms === undefined) rep.error(path, `invalid duration "${v}": 1 to 4 terms of up to 5 digits with a unit h, m, s or ms (GEP-2257), e.g. "10s", "1m30s", "500ms"`);
  return ms;
}

/** Problems confined to one rule (`spec.rules[i]…`), by rule index; the rest (parentRefs, metadata …) under -1. */
export function problemsByRule(errors: readonly ConfigError[]): Map<number, ConfigError[]> {
  const out = new Map<number, ConfigError[]>();
  for (const e of errors) {
    const m = /^spec\.rules\[(\d+)\]/.exec(e.field);
    const k = m ? Number(m[1]) : -1;
    const l = out.get(k);
    if (l === undefined) out.set(k, [e]); else l.push(e);
  }
  return out;
}
