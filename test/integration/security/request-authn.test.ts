// RequestAuthentication end to end through the real CLI, at the inbound listener: JWTs signed by the test, the key
// set served by the test on loopback (jwksUri), an app that reports what it received, and AuthorizationPolicies that
// decide on the verified end user (requestPrincipals, request.auth.claims). Also: a config change to the rules
// applies on reload, and a gRPC caller gets UNAUTHENTICATED.
import http from 'node:http';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';

type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
const ISS = 'https://issuer.example';
let priv: Key;
let stranger: Key;
let jwk: JWK;
let keys: http.Server;
let app: http.Server;
let jwksUri = '';
const seen: Array<{ url: string; headers: http.IncomingHttpHeaders }> = [];
let proxy: RunningProxy;

async function jwt(sub: string, claims: Record<string, unknown> = {}, key: Key = priv): Promise<string> {
  return new SignJWT({ aud: 'cart', ...claims }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuer(ISS).setSubject(sub).setIssuedAt().setExpirationTime('5m').sign(key);
}

const POLICIES = (jwksUri: string): string => `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  jwtRules:
  - issuer: ${ISS}
    jwksUri: ${jwksUri}
    audiences: [cart]
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-jwt-group, claim: group}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admins-only, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
    when: [{key: "request.auth.claims[group]", notValues: [admins]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt-for-orders, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: DENY
  rules:
  - from: [{source: {notRequestPrincipals: ["*"]}}]
    to: [{operation: {paths: ["/orders*"]}}]
`;

beforeAll(async () => {
  const kp = await generateKeyPair('RS256');
  priv = kp.privateKey;
  stranger = (await generateKeyPair('RS256')).privateKey;
  jwk = { ...(await exportJWK(kp.publicKey)), kid: 'k1', alg: 'RS256' };
  keys = http.createServer((_req, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ keys: [jwk] })); });
  await new Promise<void>((r) => keys.listen(0, '127.0.0.1', r));
  jwksUri = `http://127.0.0.1:${(keys.address() as { port: number }).port}/jwks.json`;
  app = http.createServer((req, res) => { seen.push({ url: req.url ?? '', headers: req.headers }); req.resume(); res.end(`app ${req.url}`); });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const appPort = (app.address() as { port: number }).port;
  proxy = await startProxy({ 'authn.yaml': POLICIES(jwksUri) }, ['--app-port', String(appPort), '--namespace', 'shop', '--labels', 'app=cart']);
});
afterAll(async () => {
  await proxy?.stop();
  keys?.close();
  app?.close();
});

async function call(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const r = await request(`http://127.0.0.1:${proxy.info.inbound}${path}`, { headers: { host: 'cart.shop:8080', ...headers } });
  return { status: r.statusCode, body: await r.body.text(), headers: r.headers };
}

describe('RequestAuthentication at inbound', () => {
  it('no token: passes (no principal); a path that needs one is denied by the AuthorizationPolicy', async () => {
    expect(await call('/items')).toMatchObject({ status: 200, body: 'app /items' });
    expect(await call('/orders/1')).toMatchObject({ status: 403, body: 'RBAC: access denied' });
  });

  it('a valid token: the app gets the payload and claim headers, not the token; the policy sees the principal', async () => {
    const n = seen.length;
    const r = await call('/orders/1', { authorization: `Bearer ${await jwt('alice', { group: 'users' })}` });
    expect(r).toMatchObject({ status: 200, body: 'app /orders/1' });
    const got = seen[n]!.headers;
    expect(got.authorization).toBeUndefined();
    expect(got['x-jwt-group']).toBe('users');
    expect(JSON.parse(Buffer.from(String(got['x-jwt-payload']), 'base64url').toString())).toMatchObject({ iss: ISS, sub: 'alice', group: 'users' });
  });

  it('claims decide: /admin needs group admins', async () => {
    expect((await call('/admin', { authorization: `Bearer ${await jwt('bob', { group: 'users' })}` })).status).toBe(403);
    expect((await call('/admin', { authorization: `Bearer ${await jwt('carol', { group: 'admins' })}` })).status).toBe(200);
  });

  it('an invalid token (wrong key, wrong audience, expired, garbage): 401 with a Bearer challenge; the app sees nothing', async () => {
    const n = seen.length;
    const expired = await new SignJWT({ aud: 'cart' }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuer(ISS).setSubject('x').setExpirationTime(Math.floor(Date.now() / 1000) - 300).sign(priv);
    for (const [token, message] of [
      [await jwt('mallory', {}, stranger), 'Jwt verification fails'],
      [await jwt('alice', { aud: 'payments' }), 'Audiences in Jwt are not allowed'],
      [expired, 'Jwt is expired'],
      ['not.a.jwt', 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections'],
    ] as const) {
      const r = await call('/items', { authorization: `Bearer ${token}` });
      expect(r.status).toBe(401);
      expect(r.body).toBe(message);
      expect(r.headers['www-authenticate']).toBe('Bearer realm="http://cart.shop:8080/items", error="invalid_token"');
    }
    expect(seen.length).toBe(n);
  });

  it('a gRPC caller with an invalid token gets UNAUTHENTICATED (16) in a 200', async () => {
    const r = await call('/pkg.Svc/Call', { 'content-type': 'application/grpc', authorization: `Bearer ${await jwt('mallory', {}, stranger)}` });
    expect(r.status).toBe(200);
    expect(r.headers['grpc-status']).toBe('16');
  });

  it('a reload that drops the RequestAuthentication: tokens are no longer checked (and /orders needs a principal nobody has)', async () => {
    proxy.writeConfig('authn.yaml', POLICIES(jwksUri).split('---\n').slice(1).join('---\n'));
    await waitFor(async () => (await call('/items', { authorization: 'Bearer not.a.jwt' })).status === 200, 5000);
    expect((await call('/orders/1', { authorization: `Bearer ${await jwt('alice')}` })).status).toBe(403);
  });
});
