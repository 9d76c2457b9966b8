/**
 * Istio `security.istio.io` RequestAuthentication for the workload this sidecar serves: end-user JWTs verified at
 * inbound, with Envoy's jwt_authn semantics as Istio configures it (one provider per `jwtRules` entry, requirement
 * "allow missing"):
 * - the configured output headers (`outputPayloadToHeader`, `outputClaimToHeaders`) are removed from every request
 *   before anything is verified: only a verified token sets them (`outputHeaders`);
 * - every token in every location a rule reads is verified; one that does not verify is a 401 even beside a valid one;
 * - no token in any location → the request passes, with no request principal (an AuthorizationPolicy
 *   `requestPrincipals` rule then decides);
 * - a token whose `iss` no rule names → treated as missing (Envoy's allow_missing passes an unknown issuer);
 * - a token of a known issuer that does not verify (signature, expiry with 60 s of clock skew, audiences, malformed)
 *   → 401 with `www-authenticate: Bearer realm="…", error="invalid_token"` and Envoy's message;
 * - valid tokens → request principal `<iss>/<sub>` of the first, audiences and presenter (`azp`) and claims for
 *   AuthorizationPolicy, `outputPayloadToHeader` / `outputClaimToHeaders` headers, and the token headers removed
 *   unless `forwardOriginalToken`.
 * Keys: `jwks` inline, `jwksUri` fetched and cached (jwks.ts: https only unless the issuer is allowed plain http,
 * bounded, the last good set kept while a refetch fails), or neither (OpenID discovery:
 * `<issuer>/.well-known/openid-configuration` → `jwks_uri`, under the same rules). Verification is jose's
 * `jwtVerify`. Compilation is pure; verification does I/O only to fetch keys.
 */
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { selectorMatches, type LabelSelector } from '../authz/label-selector.js';
import type { FetchLimits, RemoteJwks } from './jwks.js';
import { urlRefusal } from './jwks-url.js';
import { detailsOf } from '../errors.js';

type Jose = typeof import('jose');
type JwksModule = typeof import('./jwks.js');
let runtime: Promise<{ jose: Jose; jwks: JwksModule }> | undefined;
/**
 * jose and the key-set fetcher (node:https), imported when the first token is to be verified: a sidecar without
 * end-user JWTs never loads them (~2.5 MB of private memory, and TLS; docs/performance.md).
 */
function jwtRuntime(): Promise<{ jose: Jose; jwks: JwksModule }> {
  runtime ??= Promise.all([import('jose'), import('./jwks.js')]).then(([jose, jwks]) => ({ jose, jwks }));
  return runtime;
}

/** Structural: a Remora `Resource` of kind RequestAuthentication fits. */
export interface RequestAuthenticationLike {
  metadata: { name?: string; namespace?: string };
  spec?: Record<string, unknown>;
}

export interface JwtRuleSpec {
  issuer: string;
  audiences?: string[];
  jwksUri?: string;
  jwks?: string;
  fromHeaders?: Array<{ name: string; prefix?: string }>;
  fromParams?: string[];
  fromCookies?: string[];
  outputPayloadToHeader?: string;
  outputClaimToHeaders?: Array<{ header: string; claim: string }>;
  forwardOriginalToken?: boolean;
  /** JWKS fetch timeout, e.g. "5s". */
  timeout?: string;
}

/** The verified end user, for AuthorizationPolicy (`requestPrincipals`, `request.auth.*`). */
export interface RequestAuth {
  /** `<iss>/<sub>`. */
  principal: string;
  audiences: string[];
  presenter: string | undefined;
  claims: Readonly<Record<string, unknown>>;
}

export type AuthnResult =
  | { ok: true; auth: RequestAuth | undefined; setHeaders: Array<[string, string]>; removeHeaders: string[] }
  | { ok: false; status: 401; message: string; details: string };

const MISSING: AuthnResult = Object.freeze({ ok: true as const, auth: undefined, setHeaders: [], removeHeaders: [] });

/** Where a token was found: the header (lowercase) it came from, if any. */
interface Found {
  token: string;
  header: string | undefined;
}

interface Location {
  header?: string;
  prefix?: string;
  param?: string;
  cookie?: string;
}

interface CompiledRule {
  issuer: string;
  audiences: string[];
  keys: JWTVerifyGetKey;
  locations: Location[];
  payloadHeader: string | undefined;
  claimHeaders: Array<{ header: string; claim: string }>;
  forward: boolean;
}

/** Envoy's default token locations when a rule names none: `Authorization: Bearer <t>`, then `?access_token=`. */
const DEFAULT_LOCATIONS: readonly Location[] = [{ header: 'authorization', prefix: 'Bearer ' }, { param: 'access_token' }];

/** Envoy jwt_authn's clock skew allowance. */
const CLOCK_SKEW_S = 60;

export interface AuthnWorkload {
  namespace: string;
  labels: Readonly<Record<string, string>>;
  rootNamespace: string;
}

export interface RequestAuthenticatorOptions {
  /** Issuers whose keys (jwksUri, OpenID discovery) may be fetched over plain http: `--jwks-allow-http`. */
  allowHttpIssuers?: readonly string[];
  /** Key-set fetches: extra CAs (tests), size cap, cache and cooldown; the rule's `timeout` (default 5 s) bounds each. */
  jwks?: Omit<FetchLimits, 'timeoutMs'> & { cacheMs?: number; cooldownMs?: number; now?: () => number };
  /** A refetch failed and the last good key set stays in use. */
  onStaleKeys?: (url: string, error: string) => void;
}

/** The RequestAuthentication policies that select the workload, compiled. `active` false = none applies. */
export class RequestAuthenticator {
  readonly rules: CompiledRule[] = [];
  /** `ns/name` of the policies in force. */
  readonly policies: string[] = [];
  readonly warnings: string[] = [];
  private readonly byIssuer = new Map<string, CompiledRule[]>();
  private readonly locations: Location[] = [];
  /** Every output header any rule sets (lowercase): removed from each request before verification. */
  readonly outputHeaders: ReadonlySet<string>;
  /** The remote key sets, for /config_dump and tests. */
  verified = 0;
  rejected = 0;

  constructor(policies: readonly RequestAuthenticationLike[], workload: AuthnWorkload, private readonly opts: RequestAuthenticatorOptions = {}) {
    for (const p of policies) {
      const ns = p.metadata.namespace ?? '';
      const spec = p.spec ?? {};
      if (!appliesTo(spec, ns, workload)) continue;
      this.policies.push(`${ns}/${p.metadata.name ?? ''}`);
      if (spec.targetRef !== undefined || spec.targetRefs !== undefined) this.warnings.push(`${ns}/${p.metadata.name}: targetRef(s) select gateways and waypoints; ignored by a sidecar`);
      for (const raw of Array.isArray(spec.jwtRules) ? (spec.jwtRules as JwtRuleSpec[]) : []) {
        const rule = this.compileRule(raw);
        this.rules.push(rule);
        const list = this.byIssuer.get(rule.issuer) ?? [];
        list.push(rule);
        this.byIssuer.set(rule.issuer, list);
        for (const l of rule.locations) {
          if (!this.locations.some((x) => sameLocation(x, l))) this.locations.push(l);
        }
      }
    }
    const out = new Set<string>();
    for (const r of this.rules) {
      if (r.payloadHeader !== undefined) out.add(r.payloadHeader);
      for (const c of r.claimHeaders) out.add(c.header);
    }
    this.outputHeaders = out;
  }

  get active(): boolean {
    return this.rules.length > 0;
  }

  /**
   * Whether any location a rule reads holds a token (the request then waits for verification). `raw`: the request's
   * header lines as [name, value, …]; given, a header location reads every line of its header (the `headers` view
   * keeps one `Authorization` only, as node:http does), as Envoy does.
   */
  hasToken(headers: Readonly<Record<string, string | string[] | undefined>>, query: string, raw?: readonly string[]): boolean {
    return this.extract(headers, query, raw).length > 0;
  }

  /**
   * Every token in every location a rule reads, in location order (header locations first, in rule order), once each.
   * A header location with a prefix takes every token that follows the prefix anywhere in any line of the header
   * (Envoy finds `Bearer ` anywhere in the header's values): `Basic …, Bearer <t>` and a second `Authorization` line
   * are read too, never passed on unverified. Every cookie of a cookie location's name counts.
   */
  extract(headers: Readonly<Record<string, string | string[] | undefined>>, query: string, raw?: readonly string[]): Found[] {
    const out: Found[] = [];
    const add = (token: string, header: string | undefined): void => {
      if (token !== '' && !out.some((f) => f.token === token && f.header === header)) out.push({ token, header });
    };
    let params: URLSearchParams | undefined;
    for (const l of this.locations) {
      if (l.header !== undefined) {
        const prefix = l.prefix ?? '';
        for (const s of raw !== undefined ? headerLines(raw, l.header) : viewValues(headers[l.header])) {
          if (prefix === '') add(s.trim(), l.header);
          else for (const t of tokensAfter(s, prefix)) add(t, l.header);
        }
      } else if (l.param !== undefined && query !== '') {
        params ??= new URLSearchParams(query);
        for (const t of params.getAll(l.param)) add(t, undefined);
      } else if (l.cookie !== undefined) {
        for (const t of cookieValues(headers.cookie, l.cookie)) add(t, undefined);
      }
    }
    return out;
  }

  /** Verify every token of a request (see the module comment for the outcomes); `raw` as for hasToken. */
  async authenticate(headers: Readonly<Record<string, string | string[] | undefined>>, query: string, raw?: readonly string[]): Promise<AuthnResult> {
    const found = this.extract(headers, query, raw);
    if (found.length === 0) return MISSING;
    const { jose } = await jwtRuntime();
    const valid: Array<{ rule: CompiledRule; payload: JWTPayload; found: Found }> = [];
    for (const f of found) {
      let iss: string | undefined;
      try {
        iss = jose.decodeJwt(f.token).iss;
      } catch {
        return this.reject('Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections');
      }
      const candidates = iss === undefined ? undefined : this.byIssuer.get(iss);
      // An issuer no rule names: as if there were no token (Envoy's allow_missing requirement passes JwtUnknownIssuer).
      if (candidates === undefined) continue;
      let last: string | undefined;
      let ok = false;
      for (const rule of candidates) {
        // A rule only sees its own locations: a token found where no rule of its issuer looks is, to those rules,
        // missing (and to the others, of an unknown issuer).
        if (!readsFrom(rule, f)) continue;
        try {
          const { payload } = await jose.jwtVerify(f.token, rule.keys, {
            issuer: rule.issuer,
            clockTolerance: CLOCK_SKEW_S,
            ...(rule.audiences.length > 0 ? { audience: rule.audiences } : {}),
          });
          valid.push({ rule, payload, found: f });
          ok = true;
          break;
        } catch (e) {
          last = envoyMessage(e, jose.errors);
        }
      }
      // One token that does not verify fails the request, whatever the others are (Envoy verifies each it extracts).
      if (!ok && last !== undefined) return this.reject(last);
    }
    if (valid.length === 0) return MISSING;
    this.verified++;
    return this.accept(valid);
  }

  private accept(valid: ReadonlyArray<{ rule: CompiledRule; payload: JWTPayload; found: Found }>): AuthnResult {
    const setHeaders: Array<[string, string]> = [];
    const removeHeaders: string[] = [];
    for (const { rule, payload, found } of valid) {
      if (rule.payloadHeader !== undefined) setHeaders.push([rule.payloadHeader, Buffer.from(JSON.stringify(payload)).toString('base64url')]);
      for (const { header, claim } of rule.claimHeaders) {
        const v = (payload as Record<string, unknown>)[claim];
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') setHeaders.push([header, String(v)]);
      }
      if (!rule.forward && found.header !== undefined && !removeHeaders.includes(found.header)) removeHeaders.push(found.header);
    }
    // The request principal is the first verified token's (location order).
    const payload = valid[0]!.payload;
    const aud = payload.aud === undefined ? [] : Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    const azp = (payload as Record<string, unknown>).azp;
    return {
      ok: true,
      auth: { principal: `${payload.iss ?? ''}/${payload.sub ?? ''}`, audiences: aud, presenter: typeof azp === 'string' ? azp : undefined, claims: payload },
      setHeaders,
      removeHeaders,
    };
  }

  private reject(message: string): AuthnResult {
    this.rejected++;
    return { ok: false, status: 401, message, details: detailsOf.jwtDenied(message) };
  }

  private compileRule(r: JwtRuleSpec): CompiledRule {
    const locations: Location[] = [];
    for (const h of r.fromHeaders ?? []) locations.push({ header: h.name.toLowerCase(), ...(h.prefix !== undefined ? { prefix: h.prefix } : {}) });
    for (const p of r.fromParams ?? []) locations.push({ param: p });
    for (const c of r.fromCookies ?? []) locations.push({ cookie: c });
    if (locations.length === 0) locations.push(...DEFAULT_LOCATIONS);
    return {
      issuer: r.issuer,
      audiences: r.audiences ?? [],
      keys: this.keySource(r),
      locations,
      payloadHeader: r.outputPayloadToHeader?.toLowerCase() || undefined,
      claimHeaders: (r.outputClaimToHeaders ?? []).map((c) => ({ header: c.header.toLowerCase(), claim: c.claim })),
      forward: r.forwardOriginalToken === true,
    };
  }

  /**
   * Where a rule's keys come from: inline `jwks`; `jwksUri`; or OpenID discovery from the issuer. Remote sources must
   * be https unless the issuer is named by `allowHttpIssuers`; a refused URL makes every token of the rule fail
   * ("Jwks remote fetch is failed") and is reported in `warnings`.
   */
  private keySource(r: JwtRuleSpec): JWTVerifyGetKey {
    const timeoutMs = parseSeconds(r.timeout) ?? 5000;
    if (r.jwks !== undefined && r.jwks !== '') {
      // Parsed now, so a bad inline key set fails with the config; the key set itself is made on first use.
      const jwks = JSON.parse(r.jwks) as Parameters<Jose['createLocalJWKSet']>[0];
      let local: JWTVerifyGetKey | undefined;
      return async (header, token) => (local ??= (await jwtRuntime()).jose.createLocalJWKSet(jwks))(header, token);
    }
    const allowHttp = this.opts.allowHttpIssuers?.includes(r.issuer) === true;
    const limits: FetchLimits = { timeoutMs, ...(this.opts.jwks?.maxBytes !== undefined ? { maxBytes: this.opts.jwks.maxBytes } : {}), ...(this.opts.jwks?.ca !== undefined ? { ca: this.opts.jwks.ca } : {}) };
    const remote = (url: string): JWTVerifyGetKey => {
      const refusal = urlRefusal(url, allowHttp);
      if (refusal !== undefined) {
        this.warnings.push(`issuer ${r.issuer}: ${refusal}; its tokens are refused (401)`);
        return refused(refusal);
      }
      let set: RemoteJwks | undefined;
      return async (header, token) => {
        if (set === undefined) {
          const { jwks } = await jwtRuntime();
          set ??= new jwks.RemoteJwks(url, {
            ...limits,
            ...(this.opts.jwks?.cacheMs !== undefined ? { cacheMs: this.opts.jwks.cacheMs } : {}),
            ...(this.opts.jwks?.cooldownMs !== undefined ? { cooldownMs: this.opts.jwks.cooldownMs } : {}),
            ...(this.opts.jwks?.now !== undefined ? { now: this.opts.jwks.now } : {}),
            ...(this.opts.onStaleKeys !== undefined ? { onStale: this.opts.onStaleKeys } : {}),
          });
        }
        return set.getKey(header, token);
      };
    };
    if (r.jwksUri !== undefined && r.jwksUri !== '') return remote(r.jwksUri);
    // OpenID discovery, once, on first use (and again after a failure); the document and the key set under the same rules.
    const url = `${r.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    const refusal = urlRefusal(url, allowHttp);
    if (refusal !== undefined) {
      this.warnings.push(`issuer ${r.issuer}: OpenID discovery ${refusal}; its tokens are refused (401)`);
      return refused(refusal);
    }
    let keys: Promise<JWTVerifyGetKey> | undefined;
    const discover = async (): Promise<JWTVerifyGetKey> => {
      const { jose, jwks } = await jwtRuntime();
      const doc = (await jwks.fetchJson(url, limits)) as { jwks_uri?: unknown };
      if (typeof doc !== 'object' || doc === null || typeof doc.jwks_uri !== 'string') throw new jose.errors.JWKSInvalid(`OpenID discovery ${url}: no jwks_uri`);
      const jwksUri = doc.jwks_uri;
      const bad = urlRefusal(jwksUri, allowHttp);
      if (bad !== undefined) throw new jose.errors.JWKSInvalid(`OpenID discovery ${url}: jwks_uri ${bad}`);
      return remote(jwksUri);
    };
    return async (header, token) => {
      keys ??= discover().catch((e: unknown) => { keys = undefined; throw e; });
      return (await keys)(header, token);
    };
  }
}

function appliesTo(spec: Record<string, unknown>, ns: string, w: AuthnWorkload): boolean {
  const sel = spec.selector as LabelSelector | undefined;
  if (ns === w.rootNamespace && ns !== w.namespace) return sel === undefined || sel === null; // mesh-wide: no selector only
  if (ns !== w.namespace) return false;
  if (sel === undefined || sel === null) return true;
  return selectorMatches({ matchLabels: sel.matchLabels ?? {} }, w.labels);
}

function sameLocation(a: Location, b: Location): boolean {
  return a.header === b.header && (a.prefix ?? '') === (b.prefix ?? '') && a.param === b.param && a.cookie === b.cookie;
}

/** Whether the rule reads the location the token was found in (a provider only sees its own locations). */
function readsFrom(rule: CompiledRule, found: Found): boolean {
  if (found.header === undefined) return rule.locations.some((l) => l.param !== undefined || l.cookie !== undefined);
  return rule.locations.some((l) => l.header === found.header);
}

/** The values of every cookie named `name` (an app may read any of them). */
function cookieValues(v: string | string[] | undefined, name: string): string[] {
  if (v === undefined) return [];
  const out: string[] = [];
  for (const part of (Array.isArray(v) ? v.join('; ') : v).split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      const t = part.slice(eq + 1).trim();
      if (t !== '') out.push(t);
    }
  }
  return out;
}

function viewValues(v: string | string[] | undefined): readonly string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** The value of every line of header `name` (lowercase) in flat raw headers. */
function headerLines(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length === name.length && n.toLowerCase() === name) out.push(raw[i + 1]!);
  }
  return out;
}

/**
 * Each token following `prefix` (case-insensitively) anywhere in `value`: what comes after the prefix and any blanks,
 * up to the next comma or blank (`Basic x, Bearer <t>` → `<t>`; `Bearer !!` → `!!`, which then fails to verify).
 */
function tokensAfter(value: string, prefix: string): string[] {
  const lower = value.toLowerCase();
  const p = prefix.toLowerCase();
  const out: string[] = [];
  for (let i = lower.indexOf(p); i >= 0; i = lower.indexOf(p, i + 1)) {
    let j = i + p.length;
    while (j < value.length && (value[j] === ' ' || value[j] === '\t')) j++;
    let k = j;
    while (k < value.length && value[k] !== ',' && value[k] !== ' ' && value[k] !== '\t') k++;
    if (k > j) out.push(value.slice(j, k));
  }
  return out;
}

function parseSeconds(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(s);
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

/** A key source for a URL that may not be fetched: every token of the rule fails ("Jwks remote fetch is failed"). */
function refused(refusal: string): JWTVerifyGetKey {
  return async () => { throw new (await jwtRuntime()).jose.errors.JWKSInvalid(refusal); };
}

/** Envoy jwt_authn's messages for the failures jose reports. */
function envoyMessage(e: unknown, joseErrors: Jose['errors']): string {
  if (e instanceof joseErrors.JWTExpired) return 'Jwt is expired';
  if (e instanceof joseErrors.JWTClaimValidationFailed) {
    if (e.claim === 'aud') return 'Audiences in Jwt are not allowed';
    if (e.claim === 'nbf') return 'Jwt not yet valid';
    if (e.claim === 'iss') return 'Jwt issuer is not configured';
    return 'Jwt verification fails';
  }
  if (e instanceof joseErrors.JWKSNoMatchingKey) return 'Jwks doesn\'t have key to match kid or alg from Jwt';
  if (e instanceof joseErrors.JWKSTimeout || e instanceof joseErrors.JWKSInvalid) return 'Jwks remote fetch is failed';
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return 'Jwt verification fails';
  if (e instanceof joseErrors.JWTInvalid || e instanceof joseErrors.JWSInvalid) return 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections';
  // A fetch that failed (refused, DNS) or answered other than 200 with a key set (jose: "Expected 200 OK from the JSON
  // Web Key Set HTTP response").
  if (e instanceof TypeError || (e instanceof joseErrors.JOSEError && /JSON Web Key Set/i.test(e.message))) return 'Jwks remote fetch is failed';
  return 'Jwt verification fails';
}
