// RequestAuthentication's decisions with real keys (jose): the token locations, the outcomes Envoy's jwt_authn gives
// under Istio's "allow missing" requirement, the headers it sets and removes, and keys from inline JWKS, a JWKS URI
// and OpenID discovery (served by the test on loopback).
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
import { RequestAuthenticator, type RequestAuthenticationLike } from '../../../src/security/request-authn.js';

const W = { namespace: 'shop', labels: { app: 'cart' }, rootNamespace: 'istio-system' };
type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
let priv: Key;
let otherPriv: Key;
let jwk: JWK;
let server: http.Server;
let base = '';
let jwksHits = 0;

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
});
afterAll(() => { server.close(); });

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
    const a = new RequestAuthenticator([policy([{ issuer: 'https://issuer.example', jwksUri: `${base}/jwks.json` }])], W);
    const before = jwksHits;
    for (let i = 0; i < 5; i++) expect((await a.authenticate({ authorization: `Bearer ${await token({})}` }, '')).ok).toBe(true);
    expect(jwksHits - before).toBe(1);
  });

  it('neither jwks nor jwksUri: OpenID discovery from the issuer', async () => {
    const iss = `${base}/oidc`;
    const a = new RequestAuthenticator([policy([{ issuer: iss }])], W);
    const r = await a.authenticate({ authorization: `Bearer ${await token({}, { iss })}` }, '');
    expect(r.ok && r.auth?.principal).toBe(`${iss}/alice`);
  });

  it('a JWKS URI that cannot be fetched: 401 "Jwks remote fetch is failed"', async () => {
    const a = new RequestAuthenticator([policy([{ issuer: 'https://issuer.example', jwksUri: `${base}/missing.json`, timeout: '2s' }])], W);
    const r = await a.authenticate({ authorization: `Bearer ${await token({})}` }, '');
    expect(r).toMatchObject({ ok: false, status: 401, message: 'Jwks remote fetch is failed' });
  });
});
