/**
 * Istio `security.istio.io` AuthorizationPolicy evaluation for the workload this sidecar serves, in Istio's
 * order: CUSTOM (no ext-authz provider here: a matching CUSTOM policy denies, fail closed), then DENY, then
 * ALLOW (if any ALLOW policy applies, a request must match one), AUDIT ignored. One evaluator for HTTP requests and
 * L4 connections, the latter with Istio's TCP semantics (istiod's RBAC builder for the TCP filter chain): a DENY or
 * CUSTOM rule's HTTP-only fields are removed, so it matches more; an ALLOW rule with an HTTP-only field is skipped,
 * so it matches nothing. Pure.
 */
import { ruleWithTrustDomains } from './trust-domain.js';
import { cidrContains, parseCidr, parseIp, type Cidr } from './cidr.js';
import { detailsOf, E } from '../errors.js';

/** Structural: a Remora `Resource` of kind AuthorizationPolicy fits. */
export interface AuthorizationPolicyLike {
  metadata: { name?: string; namespace?: string };
  spec?: Record<string, unknown>;
}

export interface AuthzWorkload {
  namespace: string;
  labels: Readonly<Record<string, string>>;
  /** Istio root namespace (meshConfig.rootNamespace): its policies apply mesh-wide. Default `istio-system`. */
  rootNamespace?: string;
  /**
   * The mesh's trust domain first, then its `trustDomainAliases`: principals of any of them match in all of them
   * (Istio's trust domain migration). Empty/absent: principals are matched as written.
   */
  trustDomains?: readonly string[];
}

export interface AuthzRequest {
  /** Downstream peer address (Istio `source.ip`). */
  sourceIp: string;
  /** Original client address (Istio `remote.ip`, from X-Forwarded-For with numTrustedProxies); default sourceIp. */
  remoteIp?: string;
  /** Peer namespace, from the verified mTLS certificate only; undefined on plaintext (then `namespaces` never match). */
  sourceNamespace?: string;
  /** mTLS peer identity `cluster.local/ns/x/sa/y`; undefined on plaintext (then `principals` never match). */
  sourcePrincipal?: string;
  /** The end user a RequestAuthentication verified (`<iss>/<sub>`, audiences, presenter, claims); undefined without a valid JWT. */
  requestAuth?: { principal: string; audiences: readonly string[]; presenter: string | undefined; claims: Readonly<Record<string, unknown>> };
  method: string;
  /** Request path; the query string is ignored for `paths`. */
  path: string;
  /** Host / :authority. */
  host: string;
  /** Destination (listener / app) port. */
  port: number;
  /** Lowercase header names. */
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface AuthzDecision {
  allowed: boolean;
  /** `ns/name` of the deciding policy (the matching DENY/CUSTOM or ALLOW policy). */
  policy?: string;
  /**
   * Envoy RESPONSE_CODE_DETAILS for a denial: `rbac_access_denied_matched_policy[ns[NS]-policy[NAME]-rule[I]]`
   * (Istio's RBAC policy naming) or `rbac_access_denied_matched_policy[none]` when no ALLOW policy matched.
   */
  details?: string;
}

/** What an L4 connection offers to AuthorizationPolicy: no method, path, host, headers or request principal. */
export interface AuthzConnection {
  sourceIp: string;
  /** From the verified mTLS certificate only. */
  sourceNamespace?: string;
  sourcePrincipal?: string;
  /** The destination (app) port. */
  port: number;
}

export type AuthzEvaluator = ((req: AuthzRequest) => AuthzDecision) & {
  /** An L4 connection (TCP proxy), with Istio's TCP semantics. */
  readonly tcp: (conn: AuthzConnection) => AuthzDecision;
  /** Fields and conditions Remora cannot evaluate, with how they were treated. */
  readonly warnings: readonly string[];
  /** Whether any policy applies to this workload (when false, every request is allowed). */
  readonly active: boolean;
};

type Matcher = (req: AuthzRequest) => boolean;

interface CompiledPolicy {
  id: string;
  ns: string;
  name: string;
  action: 'ALLOW' | 'DENY' | 'CUSTOM';
  rules: Matcher[];
  /** The same rules on an L4 connection (Istio's TCP filter chain). */
  tcpRules: Matcher[];
}

export const DEFAULT_ROOT_NAMESPACE = 'istio-system';

export function compileAuthorizationPolicies(policies: readonly AuthorizationPolicyLike[], workload: AuthzWorkload): AuthzEvaluator {
  const root = workload.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const warnings: string[] = [];
  const compiled: CompiledPolicy[] = [];
  for (const p of policies) {
    const ns = p.metadata.namespace ?? 'default';
    const name = p.metadata.name ?? '';
    if (ns !== workload.namespace && ns !== root) continue;
    const spec = (p.spec ?? {}) as Record<string, unknown>;
    if (spec.targetRef || spec.targetRefs) continue; // targetRef policies bind to gateways/waypoints, not sidecars
    const selector = (spec.selector as { matchLabels?: Record<string, string> } | undefined)?.matchLabels;
    if (selector && !Object.entries(selector).every(([k, v]) => workload.labels[k] === v)) continue;
    const action = typeof spec.action === 'string' ? spec.action : 'ALLOW';
    if (action === 'AUDIT') continue; // AUDIT only marks requests for a logging provider
    if (action !== 'ALLOW' && action !== 'DENY' && action !== 'CUSTOM') {
      warnings.push(`${ns}/${name}: unknown action ${action}; policy ignored`);
      continue;
    }
    const id = `${ns}/${name}`;
    const warn = (msg: string): void => {
      warnings.push(`${id}: ${msg}`);
    };
    if (action === 'CUSTOM') warn('CUSTOM (ext-authz) is not supported: requests matching its rules are denied (fail closed)');
    const tds = workload.trustDomains ?? [];
    const rules = Array.isArray(spec.rules) ? (spec.rules as unknown[]).map((r) => ruleWithTrustDomains((r ?? {}) as Record<string, unknown>, tds)) : [];
    compiled.push({
      id,
      ns,
      name,
      action,
      rules: rules.map((r, i) => compileRule((r ?? {}) as Record<string, unknown>, action !== 'ALLOW', false, (m) => warn(`rules[${i}]: ${m}`))),
      // Warned once, above: the TCP compile sees the same fields.
      tcpRules: rules.map((r) => compileRule((r ?? {}) as Record<string, unknown>, action !== 'ALLOW', true, noWarn)),
    });
  }
  const custom = compiled.filter((p) => p.action === 'CUSTOM');
  const deny = compiled.filter((p) => p.action === 'DENY');
  const allow = compiled.filter((p) => p.action === 'ALLOW');
  const firstMatch = (list: CompiledPolicy[], req: AuthzRequest, tcp: boolean): { p: CompiledPolicy; rule: number } | undefined => {
    for (const p of list) {
      const rule = (tcp ? p.tcpRules : p.rules).findIndex((m) => m(req));
      if (rule >= 0) return { p, rule };
    }
    return undefined;
  };
  const rbacName = (p: CompiledPolicy, rule: number): string => detailsOf.rbacDenied(p.ns, p.name, rule);
  const decide = (req: AuthzRequest, tcp: boolean): AuthzDecision => {
    const c = firstMatch(custom, req, tcp) ?? firstMatch(deny, req, tcp);
    if (c) return { allowed: false, policy: c.p.id, details: rbacName(c.p, c.rule) };
    if (allow.length === 0) return { allowed: true };
    const a = firstMatch(allow, req, tcp);
    if (a) return { allowed: true, policy: a.p.id };
    return { allowed: false, details: E.rbacDenied.details };
  };
  const evaluate = (req: AuthzRequest): AuthzDecision => decide(req, false);
  // The TCP rules read no HTTP field: the connection is given empty ones.
  const tcp = (conn: AuthzConnection): AuthzDecision => decide({ ...conn, method: '', path: '', host: '', headers: NO_HEADERS }, true);
  return Object.assign(evaluate, { tcp, warnings, active: compiled.length > 0 });
}

const NO_HEADERS: Readonly<Record<string, string | undefined>> = Object.freeze({});
function noWarn(): void { /* the HTTP compile warned */ }
const never: Matcher = () => false;

/**
 * One rule: from (any source) AND to (any operation) AND every when condition; an absent section matches all.
 * `lenient` is true for DENY/CUSTOM: a field Remora cannot evaluate is dropped from the rule (it matches more,
 * so it denies more); for ALLOW such a rule never matches. `tcp`: the rule for an L4 connection, where the HTTP-only
 * fields (methods, paths, hosts, requestPrincipals, request.headers, request.auth.*) are treated the same way, as
 * istiod does when it builds the TCP filter chain's RBAC (an ALLOW rule with one is skipped).
 */
function compileRule(rule: Record<string, unknown>, lenient: boolean, tcp: boolean, warn: (m: string) => void): Matcher {
  const parts: Matcher[] = [];
  const unsupported = (what: string): void => {
    warn(`${what} is not supported; ${lenient ? 'ignored (the DENY rule matches more)' : 'the ALLOW rule never matches'}`);
    if (!lenient) parts.push(never);
  };
  /**
   * Whether an HTTP-only field is matched: always on HTTP; on TCP never — dropped from a DENY rule (it matches more),
   * and an ALLOW rule that has one never matches.
   */
  const httpField = (): boolean => {
    if (!tcp) return true;
    if (!lenient) parts.push(never);
    return false;
  };
  const from = Array.isArray(rule.from) ? (rule.from as Array<{ source?: Record<string, unknown> }>) : undefined;
  if (from && from.length > 0) {
    const sources = from.map((f) => compileSource(f.source ?? {}, unsupported, httpField));
    parts.push((req) => sources.some((s) => s(req)));
  }
  const to = Array.isArray(rule.to) ? (rule.to as Array<{ operation?: Record<string, unknown> }>) : undefined;
  if (to && to.length > 0) {
    const ops = to.map((t) => compileOperation(t.operation ?? {}, unsupported, httpField));
    parts.push((req) => ops.some((o) => o(req)));
  }
  const when = Array.isArray(rule.when) ? (rule.when as Array<{ key?: string; values?: string[]; notValues?: string[] }>) : [];
  for (const c of when) {
    const m = compileCondition(c, unsupported, httpField);
    if (m) parts.push(m);
  }
  return (req) => parts.every((m) => m(req));
}

const strings = (v: unknown): string[] | undefined => (Array.isArray(v) ? v.map(String) : undefined);

/** Istio string match: exact, `prefix*`, `*suffix`, or `*` (any non-empty value). */
export function stringMatch(pattern: string, value: string): boolean {
  if (pattern === '*') return value !== '';
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  return value === pattern;
}

/** `values` (any must match) and `notValues` (none may match) over one possibly-absent value. */
function valuesMatcher(values: string[] | undefined, notValues: string[] | undefined, cmp: (pattern: string, v: string) => boolean) {
  return (v: string | undefined): boolean => {
    if (values && values.length > 0 && (v === undefined || !values.some((p) => cmp(p, v)))) return false;
    if (notValues && notValues.length > 0 && v !== undefined && notValues.some((p) => cmp(p, v))) return false;
    return true;
  };
}

/** `values` / `notValues` over a possibly-absent list: any element may match; none may match a `notValues` pattern. */
function listMatcher(values: string[] | undefined, notValues: string[] | undefined) {
  return (vs: readonly string[] | undefined): boolean => {
    if (values && values.length > 0 && (vs === undefined || !vs.some((v) => values.some((p) => stringMatch(p, v))))) return false;
    if (notValues && notValues.length > 0 && vs !== undefined && vs.some((v) => notValues.some((p) => stringMatch(p, v)))) return false;
    return true;
  };
}

/** A claim at `path` as strings (a string, a number or boolean as text, or a list of them); undefined if absent. */
function claimValues(claims: Readonly<Record<string, unknown>> | undefined, path: readonly string[]): string[] | undefined {
  let v: unknown = claims;
  for (const k of path) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return [String(v)];
  if (Array.isArray(v)) return v.filter((x) => typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean').map(String);
  return undefined;
}

function ipMatcher(cidrs: string[] | undefined, notCidrs: string[] | undefined): (ip: string) => boolean {
  const parse = (l: string[] | undefined) => (l ?? []).map(parseCidr).filter((c): c is Cidr => c !== undefined);
  const yes = parse(cidrs);
  const no = parse(notCidrs);
  const anyYes = (cidrs ?? []).length > 0;
  return (ipText) => {
    const ip = parseIp(ipText);
    if (anyYes && (!ip || !yes.some((c) => cidrContains(c, ip)))) return false;
    if (ip && no.some((c) => cidrContains(c, ip))) return false;
    return true;
  };
}

function compileSource(src: Record<string, unknown>, unsupported: (what: string) => void, httpField: () => boolean): Matcher {
  const ms: Matcher[] = [];
  if (src.principals || src.notPrincipals) {
    const m = valuesMatcher(strings(src.principals), strings(src.notPrincipals), stringMatch);
    ms.push((req) => m(req.sourcePrincipal));
  }
  if ((src.requestPrincipals || src.notRequestPrincipals) && httpField()) {
    // `<iss>/<sub>` of the JWT a RequestAuthentication verified; none without one.
    const m = valuesMatcher(strings(src.requestPrincipals), strings(src.notRequestPrincipals), stringMatch);
    ms.push((req) => m(req.requestAuth?.principal));
  }
  if (src.namespaces || src.notNamespaces) {
    const m = valuesMatcher(strings(src.namespaces), strings(src.notNamespaces), stringMatch);
    ms.push((req) => m(req.sourceNamespace));
  }
  if (src.ipBlocks || src.notIpBlocks) {
    const m = ipMatcher(strings(src.ipBlocks), strings(src.notIpBlocks));
    ms.push((req) => m(req.sourceIp));
  }
  if (src.remoteIpBlocks || src.notRemoteIpBlocks) {
    const m = ipMatcher(strings(src.remoteIpBlocks), strings(src.notRemoteIpBlocks));
    ms.push((req) => m(req.remoteIp ?? req.sourceIp));
  }
  for (const k of Object.keys(src)) {
    if (!['principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'].includes(k)) {
      unsupported(`from.source.${k}`);
    }
  }
  return (req) => ms.every((m) => m(req));
}

function hostWithoutPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end >= 0 ? host.slice(0, end + 1) : host;
  }
  const colon = host.lastIndexOf(':');
  return colon >= 0 && host.indexOf(':') === colon ? host.slice(0, colon) : host;
}

function compileOperation(op: Record<string, unknown>, unsupported: (what: string) => void, httpField: () => boolean): Matcher {
  const ms: Matcher[] = [];
  if ((op.methods || op.notMethods) && httpField()) {
    const m = valuesMatcher(strings(op.methods), strings(op.notMethods), (p, v) => p === v);
    ms.push((req) => m(req.method));
  }
  if ((op.paths || op.notPaths) && httpField()) {
    const m = valuesMatcher(strings(op.paths), strings(op.notPaths), stringMatch);
    ms.push((req) => {
      const q = req.path.search(/[?#]/);
      return m(q >= 0 ? req.path.slice(0, q) : req.path);
    });
  }
  if (op.ports || op.notPorts) {
    const m = valuesMatcher(strings(op.ports), strings(op.notPorts), (p, v) => p === v);
    ms.push((req) => m(String(req.port)));
  }
  if ((op.hosts || op.notHosts) && httpField()) {
    // Case-insensitive; a pattern matches the Host with or without its port.
    const cmp = (p: string, v: string): boolean => stringMatch(p.toLowerCase(), v.toLowerCase());
    const yes = strings(op.hosts) ?? [];
    const no = strings(op.notHosts) ?? [];
    ms.push((req) => {
      const forms = [req.host, hostWithoutPort(req.host)];
      if (yes.length > 0 && !forms.some((h) => yes.some((p) => cmp(p, h)))) return false;
      if (no.length > 0 && forms.some((h) => no.some((p) => cmp(p, h)))) return false;
      return true;
    });
  }
  for (const k of Object.keys(op)) {
    if (!['methods', 'notMethods', 'paths', 'notPaths', 'ports', 'notPorts', 'hosts', 'notHosts'].includes(k)) unsupported(`to.operation.${k}`);
  }
  return (req) => ms.every((m) => m(req));
}

function headerValue(req: AuthzRequest, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(',') : v;
}

/** `when` keys of HTTP requests only (Istio: an error on the TCP filter chain). */
const HTTP_ONLY_KEY = /^(request\.headers\[|request\.auth\.)/;

function compileCondition(c: { key?: string; values?: string[]; notValues?: string[] }, unsupported: (what: string) => void, httpField: () => boolean): Matcher | undefined {
  const key = c.key ?? '';
  const values = strings(c.values);
  const notValues = strings(c.notValues);
  if (HTTP_ONLY_KEY.test(key) && !httpField()) return undefined;
  // request.auth.claims[groups], nested: request.auth.claims[realm][roles]. A list claim matches if any element does.
  const claim = /^request\.auth\.claims((?:\[[^\]]+\])+)$/.exec(key);
  if (claim) {
    const path = [...claim[1]!.matchAll(/\[([^\]]+)\]/g)].map((x) => x[1]!);
    const m = listMatcher(values, notValues);
    return (req) => m(claimValues(req.requestAuth?.claims, path));
  }
  const header = /^request\.headers\[(.+)\]$/.exec(key);
  if (header) {
    const m = valuesMatcher(values, notValues, stringMatch);
    const name = header[1]!;
    return (req) => m(headerValue(req, name));
  }
  switch (key) {
    case 'source.ip': {
      const m = ipMatcher(values, notValues);
      return (req) => m(req.sourceIp);
    }
    case 'remote.ip': {
      const m = ipMatcher(values, notValues);
      return (req) => m(req.remoteIp ?? req.sourceIp);
    }
    case 'source.namespace': {
      const m = valuesMatcher(values, notValues, stringMatch);
      return (req) => m(req.sourceNamespace);
    }
    case 'source.principal': {
      const m = valuesMatcher(values, notValues, stringMatch);
      return (req) => m(req.sourcePrincipal);
    }
    case 'request.auth.principal': {
      const m = valuesMatcher(values, notValues, stringMatch);
      return (req) => m(req.requestAuth?.principal);
    }
    case 'request.auth.presenter': {
      const m = valuesMatcher(values, notValues, stringMatch);
      return (req) => m(req.requestAuth?.presenter);
    }
    case 'request.auth.audiences': {
      const m = listMatcher(values, notValues);
      return (req) => m(req.requestAuth?.audiences);
    }
    case 'destination.port': {
      const m = valuesMatcher(values, notValues, (p, v) => p === v);
      return (req) => m(String(req.port));
    }
    default:
      unsupported(`when key ${key}`);
      return undefined;
  }
}
