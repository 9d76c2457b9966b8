// The inbound mTLS gate verifies the peer's certificate chain, through the real CLI: a client that presents a
// self-signed certificate or one from another root, with the SPIFFE identity an AuthorizationPolicy allows, is
// refused at the handshake on every path that starts with mTLS (HTTP/1, HTTP/2, a WebSocket upgrade, CONNECT),
// under STRICT and PERMISSIVE, the refusal counted with Envoy's reason; the app never sees it. A client with a
// certificate of the mesh gets through, and the policy then judges its real identity.
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCrl, createRoot, issueWorkload, selfSignedWorkload, type RootFiles, type WorkloadFiles } from '../../../src/security/dev-ca.js';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { mtlsExchange, mtlsHttp1, mtlsHttp2 } from '../../support/mtls-client.js';

const TD = 'cluster.local';
const ADMIN = { trustDomain: TD, namespace: 'istio-system', serviceAccount: 'admin' };
let dir: string;
let root: RootFiles;
let app: http.Server;
let appPort = 0;
/** Every request, upgrade and CONNECT the app saw, and every TCP connection made to it. */
const seen: string[] = [];
let appConnections = 0;
let strict: RunningProxy;
let permissive: RunningProxy;
let selfSigned: WorkloadFiles;
let otherRoot: WorkloadFiles;
let meshAdmin: WorkloadFiles;
let meshFrontend: WorkloadFiles;
let foreignDomain: WorkloadFiles;

const POLICIES = (mode: string): Record<string, string> => ({
  'pa.yaml': `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: ${mode}}}
`,
  'ap.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admin-only, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  rules: [{from: [{source: {principals: ["${TD}/ns/istio-system/sa/admin"]}}]}]
`,
});

async function stat(p: RunningProxy, re: RegExp): Promise<number> {
  const body = (await p.admin('/stats/prometheus')).body;
  let sum = 0;
  for (const line of body.split('\n')) if (re.test(line)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-peer-verify-'));
  root = createRoot(join(dir, 'root'));
  const other = createRoot(join(dir, 'other'));
  const serverCerts = issueWorkload(root, { trustDomain: TD, namespace: 'shop', serviceAccount: 'cart' }, join(dir, 'server'));
  selfSigned = selfSignedWorkload(`spiffe://${TD}/ns/istio-system/sa/admin`, join(dir, 'self'));
  otherRoot = issueWorkload(other, ADMIN, join(dir, 'other-admin'));
  meshAdmin = issueWorkload(root, ADMIN, join(dir, 'admin'));
  meshFrontend = issueWorkload(root, { trustDomain: TD, namespace: 'web', serviceAccount: 'frontend' }, join(dir, 'frontend'));
  // Signed by the mesh's own root, but for another trust domain: the chain verifies, the identity is not ours.
  foreignDomain = issueWorkload(root, { ...ADMIN, trustDomain: 'evil.example' }, join(dir, 'foreign'));
  app = http.createServer((req, res) => { seen.push(`${req.method} ${req.url}`); req.resume(); res.end('app'); });
  app.on('connection', () => { appConnections++; });
  app.on('upgrade', (req, sock: net.Socket) => { seen.push(`upgrade ${req.url}`); sock.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n'); });
  app.on('connect', (req, sock: net.Socket) => { seen.push(`CONNECT ${req.url}`); sock.end('HTTP/1.1 200 OK\r\n\r\n'); });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appPort = (app.address() as net.AddressInfo).port;
  const args = ['--app-port', String(appPort), '--namespace', 'shop', '--labels', 'app=cart', '--cert-dir', serverCerts.dir];
  [strict, permissive] = await Promise.all([startProxy(POLICIES('STRICT'), [...args, '--log-level', 'debug']), startProxy(POLICIES('PERMISSIVE'), args)]);
});

afterAll(async () => {
  await Promise.all([strict?.stop(), permissive?.stop()]);
  app?.close();
  rmSync(dir, { recursive: true, force: true });
});

const GET = 'GET /secret HTTP/1.1\r\nhost: cart\r\n\r\n';
const WS = 'GET /ws HTTP/1.1\r\nhost: cart\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n';
const CONNECT = 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nhost: 127.0.0.1:22\r\n\r\n';

describe('inbound mTLS: the peer chain is verified', () => {
  it('a certificate of the mesh gets through; the policy judges its verified identity', async () => {
    const n = seen.length;
    expect((await mtlsHttp1(strict.info.inbound, meshAdmin, GET)).status).toBe(200);
    expect((await mtlsHttp1(strict.info.inbound, meshFrontend, GET)).status).toBe(403);
    expect(seen.slice(n)).toEqual(['GET /secret']);
  });

  for (const [name, cert] of [['self-signed', () => selfSigned], ['another root', () => otherRoot]] as const) {
    for (const mode of ['STRICT', 'PERMISSIVE'] as const) {
      it(`${mode}: a ${name} certificate claiming the allowed identity is refused on HTTP/1, HTTP/2, WebSocket and CONNECT`, async () => {
        const p = mode === 'STRICT' ? strict : permissive;
        const before = await stat(p, /^remora_ssl_verify_failures_total\{direction="inbound",reason="fail_verify_error"\}/);
        const n = seen.length;
        const conns = appConnections;
        const h1 = await mtlsHttp1(p.info.inbound, cert(), GET);
        expect(h1.status).toBe(0);
        expect(h1.error).toBe('ECONNRESET');
        const h2 = await mtlsHttp2(p.info.inbound, cert(), { ':path': '/secret', ':authority': 'cart' });
        expect(h2.status).toBe(0);
        const ws = await mtlsExchange(p.info.inbound, cert(), WS);
        expect(ws.data).toBe('');
        const tunnel = await mtlsExchange(p.info.inbound, cert(), CONNECT);
        expect(tunnel.data).toBe('');
        expect(seen.slice(n)).toEqual([]);
        expect(appConnections).toBe(conns);
        expect(await stat(p, /^remora_ssl_verify_failures_total\{direction="inbound",reason="fail_verify_error"\}/)).toBe(before + 4);
      });
    }
  }

  it('a certificate of the mesh\'s root for another trust domain is refused as fail_verify_san; no certificate as fail_verify_no_cert', async () => {
    const n = seen.length;
    const san = await stat(strict, /^remora_ssl_verify_failures_total\{direction="inbound",reason="fail_verify_san"\}/);
    const noCert = await stat(strict, /^remora_ssl_verify_failures_total\{direction="inbound",reason="fail_verify_no_cert"\}/);
    const wrongTd = await mtlsHttp1(strict.info.inbound, foreignDomain, GET);
    expect(wrongTd).toMatchObject({ status: 0, error: 'ECONNRESET' });
    const none = await mtlsHttp1(strict.info.inbound, undefined, GET);
    expect(none.status).toBe(0);
    expect(none.error).toBe('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    expect(seen.slice(n)).toEqual([]);
    expect(await stat(strict, /^remora_ssl_verify_failures_total\{direction="inbound",reason="fail_verify_san"\}/)).toBe(san + 1);
    expect(await stat(strict, /^remora_ssl_verify_failures_total\{direction="inbound",reason="fail_verify_no_cert"\}/)).toBe(noCert + 1);
    // The operator's log line (debug) says why, with Envoy's stat name.
    await waitFor(() => /"msg":"mTLS peer refused: peer trust domain evil.example is not cluster.local","reason":"ssl.fail_verify_san"/.test(strict.stderr), 2000);
    expect(strict.stderr).toMatch(/"msg":"mTLS peer refused: certificate verify failed: DEPTH_ZERO_SELF_SIGNED_CERT[^"]*","reason":"ssl.fail_verify_error"/);
  });

  it('a root rotation with ca.crt alone is taken (a peer of the new root then passes); a CRL beside it revokes', async () => {
    const certs = issueWorkload(root, { trustDomain: TD, namespace: 'shop', serviceAccount: 'cart' }, join(dir, 'rotating'));
    const p = await startProxy(POLICIES('STRICT'), ['--app-port', String(appPort), '--namespace', 'shop', '--labels', 'app=cart', '--cert-dir', certs.dir]);
    const swap = (file: string, content: string): void => { writeFileSync(`${file}.new`, content); renameSync(`${file}.new`, file); };
    try {
      const newRoot = createRoot(join(dir, 'new-root'));
      const fromNewRoot = issueWorkload(newRoot, ADMIN, join(dir, 'new-root-admin'));
      expect((await mtlsHttp1(p.info.inbound, fromNewRoot, GET)).status).toBe(0);
      // The bundle gains the new root (old and new for the overlap); the sidecar's own certificate is unchanged.
      swap(certs.caFile, readFileSync(root.certFile, 'utf8') + readFileSync(newRoot.certFile, 'utf8'));
      await waitFor(async () => (await stat(p, /^remora_workload_cert_rotations_total/)) === 1, 10_000);
      expect((await mtlsHttp1(p.info.inbound, fromNewRoot, GET)).status).toBe(200);
      expect((await mtlsHttp1(p.info.inbound, meshAdmin, GET)).status).toBe(200);
      // The old root revokes meshAdmin: refused; its other certificates still pass. As in Envoy, once a CRL is given
      // every CA of a chain needs one: the new root has none, so its certificates fail until it publishes one.
      createCrl(root, [meshAdmin.certFile], join(dir, 'crl.pem'));
      swap(join(certs.dir, 'ca-crl.pem'), readFileSync(join(dir, 'crl.pem'), 'utf8'));
      await waitFor(async () => (await stat(p, /^remora_workload_cert_rotations_total/)) === 2, 10_000);
      const n = seen.length;
      expect((await mtlsHttp1(p.info.inbound, meshAdmin, GET))).toMatchObject({ status: 0, error: 'ECONNRESET' });
      expect((await mtlsHttp1(p.info.inbound, meshFrontend, GET)).status).toBe(403);
      expect((await mtlsHttp1(p.info.inbound, fromNewRoot, GET)).status).toBe(0);
      expect(seen.slice(n)).toEqual([]);
    } finally {
      await p.stop();
    }
  });

  it('--trust-domain-aliases: a peer of an alias trust domain passes the handshake, and the policy then judges it as the same identity', async () => {
    const certs = issueWorkload(root, { trustDomain: TD, namespace: 'shop', serviceAccount: 'cart' }, join(dir, 'aliased'));
    const p = await startProxy(POLICIES('STRICT'), ['--app-port', String(appPort), '--namespace', 'shop', '--labels', 'app=cart', '--cert-dir', certs.dir, '--trust-domain-aliases', 'evil.example']);
    try {
      // evil.example/ns/istio-system/sa/admin: an alias is the mesh's own trust domain under another name.
      expect((await mtlsHttp1(p.info.inbound, foreignDomain, GET)).status).toBe(200);
      expect(JSON.parse((await p.admin('/config_dump')).body).certificates.trustDomains).toEqual([TD, 'evil.example']);
    } finally {
      await p.stop();
    }
  });

  it('--trust-domain-aliases: a policy written for the mesh trust domain allows the same identity of an alias (Istio trust domain migration), and no other', async () => {
    const certs = issueWorkload(root, { trustDomain: TD, namespace: 'shop', serviceAccount: 'cart' }, join(dir, 'migrating'));
    const oldAdmin = issueWorkload(root, { trustDomain: 'old.example', namespace: 'istio-system', serviceAccount: 'admin' }, join(dir, 'old-admin'));
    const oldOther = issueWorkload(root, { trustDomain: 'old.example', namespace: 'istio-system', serviceAccount: 'other' }, join(dir, 'old-other'));
    const p = await startProxy(POLICIES('STRICT'), ['--app-port', String(appPort), '--namespace', 'shop', '--labels', 'app=cart', '--cert-dir', certs.dir, '--trust-domain-aliases', 'old.example']);
    try {
      const n = seen.length;
      expect((await mtlsHttp1(p.info.inbound, oldAdmin, GET)).status).toBe(200);
      expect((await mtlsHttp1(p.info.inbound, oldOther, GET)).status).toBe(403);
      expect(seen.length).toBe(n + 1);
    } finally {
      await p.stop();
    }
  });
});
