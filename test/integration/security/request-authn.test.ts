// RequestAuthentication end to end through the real CLI, at the inbound listener: JWTs signed by the test, the key
// set served by the test on loopback over https (jwksUri; the sidecar trusts the test CA through NODE_EXTRA_CA_CERTS),
// an app that reports what it received, and AuthorizationPolicies that decide on the verified end user
// (requestPrincipals, request.auth.claims). Also: forged output headers never reach the app, a valid token beside a
// bad one is refused, plain http keys only with --jwks-allow-http, a config change to the rules applies on reload,
// and a gRPC caller gets UNAUTHENTICATED.
import http from 'node:http';
import https from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { selfSignedCert } from '../../support/tls.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { fakeUpstream, type FakeUpstream, type SeenRequest } from '../../support/fake-upstream.js';

type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
const ISS = 'https://issuer.example';
let priv: Key;
let stranger: Key;
let jwk: JWK;
let keys: https.Server;
let plainKeys: http.Server;
let app: FakeUpstream;
let appPort = 0;
let jwksUri = '';
let plainJwksUri = '';
let certDir = '';
let caFile = '';
let seen: SeenRequest[] = [];
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
  certDir = mkdtempSync(join(tmpdir(), 'remora-jwks-cli-'));
  const tlsFiles = selfSignedCert(certDir, 'keys', { cn: '127.0.0.1', subjectAltName: 'IP:127.0.0.1' });
  caFile = tlsFiles.certFile;
  const serveKeys = (_req: http.IncomingMessage, res: http.ServerResponse): void => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ keys: [jwk] })); };
  keys = https.createServer({ key: tlsFiles.key, cert: tlsFiles.cert }, serveKeys);
  plainKeys = http.createServer(serveKeys);
  await Promise.all([keys, plainKeys].map((srv) => new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))));
  jwksUri = `https://127.0.0.1:${(keys.address() as { port: number }).port}/jwks.json`;
  plainJwksUri = `http://127.0.0.1:${(plainKeys.address() as { port: number }).port}/jwks.json`;
  app = await fakeUpstream().route('*', 200, (r) => `app ${r.url}`).start();
  seen = app.requests;
  appPort = app.port;
  proxy = await startProxy({ 'authn.yaml': POLICIES(jwksUri) }, ['--app-port', String(appPort), '--namespace', 'shop', '--labels', 'app=cart'], { env: { NODE_EXTRA_CA_CERTS: caFile } });
});
afterAll(async () => {
  await proxy?.stop();
  keys?.closeAllConnections();
  keys?.close();
  plainKeys?.close();
  await app?.close();
  rmSync(certDir, { recursive: true, force: true });
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

  it('forged output headers (x-jwt-payload, x-jwt-group) never reach the app: without a token, and beside a valid one', async () => {
    const n = seen.length;
    const forged = Buffer.from(JSON.stringify({ iss: ISS, sub: 'admin', group: 'admins' })).toString('base64url');
    expect((await call('/items', { 'x-jwt-payload': forged, 'x-jwt-group': 'admins' })).status).toBe(200);
    expect(seen[n]!.headers['x-jwt-payload']).toBeUndefined();
    expect(seen[n]!.headers['x-jwt-group']).toBeUndefined();
    const r = await call('/items', { authorization: `Bearer ${await jwt('alice', { group: 'users' })}`, 'x-jwt-group': 'admins' });
    expect(r.status).toBe(200);
    expect(seen[n + 1]!.headers['x-jwt-group']).toBe('users');
  });

  it('a valid Bearer token beside a token signed by another key in ?access_token=: 401, the app sees nothing', async () => {
    const n = seen.length;
    const r = await call(`/items?access_token=${await jwt('root', {}, stranger)}`, { authorization: `Bearer ${await jwt('alice')}` });
    expect(r).toMatchObject({ status: 401, body: 'Jwt verification fails' });
    expect(seen.length).toBe(n);
  });

  it('plain http keys: refused (401) unless --jwks-allow-http names the issuer', async () => {
    const files = { 'authn.yaml': POLICIES(plainJwksUri) };
    const args = ['--app-port', String(appPort), '--namespace', 'shop', '--labels', 'app=cart'];
    const [refusing, allowing] = await Promise.all([startProxy(files, args), startProxy(files, [...args, '--jwks-allow-http', ISS])]);
    try {
      const t = await jwt('alice');
      const at = async (p: RunningProxy): Promise<number> => (await request(`http://127.0.0.1:${p.info.inbound}/items`, { headers: { host: 'cart', authorization: `Bearer ${t}` } })).statusCode;
      expect(await at(refusing)).toBe(401);
      expect(refusing.stderr).toMatch(/plain http is refused/);
      expect(await at(allowing)).toBe(200);
    } finally {
      await Promise.all([refusing.stop(), allowing.stop()]);
    }
  });

  it('a reload that drops the RequestAuthentication: tokens are no longer checked (and /orders needs a principal nobody has)', async () => {
    proxy.writeConfig('authn.yaml', POLICIES(jwksUri).split('---\n').slice(1).join('---\n'));
    await waitFor(async () => (await call('/items', { authorization: 'Bearer not.a.jwt' })).status === 200, 5000);
    expect((await call('/orders/1', { authorization: `Bearer ${await jwt('alice')}` })).status).toBe(403);
  });
});
