// TLS origination to external services through the real CLI (DestinationRule tls SIMPLE and MUTUAL, Istio's egress
// pattern: the app speaks plain HTTP, the sidecar speaks TLS to the service): the server verified against
// caCertificates or skipped with insecureSkipVerify, its name against subjectAltNames, SNI sent, a client
// certificate from files or from credentialName, and caCrl: a revoked server certificate is refused.
import https from 'node:https';
import tls from 'node:tls';
import { mkdtempSync, rmSync, readFileSync, mkdirSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCrl, createRoot, issueWorkload } from '../../../src/security/dev-ca.js';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';

let dir: string;
let rootCa: string;
let plainTls: https.Server;
let mutualTls: https.Server;
let proxy: RunningProxy;
const seen: Array<{ server: string; sni: string | false | null; clientCert: string | undefined }> = [];
let client: { cert: string; key: string };

function record(name: string): (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void {
  return (req, res) => {
    const s = req.socket as tls.TLSSocket;
    const peer = s.getPeerX509Certificate();
    seen.push({ server: name, sni: s.servername, clientCert: peer?.subjectAltName });
    res.end(`${name} ${req.url}`);
  };
}

const se = (host: string, port: number): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${host.split('.')[0]}, namespace: default}
spec:
  hosts: [${host}]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  location: MESH_EXTERNAL
  endpoints: [{address: 127.0.0.1, ports: {http: ${port}}}]
`;
const dr = (host: string, tlsYaml: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${host.split('.')[0]}, namespace: default}
spec:
  host: ${host}
  trafficPolicy: {tls: ${tlsYaml}}
`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-tls-orig-'));
  const root = createRoot(join(dir, 'root'));
  rootCa = root.certFile;
  const srv = issueWorkload(root, { trustDomain: 'cluster.local', namespace: 'ext', serviceAccount: 'api' }, join(dir, 'server'), { dns: ['api.external.test', 'mtls.external.test'] });
  const cli = issueWorkload(root, { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'app' }, join(dir, 'client'));
  client = { cert: cli.certFile, key: cli.keyFile };
  // credentialName "app-cred": a directory of that name in REMORA_CREDENTIALS_DIR.
  mkdirSync(join(dir, 'credentials', 'app-cred'), { recursive: true });
  for (const f of ['tls.crt', 'tls.key', 'ca.crt']) cpSync(join(cli.dir, f), join(dir, 'credentials', 'app-cred', f));
  // One CRL revokes the server's certificate, the other only the client's.
  const revokesServer = createCrl(root, [srv.certFile], join(dir, 'revokes-server.pem'));
  const revokesOther = createCrl(root, [cli.certFile], join(dir, 'revokes-other.pem'));
  const key = readFileSync(srv.keyFile);
  const cert = readFileSync(srv.certFile);
  plainTls = https.createServer({ key, cert }, record('simple'));
  mutualTls = https.createServer({ key, cert, ca: readFileSync(rootCa), requestCert: true, rejectUnauthorized: true }, record('mutual'));
  await Promise.all([plainTls, mutualTls].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  const port = (s: https.Server): number => (s.address() as { port: number }).port;
  const files = {
    'se.yaml': [
      se('api.external.test', port(plainTls)), se('untrusted.external.test', port(plainTls)), se('skip.external.test', port(plainTls)), se('wrongname.external.test', port(plainTls)),
      se('mtls.external.test', port(mutualTls)), se('nocert.external.test', port(mutualTls)), se('cred.external.test', port(mutualTls)),
      se('revoked.external.test', port(plainTls)), se('crl-ok.external.test', port(plainTls)),
    ].join('---\n'),
    'dr.yaml': [
      dr('api.external.test', `{mode: SIMPLE, caCertificates: ${rootCa}}`),
      dr('untrusted.external.test', '{mode: SIMPLE, sni: api.external.test}'),
      dr('skip.external.test', '{mode: SIMPLE, insecureSkipVerify: true}'),
      dr('wrongname.external.test', `{mode: SIMPLE, caCertificates: ${rootCa}, sni: api.external.test, subjectAltNames: [other.external.test]}`),
      dr('mtls.external.test', `{mode: MUTUAL, caCertificates: ${rootCa}, clientCertificate: ${client.cert}, privateKey: ${client.key}}`),
      dr('nocert.external.test', `{mode: SIMPLE, caCertificates: ${rootCa}, sni: mtls.external.test}`),
      dr('cred.external.test', '{mode: MUTUAL, credentialName: app-cred, sni: mtls.external.test}'),
      dr('revoked.external.test', `{mode: SIMPLE, caCertificates: ${rootCa}, caCrl: ${revokesServer}, sni: api.external.test}`),
      dr('crl-ok.external.test', `{mode: SIMPLE, caCertificates: ${rootCa}, caCrl: ${revokesOther}, sni: api.external.test}`),
    ].join('---\n'),
  };
  proxy = await startProxy(files, [], { env: { REMORA_CREDENTIALS_DIR: join(dir, 'credentials') } });
});

afterAll(async () => {
  await proxy?.stop();
  plainTls?.close();
  mutualTls?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('TLS origination (DestinationRule tls SIMPLE / MUTUAL)', () => {
  it('SIMPLE with caCertificates: verified, SNI is the service host, the app spoke plain HTTP', async () => {
    const n = seen.length;
    expect(await proxy.get('/x', { host: 'api.external.test' })).toMatchObject({ status: 200, body: 'simple /x' });
    expect(seen[n]).toEqual({ server: 'simple', sni: 'api.external.test', clientCert: undefined });
  });

  it('SIMPLE without caCertificates: the system roots do not know the server: 503, never reached', async () => {
    const n = seen.length;
    const r = await proxy.get('/', { host: 'untrusted.external.test' });
    expect(r.status).toBe(503);
    expect(seen.length).toBe(n);
  });

  it('insecureSkipVerify: reached without verification', async () => {
    expect((await proxy.get('/', { host: 'skip.external.test' })).status).toBe(200);
  });

  it('subjectAltNames the certificate does not carry: 503', async () => {
    const n = seen.length;
    expect((await proxy.get('/', { host: 'wrongname.external.test' })).status).toBe(503);
    expect(seen.length).toBe(n);
  });

  it('MUTUAL: a client certificate from files, or from credentialName; a server that requires one refuses SIMPLE', async () => {
    const n = seen.length;
    expect(await proxy.get('/m', { host: 'mtls.external.test' })).toMatchObject({ status: 200, body: 'mutual /m' });
    expect(seen[n]!.clientCert).toContain('URI:spiffe://cluster.local/ns/default/sa/app');
    expect((await proxy.get('/c', { host: 'cred.external.test' })).status).toBe(200);
    expect((await proxy.get('/', { host: 'nocert.external.test' })).status).toBe(503);
  });

  it('caCrl: a server whose certificate the CRL revokes is refused (503, never reached); another CRL lets it through', async () => {
    const n = seen.length;
    expect((await proxy.get('/', { host: 'revoked.external.test' })).status).toBe(503);
    expect(seen.length).toBe(n);
    expect(await proxy.get('/ok', { host: 'crl-ok.external.test' })).toMatchObject({ status: 200, body: 'simple /ok' });
  });
});
