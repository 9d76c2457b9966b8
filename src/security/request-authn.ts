/**
 * Istio `security.istio.io` RequestAuthentication for the workload this sidecar serves: end-user JWTs verified at
 * inbound, with Envoy's jwt_authn semantics as Istio configures it (one provider per `jwtRules` entry, requirement
 * "allow missing"):
 * - no token in any location the rules read → the request passes, with no request principal (an
 *   AuthorizationPolicy `requestPrincipals` rule then decides);
 * - a token whose `iss` no rule names → treated as missing (Envoy's allow_missing passes an unknown issuer);
 * - a token of a known issuer that does not verify (signature, expiry with 60 s of clock skew, audiences, malformed)
 *   → 401 with `www-authenticate: Bearer realm="…", error="invalid_token"` and Envoy's message;
 * - a valid token → request principal `<iss>/<sub>`, audiences and presenter (`azp`) and claims for
 *   AuthorizationPolicy, `outputPayloadToHeader` / `outputClaimToHeaders` headers, and the token header removed
 *   unless `forwardOriginalToken`.
 * Keys: `jwks` inline, `jwksUri` fetched and cached (jose's remote key set: refetched on an unknown `kid`, at most
 * every 30 s), or neither (OpenID discovery: `<issuer>/.well-known/openid-configuration` → `jwks_uri`).
 * Verification is jose's `jwtVerify`. Compilation is pure; verification does I/O only to fetch keys. jose is imported
 * when the first token is to be verified (~2.5 MB of private memory a sidecar without end-user JWTs never needs).
 */
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { selectorMatches, type LabelSelector } from '../authz/label-selector.js';

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

type Jose = typeof import('jose');
let joseModule: Promise<Jose> | undefined;
/** jose, imported on first use. */
function jose(): Promise<Jose> {
  joseModule ??= import('jose');
  return joseModule;
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
  /** Fetch for OpenID discovery (tests pass their own); default global fetch. */
  fetch?: typeof fetch;
}

/** The RequestAuthentication policies that select the workload, compiled. `active` false = none applies. */
export class RequestAuthenticator {
  readonly rules: CompiledRule[] = [];
  /** `ns/name` of the policies in force. */
  readonly policies: string[] = [];
  readonly warnings: string[] = [];
  private readonly byIssuer = new Map<string, CompiledRule[]>();
  private readonly locations: Location[] = [];
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
  }

  get active(): boolean {
    return this.rules.length > 0;
  }

  /** The first token in any location a rule reads (header locations first, in rule order), or undefined. */
  extract(headers: Readonly<Record<string, string | string[] | undefined>>, query: string): Found | undefined {
    for (const l of this.locations) {
      if (l.header !== undefined) {
        const v = headers[l.header];
        const s = Array.isArray(v) ? v[0] : v;
        if (s === undefined) continue;
        const prefix = l.prefix ?? '';
        if (prefix !== '' && !s.toLowerCase().startsWith(prefix.toLowerCase())) continue;
        const t = s.slice(prefix.length).trim();
        if (t !== '') return { token: t, header: l.header };
      } else if (l.param !== undefined && query !== '') {
        const t = new URLSearchParams(query).get(l.param);
        if (t) return { token: t, header: undefined };
      } else if (l.cookie !== undefined) {
        const t = cookieValue(headers.cookie, l.cookie);
        if (t) return { token: t, header: undefined };
      }
    }
    return undefined;
  }

  /** Verify the token of a request (see the module comment for the outcomes). */
  async authenticate(headers: Readonly<Record<string, string | string[] | undefined>>, query: string): Promise<AuthnResult> {
    const found = this.extract(headers, query);
    if (found === undefined) return MISSING;
    const j = await jose();
    let iss: string | undefined;
    try {
      iss = j.decodeJwt(found.token).iss;
    } catch {
      return this.reject('Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections');
    }
    const candidates = iss === undefined ? undefined : this.byIssuer.get(iss);
    // An issuer no rule names: as if there were no token (Envoy's allow_missing requirement passes JwtUnknownIssuer).
    if (candidates === undefined) return MISSING;
    let last: string | undefined;
    for (const rule of candidates) {
      // A rule only sees its own locations: a token found where no rule of its issuer looks is, to those rules,
      // missing (and to the others, of an unknown issuer).
      if (!readsFrom(rule, found)) continue;
      try {
        const { payload } = await j.jwtVerify(found.token, rule.keys, {
          issuer: rule.issuer,
          clockTolerance: CLOCK_SKEW_S,
          ...(rule.audiences.length > 0 ? { audience: rule.audiences } : {}),
        });
        this.verified++;
        return this.accept(rule, payload, found);
      } catch (e) {
        last = envoyMessage(e, j.errors);
      }
    }
    return last === undefined ? MISSING : this.reject(last);
  }

  private accept(rule: CompiledRule, payload: JWTPayload, found: Found): AuthnResult {
    const setHeaders: Array<[string, string]> = [];
    if (rule.payloadHeader !== undefined) setHeaders.push([rule.payloadHeader, Buffer.from(JSON.stringify(payload)).toString('base64url')]);
    for (const { header, claim } of rule.claimHeaders) {
      const v = (payload as Record<string, unknown>)[claim];
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') setHeaders.push([header, String(v)]);
    }
    const removeHeaders = !rule.forward && found.header !== undefined ? [found.header] : [];
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
    return { ok: false, status: 401, message, details: `jwt_authn_access_denied{${message.replace(/[^A-Za-z0-9]+/g, '_').replace(/_+$/, '')}}` };
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

  private keySource(r: JwtRuleSpec): JWTVerifyGetKey {
    const timeoutDuration = parseSeconds(r.timeout) ?? 5000;
    // Key sets are made on first use (jose is imported then); inline keys are parsed now, so a bad one fails here.
    if (r.jwks !== undefined && r.jwks !== '') {
      const jwks = JSON.parse(r.jwks) as Parameters<Jose['createLocalJWKSet']>[0];
      let local: JWTVerifyGetKey | undefined;
      return async (header, token) => (local ??= (await jose()).createLocalJWKSet(jwks))(header, token);
    }
    if (r.jwksUri !== undefined && r.jwksUri !== '') {
      const uri = new URL(r.jwksUri);
      let set: JWTVerifyGetKey | undefined;
      return async (header, token) => (set ??= (await jose()).createRemoteJWKSet(uri, { timeoutDuration }))(header, token);
    }
    // OpenID discovery, once, on first use (and again after a failure).
    let remote: Promise<JWTVerifyGetKey> | undefined;
    const doFetch = this.opts.fetch ?? fetch;
    const discover = async (): Promise<JWTVerifyGetKey> => {
      const j = await jose();
      const url = `${r.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
      const res = await doFetch(url, { signal: AbortSignal.timeout(timeoutDuration) });
      if (!res.ok) throw new j.errors.JWKSInvalid(`OpenID discovery ${url}: HTTP ${res.status}`);
      const doc = (await res.json()) as { jwks_uri?: unknown };
      if (typeof doc.jwks_uri !== 'string') throw new j.errors.JWKSInvalid(`OpenID discovery ${url}: no jwks_uri`);
      return j.createRemoteJWKSet(new URL(doc.jwks_uri), { timeoutDuration });
    };
    return async (header, token) => {
      remote ??= discover().catch((e: unknown) => { remote = undefined; throw e; });
      return (await remote)(header, token);
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

function cookieValue(v: string | string[] | undefined, name: string): string | undefined {
  if (v === undefined) return undefined;
  for (const part of (Array.isArray(v) ? v.join('; ') : v).split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function parseSeconds(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(s);
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
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
