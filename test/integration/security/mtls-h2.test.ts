// HTTP/2 (gRPC-shaped) between two sidecars over mutual TLS: the client sidecar's HTTP/2 pool originates mTLS with
// ALPN istio-h2, the server sidecar terminates it and serves the decrypted connection as HTTP/2 to an h2c app,
// trailers intact; the app gets the caller's identity.
import http2 from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRoot, issueWorkload } from '../../../src/security/dev-ca.js';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { fakeUpstream, type FakeH2Upstream } from '../../support/fake-upstream.js';

let dir: string;
let app: FakeH2Upstream;
let server: RunningProxy;
let client: RunningProxy;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-mtls-h2-'));
  const root = createRoot(join(dir, 'root'));
  const cert = (ns: string, sa: string): string => issueWorkload(root, { trustDomain: 'cluster.local', namespace: ns, serviceAccount: sa }, join(dir, `${ns}-${sa}`)).dir;
  // A gRPC app: every call answered with the message "hi", grpc-status 0.
  app = await fakeUpstream().grpc().route('*', 0, 'hi').start();
  const appPort = app.port;
  server = await startProxy({
    'pa.yaml': 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n',
  }, ['--app-port', String(appPort), '--namespace', 'shop', '--cert-dir', cert('shop', 'grpc')]);
  client = await startProxy({
    'se.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: grpc, namespace: shop}
spec:
  hosts: [grpc.shop.svc.cluster.local]
  ports: [{number: 50051, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {grpc: ${server.info.inbound}}, labels: {security.istio.io/tlsMode: istio}, serviceAccount: grpc}]
`,
  }, ['--namespace', 'web', '--cert-dir', cert('web', 'caller')]);
});

afterAll(async () => {
  await Promise.all([server?.stop(), client?.stop()]);
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('HTTP/2 over mTLS between sidecars', () => {
  it('a gRPC-shaped call: 200, body and trailers through, XFCC at the app, counted as mutual_tls', async () => {
    const s = http2.connect(`http://127.0.0.1:${client.info.outbound}`);
    try {
      const got = await new Promise<{ status: number; body: Buffer; trailers: http2.IncomingHttpHeaders }>((resolve, reject) => {
        const st = s.request({ ':method': 'POST', ':path': '/pkg.Svc/Call', ':authority': 'grpc.shop.svc.cluster.local:50051', 'content-type': 'application/grpc', te: 'trailers' });
        let status = 0;
        const chunks: Buffer[] = [];
        st.on('response', (h) => { status = Number(h[':status']); });
        st.on('data', (d: Buffer) => chunks.push(d));
        st.on('trailers', (t) => resolve({ status, body: Buffer.concat(chunks), trailers: t }));
        st.on('error', reject);
        st.end(Buffer.from([0, 0, 0, 0, 0]));
      });
      expect(got.status).toBe(200);
      expect(got.body.subarray(5).toString()).toBe('hi');
      expect(got.trailers['grpc-status']).toBe('0');
      expect(String(app.requests.at(-1)?.headers['x-forwarded-client-cert'])).toMatch(/URI=spiffe:\/\/cluster\.local\/ns\/web\/sa\/caller$/);
      const stats = (await server.admin('/stats/prometheus')).body;
      expect(stats).toMatch(/istio_requests_total\{[^}]*source_principal="spiffe:\/\/cluster\.local\/ns\/web\/sa\/caller"[^}]*request_protocol="grpc"[^}]*connection_security_policy="mutual_tls"/);
    } finally {
      s.close();
    }
  });
});
