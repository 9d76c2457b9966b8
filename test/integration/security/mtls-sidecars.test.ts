// Two (and more) Remora sidecars on loopback talking mutual TLS, through the real CLI, with certificates from the
// development CA (remora certs): the client sidecar originates mTLS (auto mTLS to an endpoint labelled
// security.istio.io/tlsMode=istio, or DestinationRule ISTIO_MUTUAL), the server sidecar terminates it under
// PeerAuthentication and hands the app the caller's identity (XFCC); STRICT refuses plaintext, PERMISSIVE takes both,
// a wrong server identity is refused, AuthorizationPolicy decides by principal, certificates rotate mid-traffic
// without a failed request, and a sidecar without a valid certificate is not ready.
import http from 'node:http';
import { mkdtempSync, rmSync, cpSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRoot, issueWorkload, type RootFiles } from '../../../src/security/dev-ca.js';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { fakeUpstream, type FakeUpstream, type SeenRequest } from '../../support/fake-upstream.js';

let dir: string;
let root: RootFiles;
let app: FakeUpstream;
let appPort = 0;
let seen: SeenRequest[] = [];
let server: RunningProxy;
let client: RunningProxy;
let other: RunningProxy | undefined;
const TD = 'cluster.local';

const PA = (mode: string): string => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: ${mode}}}
`;
const AP = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: frontend-only, namespace: shop}
spec:
  selector: {matchLabels: {app: cart}}
  rules: [{from: [{source: {principals: ["${TD}/ns/web/sa/frontend"]}}]}]
`;

/**
 * A service of namespace shop served by the server sidecar. Auto mTLS checks that the server presents the endpoint's
 * service account (an inline endpoint's account is one of the ServiceEntry's namespace, as in Istio).
 */
function serviceEntry(name: string, port: number, labels: Record<string, string> = {}, serviceAccount?: string): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: shop}
spec:
  hosts: [${name}.shop.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ${port}}, labels: ${JSON.stringify(labels)}${serviceAccount !== undefined ? `, serviceAccount: ${serviceAccount}` : ''}}]
`;
}

function clientConfig(serverInbound: number): Record<string, string> {
  return {
    'se.yaml': [
      serviceEntry('cart', serverInbound, { 'security.istio.io/tlsMode': 'istio' }, 'cart'),
      serviceEntry('cart-plain', serverInbound),
      serviceEntry('cart-pinned', serverInbound),
      serviceEntry('cart-wrong-san', serverInbound),
      // Auto mTLS to a meshed endpoint whose account is unknown, or another account than the server's.
      serviceEntry('cart-no-account', serverInbound, { 'security.istio.io/tlsMode': 'istio' }),
      serviceEntry('cart-other-account', serverInbound, { 'security.istio.io/tlsMode': 'istio' }, 'payments'),
    ].join('---\n') + `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart-pinned, namespace: web}
spec:
  host: cart-pinned.shop.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, subjectAltNames: ["spiffe://${TD}/ns/shop/sa/cart"]}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart-wrong-san, namespace: web}
spec:
  host: cart-wrong-san.shop.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, subjectAltNames: ["spiffe://${TD}/ns/shop/sa/payments"]}}
`,
  };
}

function certDir(ns: string, sa: string, opts: { days?: number } = {}): string {
  return issueWorkload(root, { trustDomain: TD, namespace: ns, serviceAccount: sa }, join(dir, `${ns}-${sa}-${Math.random().toString(36).slice(2, 8)}`), opts).dir;
}

const agent = new Agent({ keepAliveTimeout: 100 });
async function via(p: RunningProxy, host: string, path = '/'): Promise<{ status: number; body: string }> {
  const r = await request(`http://127.0.0.1:${p.info.outbound}${path}`, { headers: { host }, dispatcher: agent });
  return { status: r.statusCode, body: await r.body.text() };
}

async function stat(p: RunningProxy, re: RegExp): Promise<number> {
  const body = (await p.admin('/stats/prometheus')).body;
  let sum = 0;
  for (const line of body.split('\n')) if (re.test(line)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** One plaintext request on a connection of its own (a keep-alive one opened under PERMISSIVE would outlive a switch). */
function plain(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { host: 'cart' }, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

let serverCerts: string;
let clientCerts: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-mtls-e2e-'));
  root = createRoot(join(dir, 'root'));
  app = await fakeUpstream().route('*', 200, (r) => `app ${r.url}`).start();
  seen = app.requests;
  appPort = app.port;
  serverCerts = certDir('shop', 'cart');
  clientCerts = certDir('web', 'frontend');
  server = await startProxy({ 'pa.yaml': PA('STRICT'), 'ap.yaml': AP }, ['--app-port', String(appPort), '--namespace', 'shop', '--labels', 'app=cart', '--cert-dir', serverCerts,
    '--access-log', join(dir, 'server.log'), '--access-log-format', '%RESPONSE_CODE% %REQ(:PATH)% %DOWNSTREAM_PEER_URI_SAN%']);
  client = await startProxy(clientConfig(server.info.inbound), ['--namespace', 'web', '--labels', 'app=frontend', '--cert-dir', clientCerts]);
});

afterAll(async () => {
  await Promise.all([server?.stop(), client?.stop(), other?.stop()]);
  await app?.close();
  await agent.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('mutual TLS between two sidecars', () => {
  it('auto mTLS to a meshed endpoint: 200; the app gets the caller in XFCC; the server counts mutual_tls with the peer principal', async () => {
    const n = seen.length;
    expect(await via(client, 'cart.shop.svc.cluster.local', '/a')).toEqual({ status: 200, body: 'app /a' });
    const xfcc = String(seen[n]!.headers['x-forwarded-client-cert']);
    expect(xfcc).toMatch(new RegExp(`^By=spiffe://${TD}/ns/shop/sa/cart;Hash=[0-9a-f]{64};Subject="";URI=spiffe://${TD}/ns/web/sa/frontend$`));
    expect(await stat(server, /^istio_requests_total\{.*source_principal="spiffe:\/\/cluster\.local\/ns\/web\/sa\/frontend".*connection_security_policy="mutual_tls".*\}/)).toBeGreaterThanOrEqual(1);
    // Inbound destination_service is the service the request named, as Istio reports it (not the app's address).
    expect(await stat(server, /^istio_requests_total\{reporter="destination".*destination_service="cart\.shop\.svc\.cluster\.local",destination_service_name="cart",destination_service_namespace="shop".*\}/)).toBeGreaterThanOrEqual(1);
    expect(await stat(server, /^remora_inbound_mtls_connections_total/)).toBeGreaterThanOrEqual(1);
    await waitFor(() => existsSync(join(dir, 'server.log')) && readFileSync(join(dir, 'server.log'), 'utf8').includes('200 /a spiffe://cluster.local/ns/web/sa/frontend\n'), 3000);
    // ISTIO_MUTUAL with the right subjectAltNames pinned works too.
    expect((await via(client, 'cart-pinned.shop.svc.cluster.local')).status).toBe(200);
  });

  it('STRICT: plaintext is refused, directly and through a sidecar that does not originate mTLS', async () => {
    const before = await stat(server, /^remora_inbound_mtls_refused_total/);
    await expect(plain(server.info.inbound, '/')).rejects.toThrow();
    const r = await via(client, 'cart-plain.shop.svc.cluster.local');
    expect(r.status).toBe(503);
    expect(await stat(server, /^remora_inbound_mtls_refused_total/)).toBeGreaterThan(before);
  });

  it('a server identity other than the DestinationRule\'s subjectAltNames: refused (503), the app never called', async () => {
    const n = seen.length;
    const r = await via(client, 'cart-wrong-san.shop.svc.cluster.local');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/connect|TLS|identity/i);
    expect(seen.length).toBe(n);
  });

  it('auto mTLS checks the endpoint\'s own account: another identity of the trust domain, or none known, is refused (503 UF)', async () => {
    const n = seen.length;
    const san = await stat(client, /^remora_ssl_verify_failures_total\{direction="outbound",reason="fail_verify_san"\}/);
    for (const host of ['cart-other-account', 'cart-no-account']) {
      const r = await via(client, `${host}.shop.svc.cluster.local`);
      expect(r.status).toBe(503);
      expect(r.body).toMatch(/connection failure|connect/i);
    }
    expect(seen.length).toBe(n);
    expect(await stat(client, /^remora_ssl_verify_failures_total\{direction="outbound",reason="fail_verify_san"\}/)).toBeGreaterThanOrEqual(san + 2);
  });

  it('AuthorizationPolicy by principal: another service account of the mesh is denied (403)', async () => {
    other = await startProxy(clientConfig(server.info.inbound), ['--namespace', 'web', '--labels', 'app=batch', '--cert-dir', certDir('web', 'batch')]);
    const r = await via(other, 'cart.shop.svc.cluster.local');
    expect(r).toEqual({ status: 403, body: 'RBAC: access denied' });
    expect((await via(client, 'cart.shop.svc.cluster.local')).status).toBe(200);
  });

  it('PERMISSIVE: plaintext and mTLS on the same port', async () => {
    server.writeConfig('pa.yaml', PA('PERMISSIVE'));
    server.writeConfig('ap.yaml', '');
    await waitFor(async () => {
      try {
        const r = await plain(server.info.inbound, '/plain');
        return r.status === 200 && r.body === 'app /plain';
      } catch { return false; }
    }, 5000);
    expect((await via(client, 'cart.shop.svc.cluster.local', '/tls')).status).toBe(200);
    server.writeConfig('pa.yaml', PA('STRICT'));
    server.writeConfig('ap.yaml', AP);
    await waitFor(async () => {
      try { await plain(server.info.inbound, '/'); return false; } catch { return true; }
    }, 5000);
  });

  it('both certificates rotate mid-traffic: no request fails; both sidecars take the new ones', async () => {
    const serialOf = async (p: RunningProxy): Promise<string> => JSON.parse((await p.admin('/config_dump')).body).certificates.serialNumber as string;
    const s0 = await serialOf(server);
    const c0 = await serialOf(client);
    let ok = 0;
    let failed = 0;
    let stop = false;
    const load = (async () => {
      while (!stop) {
        const r = await via(client, 'cart.shop.svc.cluster.local', '/r').catch(() => ({ status: 0, body: '' }));
        if (r.status === 200) ok++; else failed++;
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    // New certificates written into the mounted directories, as cert-manager renews them.
    for (const [from, to] of [[certDir('shop', 'cart'), serverCerts], [certDir('web', 'frontend'), clientCerts]] as const) {
      for (const f of ['tls.key', 'tls.crt']) cpSync(join(from, f), join(to, `${f}.new`));
      for (const f of ['tls.key', 'tls.crt']) cpSync(join(to, `${f}.new`), join(to, f));
    }
    await waitFor(async () => (await serialOf(server)) !== s0 && (await serialOf(client)) !== c0, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await load;
    expect(failed).toBe(0);
    expect(ok).toBeGreaterThan(20);
    expect(await stat(server, /^remora_workload_cert_rotations_total/)).toBe(1);
    expect((await via(client, 'cart.shop.svc.cluster.local')).status).toBe(200);
  });

  it('a sidecar whose certificate is expired is not ready, and says why', async () => {
    const p = await startProxy({ 'pa.yaml': PA('STRICT') }, ['--namespace', 'shop', '--cert-dir', certDir('shop', 'old', { days: -1 })]);
    try {
      const r = await p.admin('/ready');
      expect(r).toEqual({ status: 503, body: 'NO_VALID_WORKLOAD_CERTIFICATE\n' });
      expect(JSON.parse((await p.admin('/config_dump')).body).certificates).toMatchObject({ valid: false, identity: null, lastError: expect.stringMatching(/expired/) });
    } finally {
      await p.stop();
    }
  });
});
