// The attack corpus (issue #23): what a hostile caller inside the cluster tries against a workload's sidecar, each
// case a real attempt through the CLI-started sidecar (`remora run`) with the refusal Istio's sidecar gives and a
// check that the app never saw the request (or, where Istio lets it through, saw exactly what the policy judged).
// Certificates are made by the test (src/security/dev-ca.ts, openssl), tokens by jose. This file covers identities,
// tokens and HTTP policy; the L4 cases (TCP policy, the sidecar's own ports, CONNECT) live in their own file.
// docs/security.md "Threat model" maps each case to what stops it.
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type JWK } from 'jose';
import { createCrl, createRoot, issueWorkload, selfSignedWorkload, type RootFiles, type WorkloadFiles } from '../../src/security/dev-ca.js';
import { startProxy, type RunningProxy } from '../support/proxy-harness.js';
import { mtlsExchange, mtlsHttp1, mtlsHttp2, statusOf, type ClientCert } from '../support/mtls-client.js';
import { RecordingApp, replay, type AppRequest } from '../support/recording-app.js';
import { FLAG, FRAME, RawH2, frame, headerBlock } from '../support/h2-raw.js';

const TD = 'cluster.local';
const ISS = 'https://issuer.example';
type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

let dir: string;
let root: RootFiles;
let app: RecordingApp;
/** STRICT, for the certificate attacks. */
let strict: RunningProxy;
/** PERMISSIVE, for everything that needs a plaintext caller too. */
let open: RunningProxy;
let priv: Key;
let rsaPublicPem = '';
let stranger: Key;
let jwk: JWK;
const certs: Record<string, WorkloadFiles> = {};

const POLICIES = (mode: 'STRICT' | 'PERMISSIVE'): Record<string, string> => ({
  'pa.yaml': `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: ${mode}}}
`,
  'ra.yaml': `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  jwtRules:
  - issuer: ${ISS}
    audiences: [cart]
    jwks: '${JSON.stringify({ keys: [jwk] })}'
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-jwt-group, claim: group}]
`,
  'ap.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin", "/admin/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: orders-need-a-user, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: DENY
  rules: [{from: [{source: {notRequestPrincipals: ["*"]}}], to: [{operation: {paths: ["/orders", "/orders/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-delete, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: DENY
  rules: [{to: [{operation: {methods: ["DELETE"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-my-hosts, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  action: DENY
  rules: [{to: [{operation: {notHosts: ["cart", "cart.shop", "cart.shop.svc", "cart.shop.svc.cluster.local"]}}]}]
`,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-attacks-'));
  root = createRoot(join(dir, 'root'));
  const other = createRoot(join(dir, 'other-root'));
  const id = (ns: string, sa: string, td = TD): { trustDomain: string; namespace: string; serviceAccount: string } => ({ trustDomain: td, namespace: ns, serviceAccount: sa });
  const admin = id('istio-system', 'admin');
  const issue = (name: string, signer: RootFiles, who: ReturnType<typeof id>, opts: Parameters<typeof issueWorkload>[3] = {}): void => {
    certs[name] = issueWorkload(signer, who, join(dir, name), opts);
  };
  issue('server', root, id('shop', 'cart'));
  issue('frontend', root, id('web', 'frontend'));
  certs.selfSigned = selfSignedWorkload(`spiffe://${TD}/ns/istio-system/sa/admin`, join(dir, 'self-signed'));
  issue('otherRoot', other, admin);
  issue('expired', root, admin, { days: -1 });
  issue('notYetValid', root, admin, { notBefore: new Date(Date.now() + 86_400_000) });
  issue('wrongTrustDomain', root, id('istio-system', 'admin', 'evil.example'));
  // A workload's own leaf (CA:FALSE, no keyCertSign) used as an issuer for another identity.
  issue('viaLeaf', { certFile: certs.frontend!.certFile, keyFile: certs.frontend!.keyFile, parents: [root.certFile] }, admin);
  issue('noClientAuth', root, admin, { extendedKeyUsage: ['serverAuth'] });
  issue('twoIdentities', root, admin, { uris: [`spiffe://${TD}/ns/web/sa/frontend`, `spiffe://${TD}/ns/istio-system/sa/admin`] });
  issue('revoked', root, admin);
  // The server's bundle carries a CRL that revokes one certificate of the mesh's own root.
  createCrl(root, [certs.revoked!.certFile], join(certs.server!.dir, 'ca-crl.pem'));

  const kp = await generateKeyPair('RS256', { extractable: true });
  priv = kp.privateKey;
  rsaPublicPem = await exportSPKI(kp.publicKey);
  stranger = (await generateKeyPair('RS256')).privateKey;
  jwk = { ...(await exportJWK(kp.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };

  app = await new RecordingApp().listen();
  const args = ['--app-port', String(app.port), '--namespace', 'shop', '--labels', 'app=cart', '--cert-dir', certs.server!.dir];
  [strict, open] = await Promise.all([startProxy(POLICIES('STRICT'), args), startProxy(POLICIES('PERMISSIVE'), args)]);
});

afterAll(async () => {
  await Promise.all([strict?.stop(), open?.stop()]);
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

// === how the attacks are sent ===

/** One raw HTTP/1.1 request on its own connection (`Connection: close`): "status N", or how the connection ended. */
function h1(port: number, head: string): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    let error: string | undefined;
    const s = net.connect(port, '127.0.0.1', () => s.write(head));
    const timer = setTimeout(() => s.destroy(), 5000);
    s.on('data', (d: Buffer) => { data += d.toString('latin1'); });
    s.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
    s.on('close', () => { clearTimeout(timer); resolve(outcome(statusOf(data), error)); });
  });
}

/** The request line and headers of a GET to the inbound port, marked with the attack's id. */
function get(target: string, id: string, extra: Record<string, string> = {}, method = 'GET', host = 'cart'): string {
  return `${method} ${target} HTTP/1.1\r\nhost: ${host}\r\nx-attack-id: ${id}\r\nconnection: close\r\n${Object.entries(extra).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

/** One cleartext HTTP/2 request (prior knowledge): "status N" or how it failed. */
function h2(port: number, headers: http2.OutgoingHttpHeaders): Promise<string> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: string): void => { if (!settled) { settled = true; clearTimeout(timer); session.destroy(); resolve(r); } };
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const timer = setTimeout(() => done('timeout'), 5000);
    session.on('error', (e: NodeJS.ErrnoException) => done(`error ${e.code ?? e.message}`));
    const req = session.request({ ':method': 'GET', ':authority': 'cart', ...headers });
    req.on('response', (h) => done(`status ${String(h[':status'])}`));
    req.on('error', (e: NodeJS.ErrnoException) => done(`error ${e.code ?? e.message}`));
    req.end();
  });
}

function outcome(status: number, error: string | undefined): string {
  if (status > 0) return `status ${status}`;
  return error === 'ECONNRESET' ? 'reset' : error !== undefined ? `error ${error}` : 'closed';
}

/**
 * One HTTP/2 request written by hand (fields a library refuses to send), on its own cleartext connection: "status N",
 * "reset" (RST_STREAM) or how the connection ended.
 */
async function h2Raw(port: number, fields: ReadonlyArray<readonly [string, string]>): Promise<string> {
  const c = await RawH2.connect(port);
  try {
    c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, headerBlock(fields)));
    const reset = (): boolean => c.streamFrames(1).some((f) => f.type === FRAME.RST_STREAM);
    await c.until(() => c.statuses(1).length > 0 || reset() || c.goawayCode !== undefined || c.closed, 5000, 'an answer');
    if (c.statuses(1).length > 0) return `status ${c.statuses(1).at(-1)!}`;
    return reset() ? 'reset' : c.goawayCode !== undefined ? `goaway ${c.goawayCode}` : 'closed';
  } finally {
    c.destroy();
  }
}

/** An HTTP/1.1 request over mTLS with `cert` (or none) to the STRICT sidecar. */
async function overMtls(cert: ClientCert | undefined, id: string, port = strict.info.inbound): Promise<string> {
  const r = await mtlsHttp1(port, cert, get('/items', id));
  if (r.status > 0) return `status ${r.status}`;
  if (r.error === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED') return 'tls alert: certificate required';
  return outcome(0, r.error);
}

/**
 * An h2c upgrade request for /public on a connection already open (plaintext or mTLS), marked with the attack's id;
 * when the answer is 101, an HTTP/2 request for the denied /admin/keys on the switched connection, marked alike.
 * "status N" for a plain answer, "101, then HTTP/2 status N" when the connection switched.
 */
function h2cSmuggle(sock: net.Socket, id: string, connection: string): Promise<string> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (r: string): void => { if (!settled) { settled = true; clearTimeout(timer); sock.destroy(); resolve(r); } };
    const timer = setTimeout(() => done('timeout'), 5000);
    sock.on('error', (e: NodeJS.ErrnoException) => done(`error ${e.code ?? e.message}`));
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      const status = statusOf(buf.toString('latin1'));
      if (status !== 101) { done(`status ${status}`); return; }
      sock.pause();
      const session = http2.connect('http://cart', { createConnection: () => replay(sock, buf.subarray(end + 4)) as unknown as net.Socket });
      session.on('error', (e: NodeJS.ErrnoException) => done(`101, then error ${e.code ?? e.message}`));
      const req = session.request({ ':method': 'GET', ':path': '/admin/keys', 'x-attack-id': id });
      req.on('response', (h) => done(`101, then HTTP/2 status ${String(h[':status'])}`));
      req.on('error', (e: NodeJS.ErrnoException) => done(`101, then error ${e.code ?? e.message}`));
      req.end();
    };
    sock.on('data', onData);
    sock.write(`GET /public HTTP/1.1\r\nhost: cart\r\nx-attack-id: ${id}\r\nconnection: ${connection}\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n`);
  });
}

/** An open TCP connection to `port`. */
function dial(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => { const s = net.connect(port, '127.0.0.1', () => resolve(s)); s.once('error', reject); });
}

/** An open mTLS connection (Istio's ALPN for HTTP/1.1) to `port` with `cert`, the server not checked. */
function dialMtls(port: number, cert: ClientCert): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['istio-http/1.1'], cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) }, () => resolve(s));
    s.once('error', reject);
  });
}

// === tokens ===

function b64(o: unknown): string {
  return Buffer.from(JSON.stringify(o)).toString('base64url');
}

async function jwt(claims: Record<string, unknown> = {}, opts: { key?: Key; kid?: string; iss?: string } = {}): Promise<string> {
  return new SignJWT({ aud: 'cart', group: 'users', ...claims }).setProtectedHeader({ alg: 'RS256', kid: opts.kid ?? 'k1' })
    .setIssuer(opts.iss ?? ISS).setSubject('alice').setIssuedAt().setExpirationTime(typeof claims.exp === 'number' ? claims.exp : '5m').sign(opts.key ?? priv);
}

const now = (): number => Math.floor(Date.now() / 1000);

// === the corpus ===

type AppSees = 'never' | { path?: string; headers?: Record<string, string | undefined> };

interface Attack {
  group: 'certificate' | 'identity header' | 'token' | 'path' | 'method' | 'host' | 'upgrade';
  name: string;
  send(id: string): Promise<string>;
  /** The refusal (or, where Istio lets the request through, its status). */
  expect: string;
  app: AppSees;
}

/** A path trick against DENY paths ["/admin", "/admin/*"], with Istio's verdict under BASE normalization. */
function pathTrick(name: string, target: string, verdict: 'denied' | 'bad request' | { path: string }): Attack[] {
  const expectation = verdict === 'denied' ? 'status 403' : verdict === 'bad request' ? 'status 400' : 'status 200';
  const sees: AppSees = typeof verdict === 'object' ? { path: verdict.path } : 'never';
  return [
    { group: 'path', name: `${name} over HTTP/1.1: ${target}`, send: (id) => h1(open.info.inbound, get(target, id)), expect: expectation, app: sees },
    { group: 'path', name: `${name} over HTTP/2: ${target}`, send: (id) => h2(open.info.inbound, { ':path': target, 'x-attack-id': id }), expect: expectation, app: sees },
  ];
}

const ATTACKS: Attack[] = [
  // Certificates at the STRICT inbound port: refused right after the handshake (a reset) or inside it (an alert).
  { group: 'certificate', name: 'self-signed certificate claiming istio-system/admin', send: (id) => overMtls(certs.selfSigned, id), expect: 'reset', app: 'never' },
  { group: 'certificate', name: 'certificate from another root', send: (id) => overMtls(certs.otherRoot, id), expect: 'reset', app: 'never' },
  { group: 'certificate', name: 'expired certificate of the mesh root', send: (id) => overMtls(certs.expired, id), expect: 'reset', app: 'never' },
  { group: 'certificate', name: 'certificate not yet valid', send: (id) => overMtls(certs.notYetValid, id), expect: 'reset', app: 'never' },
  { group: 'certificate', name: 'mesh root, another trust domain (evil.example)', send: (id) => overMtls(certs.wrongTrustDomain, id), expect: 'reset', app: 'never' },
  { group: 'certificate', name: 'chain through an intermediate that is not a CA (a workload leaf as issuer)', send: (id) => overMtls(certs.viaLeaf, id), expect: 'reset', app: 'never' },
  { group: 'certificate', name: 'leaf without clientAuth (serverAuth only)', send: (id) => overMtls(certs.noClientAuth, id), expect: 'reset', app: 'never' },
  { group: 'certificate', name: 'no client certificate under STRICT', send: (id) => overMtls(undefined, id), expect: 'tls alert: certificate required', app: 'never' },
  { group: 'certificate', name: 'two SPIFFE identities in one certificate', send: (id) => overMtls(certs.twoIdentities, id), expect: 'reset', app: 'never' },
  { group: 'certificate', name: 'certificate revoked by the CRL beside the bundle', send: (id) => overMtls(certs.revoked, id), expect: 'reset', app: 'never' },
  { group: 'certificate', name: 'plaintext under STRICT', send: (id) => h1(strict.info.inbound, get('/items', id)), expect: 'reset', app: 'never' },

  // x-forwarded-client-cert: the app's only view of the caller; Envoy's SANITIZE_SET replaces what a caller sent.
  ...(['HTTP/1.1', 'HTTP/2'] as const).flatMap((proto): Attack[] => {
    const forged = `By=spiffe://${TD}/ns/shop/sa/cart;URI=spiffe://${TD}/ns/istio-system/sa/admin`;
    return [
      {
        group: 'identity header', name: `forged XFCC over plaintext ${proto}: removed`,
        send: (id) => (proto === 'HTTP/1.1' ? h1(open.info.inbound, get('/items', id, { 'x-forwarded-client-cert': forged })) : h2(open.info.inbound, { ':path': '/items', 'x-attack-id': id, 'x-forwarded-client-cert': forged })),
        expect: 'status 200', app: { headers: { 'x-forwarded-client-cert': undefined } },
      },
      {
        group: 'identity header', name: `forged XFCC over mTLS ${proto}: replaced by the verified peer`,
        send: async (id) => {
          if (proto === 'HTTP/1.1') return `status ${(await mtlsHttp1(open.info.inbound, certs.frontend, get('/items', id, { 'x-forwarded-client-cert': forged }))).status}`;
          return `status ${(await mtlsHttp2(open.info.inbound, certs.frontend, { ':path': '/items', ':authority': 'cart', 'x-attack-id': id, 'x-forwarded-client-cert': forged })).status}`;
        },
        expect: 'status 200', app: { headers: { 'x-forwarded-client-cert': 'XFCC_OF_FRONTEND' } },
      },
    ];
  }),

  // JWTs (RequestAuthentication with Envoy jwt_authn semantics): 401 for a token that does not verify.
  { group: 'token', name: 'alg: none', send: async (id) => h1(open.info.inbound, get('/items', id, { authorization: `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: ISS, sub: 'admin', aud: 'cart', exp: now() + 300 })}.` })), expect: 'status 401', app: 'never' },
  {
    group: 'token', name: 'HS256 signed with the RSA public key (key confusion)',
    send: async (id) => {
      const signing = `${b64({ alg: 'HS256', typ: 'JWT', kid: 'k1' })}.${b64({ iss: ISS, sub: 'admin', aud: 'cart', exp: now() + 300 })}`;
      const sig = createHmac('sha256', rsaPublicPem).update(signing).digest('base64url');
      return h1(open.info.inbound, get('/items', id, { authorization: `Bearer ${signing}.${sig}` }));
    },
    expect: 'status 401', app: 'never',
  },
  { group: 'token', name: 'unknown kid', send: async (id) => h1(open.info.inbound, get('/items', id, { authorization: `Bearer ${await jwt({}, { kid: 'k9' })}` })), expect: 'status 401', app: 'never' },
  { group: 'token', name: 'expired token (beyond the 60 s skew)', send: async (id) => h1(open.info.inbound, get('/items', id, { authorization: `Bearer ${await jwt({ exp: now() - 300 })}` })), expect: 'status 401', app: 'never' },
  { group: 'token', name: 'nbf in the future (beyond the 60 s skew)', send: async (id) => h1(open.info.inbound, get('/items', id, { authorization: `Bearer ${await jwt({ nbf: now() + 300 })}` })), expect: 'status 401', app: 'never' },
  { group: 'token', name: 'wrong audience', send: async (id) => h1(open.info.inbound, get('/items', id, { authorization: `Bearer ${await jwt({ aud: 'payments' })}` })), expect: 'status 401', app: 'never' },
  { group: 'token', name: 'issuer no rule names, on a path that needs a user (treated as missing, then denied)', send: async (id) => h1(open.info.inbound, get('/orders/1', id, { authorization: `Bearer ${await jwt({}, { iss: 'https://evil.example' })}` })), expect: 'status 403', app: 'never' },
  { group: 'token', name: 'signed by another key', send: async (id) => h1(open.info.inbound, get('/items', id, { authorization: `Bearer ${await jwt({}, { key: stranger })}` })), expect: 'status 401', app: 'never' },
  { group: 'token', name: 'two tokens: a valid Bearer and a forged ?access_token=', send: async (id) => h1(open.info.inbound, get(`/orders/1?access_token=${await jwt({ sub: 'root' }, { key: stranger })}`, id, { authorization: `Bearer ${await jwt()}` })), expect: 'status 401', app: 'never' },
  // Envoy reads every value of the token header and finds `Bearer ` anywhere in it: a token behind another value
  // (a Basic credential first, in a second header line or after a comma) is verified too, never passed on unread.
  { group: 'token', name: 'forged Bearer in a second Authorization line behind a Basic one', send: async (id) => h1(open.info.inbound, `GET /items HTTP/1.1\r\nhost: cart\r\nx-attack-id: ${id}\r\nauthorization: Basic Zm9vOmJhcg==\r\nauthorization: Bearer ${await jwt({ sub: 'root' }, { key: stranger })}\r\nconnection: close\r\n\r\n`), expect: 'status 401', app: 'never' },
  { group: 'token', name: 'forged Bearer after a Basic credential in one Authorization value', send: async (id) => h1(open.info.inbound, get('/items', id, { authorization: `Basic Zm9vOmJhcg==, Bearer ${await jwt({ sub: 'root' }, { key: stranger })}` })), expect: 'status 401', app: 'never' },
  { group: 'token', name: 'forged Bearer after a Basic credential over HTTP/2', send: async (id) => h2(open.info.inbound, { ':path': '/items', 'x-attack-id': id, authorization: `Basic Zm9vOmJhcg==, Bearer ${await jwt({ sub: 'root' }, { key: stranger })}` }), expect: 'status 401', app: 'never' },
  {
    group: 'token', name: 'spoofed output headers without a token: removed before the app',
    send: (id) => h1(open.info.inbound, get('/items', id, { 'x-jwt-payload': b64({ iss: ISS, sub: 'admin', group: 'admins' }), 'x-jwt-group': 'admins' })),
    expect: 'status 200', app: { headers: { 'x-jwt-payload': undefined, 'x-jwt-group': undefined } },
  },
  {
    group: 'token', name: 'spoofed output header beside a valid token: the token\'s value wins',
    send: async (id) => h1(open.info.inbound, get('/items', id, { authorization: `Bearer ${await jwt()}`, 'x-jwt-group': 'admins' })),
    expect: 'status 200', app: { headers: { 'x-jwt-group': 'users' } },
  },
  { group: 'token', name: 'oversized token (64 KiB)', send: (id) => h1(open.info.inbound, get('/items', id, { authorization: `Bearer ${'a'.repeat(65_536)}` })), expect: 'status 431', app: 'never' },

  // AuthorizationPolicy path tricks, with Istio's verdicts under its default normalization (BASE = Envoy
  // normalize_path: dot-segments removed, unreserved %XX decoded, `\` → `/`; %2F, %5C and `//` kept; case-sensitive;
  // %00 rejected). Where Istio lets the request through, the app sees exactly the path the policy judged.
  ...pathTrick('encoded slash (%2F)', '/admin%2Fconfig', { path: '/admin%2Fconfig' }),
  ...pathTrick('double slash (//)', '//admin', { path: '//admin' }),
  ...pathTrick('dot segment (/./)', '/./admin', 'denied'),
  ...pathTrick('dot-dot segment (/../)', '/public/../admin', 'denied'),
  ...pathTrick('encoded dot-dot (%2e%2e)', '/public/%2e%2e/admin', 'denied'),
  ...pathTrick('encoded letter (%61)', '/%61dmin/users', 'denied'),
  ...pathTrick('case (/ADMIN)', '/ADMIN', { path: '/ADMIN' }),
  ...pathTrick('path parameters (;)', '/admin;jsessionid=1', { path: '/admin;jsessionid=1' }),
  ...pathTrick('NUL (%00)', '/admin%00', 'bad request'),
  ...pathTrick('backslash', '/public\\..\\admin', 'denied'),

  // Pseudo-header values hold no NUL, CR, LF (RFC 9113 §8.2.1 is about every field), and `:path` no blank or control
  // character: an HTTP/1 request line cannot carry them (400) and Envoy resets such a stream. Passed on, `/admin\0.png`
  // is judged as not `/admin` while an app that ends the string at NUL serves /admin (as `%00`, refused already).
  ...(([
    ['NUL in :path', [':path', '/admin\u0000.png']],
    ['a space in :path', [':path', '/admin /x']],
    ['a control character in :path', [':path', '/admin\u0001']],
    ['NUL in :authority', [':authority', 'cart\u0000.payments']],
  ] as const).map(([name, [field, value]]): Attack => ({
    group: 'path', name: `${name} over HTTP/2: the stream is reset`,
    send: (id) => h2Raw(open.info.inbound, [[':method', 'GET'], [':scheme', 'http'], [':path', field === ':path' ? value : '/items'], [':authority', field === ':authority' ? value : 'cart'], ['x-attack-id', id]]),
    expect: 'reset', app: 'never',
  }))),

  // Methods: the policy and the app see one method, whatever the protocol; a lowercase method is refused (Istio: 400).
  { group: 'method', name: 'DELETE over HTTP/1.1', send: (id) => h1(open.info.inbound, get('/items', id, {}, 'DELETE')), expect: 'status 403', app: 'never' },
  { group: 'method', name: 'DELETE over HTTP/2', send: (id) => h2(open.info.inbound, { ':method': 'DELETE', ':path': '/items', 'x-attack-id': id }), expect: 'status 403', app: 'never' },
  { group: 'method', name: 'lowercase delete over HTTP/1.1', send: (id) => h1(open.info.inbound, get('/items', id, {}, 'delete')), expect: 'status 400', app: 'never' },
  { group: 'method', name: 'lowercase delete over HTTP/2', send: (id) => h2(open.info.inbound, { ':method': 'delete', ':path': '/items', 'x-attack-id': id }), expect: 'status 400', app: 'never' },

  // Host: the inbound side never routes by Host (it is this app or nothing); a policy on hosts sees the real one.
  { group: 'host', name: 'Host of another service over HTTP/1.1', send: (id) => h1(open.info.inbound, get('/items', id, {}, 'GET', 'payments.shop.svc.cluster.local')), expect: 'status 403', app: 'never' },
  { group: 'host', name: ':authority of another service over HTTP/2', send: (id) => h2(open.info.inbound, { ':authority': 'payments.shop.svc.cluster.local', ':path': '/items', 'x-attack-id': id }), expect: 'status 403', app: 'never' },
  { group: 'host', name: 'absolute-form target of another service behind Host: cart', send: (id) => h1(open.info.inbound, get('http://payments.shop.svc.cluster.local/items', id)), expect: 'status 403', app: 'never' },

  // h2c: an upgrade the sidecar does not take itself (one RFC 9113 says not to take, or any inside mTLS) must not
  // reach an app that would take it: behind the switch every HTTP/2 stream would bypass the policy. Envoy removes
  // `Upgrade: h2c` and serves the request as HTTP/1.1; the app sees a plain GET and nothing after it.
  {
    group: 'upgrade', name: 'h2c upgrade without HTTP2-Settings in Connection, then HTTP/2 to a denied path',
    send: async (id) => h2cSmuggle(await dial(open.info.inbound), id, 'Upgrade'),
    expect: 'status 200', app: { path: '/public', headers: { upgrade: undefined, 'http2-settings': undefined } },
  },
  {
    group: 'upgrade', name: 'h2c upgrade inside mTLS (h2c is cleartext only), then HTTP/2 to a denied path',
    send: async (id) => h2cSmuggle(await dialMtls(open.info.inbound, certs.frontend!), id, 'Upgrade, HTTP2-Settings'),
    expect: 'status 200', app: { path: '/public', headers: { upgrade: undefined, 'http2-settings': undefined } },
  },
];

describe('attack corpus: identities, tokens and HTTP policy', () => {
  it('the corpus is a table of at least 40 attempts', () => {
    expect(ATTACKS.length).toBeGreaterThanOrEqual(40);
    expect(new Set(ATTACKS.map((a) => a.name)).size).toBe(ATTACKS.length);
  });

  it('controls: a mesh client, a valid token and an allowed path get through (so every refusal below is the attack\'s)', async () => {
    expect(await overMtls(certs.frontend, 'control-1')).toBe('status 200');
    expect(await h1(open.info.inbound, get('/orders/1', 'control-2', { authorization: `Bearer ${await jwt()}` }))).toBe('status 200');
    expect(await h2(open.info.inbound, { ':path': '/public/x', 'x-attack-id': 'control-3' })).toBe('status 200');
    expect(app.seen('control-2')[0]!.headers['x-jwt-group']).toBe('users');
  });

  let n = 0;
  for (const a of ATTACKS) {
    it(`${a.group}: ${a.name} → ${a.expect}${a.app === 'never' ? ', the app never sees it' : ''}`, async () => {
      const id = `attack-${++n}`;
      const conns = app.connections;
      expect(await a.send(id)).toBe(a.expect);
      const seen: AppRequest[] = app.seen(id);
      if (a.app === 'never') {
        expect(seen).toEqual([]);
        // A refused certificate never even opens a connection to the app.
        if (a.group === 'certificate') expect(app.connections).toBe(conns);
        return;
      }
      expect(seen).toHaveLength(1);
      if (a.app.path !== undefined) expect(seen[0]!.path).toBe(a.app.path);
      for (const [h, v] of Object.entries(a.app.headers ?? {})) {
        if (v === 'XFCC_OF_FRONTEND') expect(seen[0]!.headers[h]).toMatch(new RegExp(`^By=spiffe://${TD}/ns/shop/sa/cart;Hash=[0-9a-f]{64};Subject="";URI=spiffe://${TD}/ns/web/sa/frontend$`));
        else expect(seen[0]!.headers[h]).toBe(v);
      }
    });
  }
});
