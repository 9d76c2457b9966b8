// RequestAuthentication's decisions with real keys (jose): the token locations, the outcomes Envoy's jwt_authn gives
// under Istio's "allow missing" requirement (every token verified, one bad token fails the request), the headers it
// sets and removes, and keys from inline JWKS, a JWKS URI and OpenID discovery (served by the test on loopback):
// https, plain http only for an allowed issuer, bounded in size and time, the last good set kept.
import http from 'node:http';
import https from 'node:https';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { selfSignedCert } from '../../support/tls.js';
import { RemoteJwks } from '../../../src/security/jwks.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
import { RequestAuthenticator, type RequestAuthenticationLike } from '../../../src/security/request-authn.js';

const W = { namespace: 'shop', labels: { app: 'cart' }, rootNamespace: 'istio-system' };
type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let priv: Key;
let otherPriv: Key;
let jwk: JWK;
let server: http.Server;
let secure: https.Server;
let base = '';
let secureBase = '';
let ca: Buffer;
let certDir: string;
let jwksHits = 0;
/** Allowed plain http: the issuers the http tests use. */
const HTTP_OK = { allowHttpIssuers: ['https://issuer.example'] };

beforeAll(async () => {
  const kp = await generateKeyPair('RS256');
  priv = kp.privateKey;
  jwk = { ...(await exportJWK(kp.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  otherPriv = (await generateKeyPair('RS256')).privateKey;
  server = http.createServer((req, res) => {
    if (req.url === '/jwks.json') { jwksHits++; res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ keys: [jwk] })); return; }
    if (req.url === '/oidc/.well-known/openid-configuration') { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ issuer: `${base}/oidc`, jwks_uri: `${base}/jwks.json` })); return; }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  certDir = mkdtempSync(join(tmpdir(), 'remora-jwks-'));
  const c = selfSignedCert(certDir, 'jwks', { cn: '127.0.0.1', subjectAltName: 'IP:127.0.0.1' });
  ca = c.cert;
  secure = https.createServer({ key: c.key, cert: c.cert }, (req, res) => {
    if (req.url === '/jwks.json') { jwksHits++; res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ keys: [jwk] })); return; }
    if (req.url === '/big.json') { res.end(JSON.stringify({ keys: [jwk], pad: 'x'.repeat(300 * 1024) })); return; }
    if (req.url === '/slow.json') return; // never answers
    if (req.url === '/redirect.json') { res.statusCode = 302; res.setHeader('location', `${base}/jwks.json`); res.end(); return; }
    if (req.url === '/oidc/.well-known/openid-configuration') { res.end(JSON.stringify({ issuer: `${secureBase}/oidc`, jwks_uri: `${secureBase}/jwks.json` })); return; }
    if (req.url === '/downgrade/.well-known/openid-configuration') { res.end(JSON.stringify({ issuer: `${secureBase}/downgrade`, jwks_uri: `${base}/jwks.json` })); return; }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => secure.listen(0, '127.0.0.1', r));
  secureBase = `https://127.0.0.1:${(secure.address() as { port: number }).port}`;
});
afterAll(() => {
  server.close();
  secure.closeAllConnections();
  secure.close();
  rmSync(certDir, { recursive: true, force: true });
});

async function token(claims: Record<string, unknown>, opts: { key?: Key; exp?: string | number; iss?: string; kid?: string } = {}): Promise<string> {
  let j = new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: opts.kid ?? 'k1' }).setIssuedAt().setIssuer(opts.iss ?? 'https://issuer.example').setSubject('alice');
  j = j.setExpirationTime(opts.exp ?? '10m');
  return j.sign(opts.key ?? priv);
}

function policy(jwtRules: Array<Record<string, unknown>>, meta: { namespace?: string; name?: string } = {}, selector?: Record<string, unknown>): RequestAuthenticationLike {
  return { metadata: { name: meta.name ?? 'jwt', namespace: meta.namespace ?? 'shop' }, spec: { ...(selector ? { selector } : {}), jwtRules } };
}

const inline = (): string => JSON.stringify({ keys: [jwk] });

describe('which policies apply', () => {
  it('same namespace (no selector or a matching one) and the root namespace without a selector', () => {
    const a = new RequestAuthenticator([
      policy([{ issuer: 'a', jwks: inline() }], { name: 'ns-wide' }),
      policy([{ issuer: 'b', jwks: inline() }], { name: 'mine' }, { matchLabels: { app: 'cart' } }),
      policy([{ issuer: 'c', jwks: inline() }], { name: 'theirs' }, { matchLabels: { app: 'web' } }),
      policy([{ issuer: 'd', jwks: inline() }], { name: 'mesh', namespace: 'istio-system' }),
      policy([{ issuer: 'e', jwks: inline() }], { name: 'root-selector', namespace: 'istio-system' }, { matchLabels: { app: 'cart' } }),
      policy([{ issuer: 'f', jwks: inline() }], { name: 'other-ns', namespace: 'web' }),
    ], W);
    expect(a.policies).toEqual(['shop/ns-wide', 'shop/mine', 'istio-system/mesh']);
    expect(a.rules.map((r) => r.issuer)).toEqual(['a', 'b', 'd']);
    expect(new RequestAuthenticator([], W).active).toBe(false);
  });
});

describe('outcomes (Envoy jwt_authn, allow missing)', () => {
  const authn = (): RequestAuthenticator => new RequestAuthenticator([policy([{ issuer: 'https://issuer.example', audiences: ['cart'], jwks: inline(), outputPayloadToHeader: 'x-jwt-payload', outputClaimToHeaders: [{ header: 'x-user-group', claim: 'group' }] }])], W);

  it('no token: passes without a principal', async () => {
    const r = await authn().authenticate({}, '');
    expect(r).toEqual({ ok: true, auth: undefined, setHeaders: [], removeHeaders: [] });
  });

  it('a valid token: principal iss/sub, audiences, presenter, claims; payload and claim headers; the token header removed', async () => {
    const t = await token({ aud: 'cart', azp: 'web-app', group: 'admins', nested: { a: 1 } });
    const r = await authn().authenticate({ authorization: `Bearer ${t}` }, '');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.auth).toMatchObject({ principal: 'https://issuer.example/alice', audiences: ['cart'], presenter: 'web-app' });
    expect(r.auth!.claims.group).toBe('admins');
    const payload = JSON.parse(Buffer.from(r.setHeaders.find(([h]) => h === 'x-jwt-payload')![1], 'base64url').toString()) as Record<string, unknown>;
    expect(payload.sub).toBe('alice');
    expect(r.setHeaders).toContainEqual(['x-user-group', 'admins']);
    expect(r.removeHeaders).toEqual(['authorization']);
  });

  it('forwardOriginalToken keeps the token header', async () => {
    const a = new RequestAuthenticator([policy([{ issuer: 'https://issuer.example', jwks: inline(), forwardOriginalToken: true }])], W);
    const r = await a.authenticate({ authorization: `Bearer ${await token({})}` }, '');
    expect(r.ok && r.removeHeaders).toEqual([]);
  });

  const cases: Array<[string, () => Promise<Record<string, string>>, string]> = [
    ['a bad signature', async () => ({ authorization: `Bearer ${await token({ aud: 'cart' }, { key: otherPriv })}` }), 'Jwt verification fails'],
    ['an expired token (beyond the 60 s skew)', async () => ({ authorization: `Bearer ${await token({ aud: 'cart' }, { exp: Math.floor(Date.now() / 1000) - 120 })}` }), 'Jwt is expired'],
    ['a wrong audience', async () => ({ authorization: `Bearer ${await token({ aud: 'other' })}` }), 'Audiences in Jwt are not allowed'],
    ['garbage', async () => ({ authorization: 'Bearer deadbeef' }), 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections'],
    ['an unknown kid', async () => ({ authorization: `Bearer ${await token({ aud: 'cart' }, { kid: 'nope' })}` }), 'Jwks doesn\'t have key to match kid or alg from Jwt'],
  ];
  for (const [name, headers, message] of cases) {
    it(`${name}: 401 "${message}"`, async () => {
      const a = authn();
      const r = await a.authenticate(await headers(), '');
      expect(r).toMatchObject({ ok: false, status: 401, message });
      expect(!r.ok && r.details).toMatch(/^jwt_authn_access_denied\{[A-Za-z0-9_]+\}$/);
      expect(a.rejected).toBe(1);
    });
  }

  it('an expired token within the 60 s clock skew still verifies', async () => {
    const r = await authn().authenticate({ authorization: `Bearer ${await token({ aud: 'cart' }, { exp: Math.floor(Date.now() / 1000) - 20 })}` }, '');
    expect(r.ok && r.auth?.principal).toBe('https://issuer.example/alice');
  });

  it('a token of an issuer no rule names is treated as missing', async () => {
    const r = await authn().authenticate({ authorization: `Bearer ${await token({}, { iss: 'https://elsewhere' })}` }, '');
    expect(r).toEqual({ ok: true, auth: undefined, setHeaders: [], removeHeaders: [] });
  });
});

describe('token locations', () => {
  it('default: Authorization Bearer, then ?access_token=', async () => {
    const a = new RequestAuthenticator([policy([{ issuer: 'https://issuer.example', jwks: inline() }])], W);
    const t = await token({});
    expect((await a.authenticate({}, `x=1&access_token=${t}`)).ok && 'verified').toBe('verified');
    expect(a.verified).toBe(1);
    // Basic auth is not a bearer token: missing.
    expect(await a.authenticate({ authorization: 'Basic dXNlcjpwYXNz' }, '')).toMatchObject({ ok: true, auth: undefined });
  });

  it('fromHeaders with a prefix, fromParams, fromCookies; the default locations are then not read', async () => {
    const a = new RequestAuthenticator([policy([{ issuer: 'https://issuer.example', jwks: inline(), fromHeaders: [{ name: 'X-Jwt', prefix: 'Token ' }], fromParams: ['jwt'], fromCookies: ['session'] }])], W);
    const t = await token({});
    expect((await a.authenticate({ 'x-jwt': `Token ${t}` }, '')).ok).toBe(true);
    expect(a.verified).toBe(1);
    expect((await a.authenticate({}, `jwt=${t}`)).ok).toBe(true);
    expect((await a.authenticate({ cookie: `a=b; session=${t}` }, '')).ok).toBe(true);
    expect(a.verified).toBe(3);
    expect(await a.authenticate({ authorization: `Bearer ${t}` }, '')).toMatchObject({ ok: true, auth: undefined });
    expect(a.verified).toBe(3);
  });
});

describe('keys', () => {
  it('jwksUri: fetched once and cached across requests', async () => {
    const a = new RequestAuthenticator([policy([{ issuer: 'https://issuer.example', jwksUri: `${base}/jwks.json` }])], W, HTTP_OK);
    const before = jwksHits;
    for (let i = 0; i < 5; i++) expect((await a.authenticate({ authorization: `Bearer ${await token({})}` }, '')).ok).toBe(true);
    expect(jwksHits - before).toBe(1);
  });

  it('neither jwks nor jwksUri: OpenID discovery from the issuer', async () => {
    const iss = `${base}/oidc`;
    const a = new RequestAuthenticator([policy([{ issuer: iss }])], W, { allowHttpIssuers: [iss] });
    const r = await a.authenticate({ authorization: `Bearer ${await token({}, { iss })}` }, '');
    expect(r.ok && r.auth?.principal).toBe(`${iss}/alice`);
  });

  it('a JWKS URI that cannot be fetched: 401 "Jwks remote fetch is failed"', async () => {
    const a = new RequestAuthenticator([policy([{ issuer: 'https://issuer.example', jwksUri: `${base}/missing.json`, timeout: '2s' }])], W, HTTP_OK);
    const r = await a.authenticate({ authorization: `Bearer ${await token({})}` }, '');
    expect(r).toMatchObject({ ok: false, status: 401, message: 'Jwks remote fetch is failed' });
  });
});

describe('every token is verified (Envoy verifies each one it extracts)', () => {
  const a = (): RequestAuthenticator => new RequestAuthenticator([policy([{ issuer: 'https://issuer.example', jwks: inline(), outputPayloadToHeader: 'x-jwt-payload', outputClaimToHeaders: [{ header: 'x-jwt-group', claim: 'group' }] }])], W);

  it('a token behind another value of the header (a second line, after a comma, after another scheme) is verified too', async () => {
    const good = await token({});
    const forged = await token({ sub: 'root' }, { key: otherPriv });
    // The headers view keeps the first Authorization (as node:http); the raw lines hold the second.
    const view = { authorization: 'Basic dXNlcjpwYXNz' };
    expect(a().extract(view, '', ['Authorization', 'Basic dXNlcjpwYXNz', 'authorization', `Bearer ${forged}`]).map((f) => f.token)).toEqual([forged]);
    expect(await a().authenticate(view, '', ['Authorization', 'Basic dXNlcjpwYXNz', 'authorization', `Bearer ${forged}`])).toMatchObject({ ok: false, status: 401 });
    expect(await a().authenticate({ authorization: `Basic dXNlcjpwYXNz, Bearer ${forged}` }, '')).toMatchObject({ ok: false, status: 401 });
    expect(await a().authenticate({ authorization: `Foo Bearer ${forged}` }, '')).toMatchObject({ ok: false, status: 401 });
    // Two tokens in one value: both verified.
    expect(await a().authenticate({ authorization: `Bearer ${good}, Bearer ${forged}` }, '')).toMatchObject({ ok: false, status: 401 });
    expect((await a().authenticate({ authorization: `Basic dXNlcjpwYXNz, Bearer ${good}` }, '')).ok).toBe(true);
  });

  it('every cookie of a cookie location is verified', async () => {
    const c = new RequestAuthenticator([policy([{ issuer: 'https://issuer.example', jwks: inline(), fromCookies: ['session'] }])], W);
    const good = await token({});
    const forged = await token({ sub: 'root' }, { key: otherPriv });
    expect(await c.authenticate({ cookie: `session=${good}; session=${forged}` }, '')).toMatchObject({ ok: false, status: 401 });
  });

  it('a valid Bearer beside a token of another key in ?access_token=: 401', async () => {
    const good = await token({});
    const forged = await token({ sub: 'root' }, { key: otherPriv });
    expect(await a().authenticate({ authorization: `Bearer ${good}` }, `access_token=${forged}`)).toMatchObject({ ok: false, status: 401, message: 'Jwt verification fails' });
    // In the other order too, and two access_token parameters.
    expect(await a().authenticate({ authorization: `Bearer ${forged}` }, `access_token=${good}`)).toMatchObject({ ok: false, status: 401 });
    expect(await a().authenticate({}, `access_token=${good}&access_token=${forged}`)).toMatchObject({ ok: false, status: 401 });
  });

  it('two valid tokens: passes, the principal is the first one\'s; a token of an unknown issuer beside a valid one is ignored', async () => {
    const r = await a().authenticate({ authorization: `Bearer ${await token({ group: 'g1' })}` }, `access_token=${await token({ group: 'g2' })}`);
    expect(r.ok && r.auth?.principal).toBe('https://issuer.example/alice');
    expect(r.ok && r.setHeaders.filter(([h]) => h === 'x-jwt-group')).toEqual([['x-jwt-group', 'g1'], ['x-jwt-group', 'g2']]);
    const other = await a().authenticate({ authorization: `Bearer ${await token({})}` }, `access_token=${await token({}, { iss: 'https://elsewhere' })}`);
    expect(other.ok).toBe(true);
  });

  it('the output headers of every rule are known up front (removed from every request before verification)', () => {
    expect([...a().outputHeaders]).toEqual(['x-jwt-payload', 'x-jwt-group']);
  });
});

describe('key sets over the network: https only, bounded, the last good one kept', () => {
  const rule = (jwksUri: string, extra: Record<string, unknown> = {}): RequestAuthenticationLike => policy([{ issuer: 'https://issuer.example', jwksUri, ...extra }]);

  it('https jwksUri: fetched (trusted CA), cached', async () => {
    const a = new RequestAuthenticator([rule(`${secureBase}/jwks.json`)], W, { jwks: { ca } });
    const before = jwksHits;
    for (let i = 0; i < 3; i++) expect((await a.authenticate({ authorization: `Bearer ${await token({})}` }, '')).ok).toBe(true);
    expect(jwksHits - before).toBe(1);
  });

  it('plain http jwksUri without --jwks-allow-http: never fetched, every token 401, and a warning says why', async () => {
    const before = jwksHits;
    const a = new RequestAuthenticator([rule(`${base}/jwks.json`)], W);
    expect(await a.authenticate({ authorization: `Bearer ${await token({})}` }, '')).toMatchObject({ ok: false, status: 401, message: 'Jwks remote fetch is failed' });
    expect(jwksHits).toBe(before);
    expect(a.warnings).toEqual([expect.stringMatching(/^issuer https:\/\/issuer\.example: http:\/\/127\.0\.0\.1:\d+\/jwks\.json: plain http is refused/)]);
  });

  it('OpenID discovery: an https issuer works; its jwks_uri may not downgrade to http; an http issuer is refused unless allowed', async () => {
    const iss = `${secureBase}/oidc`;
    const ok = new RequestAuthenticator([policy([{ issuer: iss }])], W, { jwks: { ca } });
    expect((await ok.authenticate({ authorization: `Bearer ${await token({}, { iss })}` }, '')).ok).toBe(true);
    const down = `${secureBase}/downgrade`;
    const downgrade = new RequestAuthenticator([policy([{ issuer: down }])], W, { jwks: { ca } });
    expect(await downgrade.authenticate({ authorization: `Bearer ${await token({}, { iss: down })}` }, '')).toMatchObject({ ok: false, message: 'Jwks remote fetch is failed' });
    const plainIss = `${base}/oidc`;
    const plain = new RequestAuthenticator([policy([{ issuer: plainIss }])], W);
    expect(await plain.authenticate({ authorization: `Bearer ${await token({}, { iss: plainIss })}` }, '')).toMatchObject({ ok: false, message: 'Jwks remote fetch is failed' });
  });

  it('a key set over the size cap, one that never answers (timeout), and a redirect: 401 "Jwks remote fetch is failed"', async () => {
    for (const [path, extra] of [['/big.json', {}], ['/slow.json', { timeout: '300ms' }], ['/redirect.json', {}]] as const) {
      const a = new RequestAuthenticator([rule(`${secureBase}${path}`, extra)], W, { jwks: { ca } });
      const t0 = Date.now();
      expect(await a.authenticate({ authorization: `Bearer ${await token({})}` }, '')).toMatchObject({ ok: false, status: 401, message: 'Jwks remote fetch is failed' });
      expect(Date.now() - t0).toBeLessThan(5000);
    }
  });

  it('RemoteJwks: a failed refetch keeps the last good set (tokens still verify), an unknown kid refetches once per cooldown', async () => {
    let now = 0;
    let answer: 'good' | 'fail' = 'good';
    let fetches = 0;
    const stale: string[] = [];
    const set = new RemoteJwks('https://keys.example/jwks.json', {
      timeoutMs: 1000, cacheMs: 60_000, cooldownMs: 30_000, now: () => now,
      fetch: async () => { fetches++; if (answer === 'fail') throw new Error('connection refused'); return { keys: [jwk] }; },
      onStale: (_u, e) => stale.push(e),
    });
    const verify = async (kid = 'k1'): Promise<boolean> => {
      const { jwtVerify } = await import('jose');
      try { await jwtVerify(await token({}, { kid }), set.getKey); return true; } catch { return false; }
    };
    expect(await verify()).toBe(true);
    expect(fetches).toBe(1);
    answer = 'fail';
    now = 120_000; // past the cache time: a background refresh, which fails
    expect(await verify()).toBe(true);
    await new Promise((r) => setTimeout(r, 10));
    expect(fetches).toBe(2);
    expect(stale).toEqual(['connection refused']);
    expect(await verify()).toBe(true);
    // An unknown kid: one refetch (failing), then none within the cooldown.
    now = 200_000;
    expect(await verify('k2')).toBe(false);
    const after = fetches;
    expect(await verify('k2')).toBe(false);
    expect(fetches).toBe(after);
    expect(await verify('k1')).toBe(true);
  });
});
