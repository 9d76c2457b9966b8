/**
 * How the Kubernetes source reaches the API server (src/discovery/kubeconfig.ts): kubeconfig tokens, token files,
 * CA and client certificates against a real HTTPS server on loopback, the plain-http rule, the in-cluster service
 * account, and the hand-over to client-node for what the reader leaves to it (an exec credential plugin).
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientNodeKubeConfig, inClusterAt, loadApiAccess } from '../../../src/discovery/kubeconfig.js';
import { ApiClient } from '../../../src/discovery/k8s-watch.js';
import { selfSignedCert, type SelfSigned } from '../../support/tls.js';

let dir: string;
let serverCert: SelfSigned;
let clientCert: SelfSigned;
let server: https.Server;
let url = '';
const seen: Array<{ authorization?: string; clientCert: boolean }> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-kubeconfig-'));
  serverCert = selfSignedCert(dir, 'server', { cn: 'kube-apiserver', subjectAltName: 'IP:127.0.0.1' });
  clientCert = selfSignedCert(dir, 'client', { cn: 'system:serviceaccount:default:remora' });
  server = https.createServer({ key: serverCert.key, cert: serverCert.cert, ca: clientCert.cert, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    seen.push({ authorization: req.headers.authorization, clientCert: (req.socket as import('node:tls').TLSSocket).authorized });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'APIVersions', versions: ['v1'] }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function kubeconfig(name: string, cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
    clusters: [{ name: 'k', cluster }], users: [{ name: 'u', user }], contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
  }));
  return file;
}

async function getVia(file: string): Promise<{ authorization?: string; clientCert: boolean }> {
  const api = new ApiClient(await loadApiAccess(file), 5000);
  seen.length = 0;
  expect(await api.getJson('/api')).toMatchObject({ kind: 'APIVersions' });
  return seen[0]!;
}

describe('kubeconfig', () => {
  it('a token, with the CA from a file named relative to the kubeconfig', async () => {
    const r = await getVia(kubeconfig('token.yaml', { server: url, 'certificate-authority': 'server.crt' }, { token: 't0k3n' }));
    expect(r).toEqual({ authorization: 'Bearer t0k3n', clientCert: false });
  });

  it('a token file, and a client certificate given inline (…-data), CA inline', async () => {
    writeFileSync(join(dir, 'tok'), 'from-file\n');
    const file = kubeconfig('certs.yaml', { server: url, 'certificate-authority-data': serverCert.cert.toString('base64') }, {
      tokenFile: 'tok',
      'client-certificate-data': clientCert.cert.toString('base64'),
      'client-key-data': clientCert.key.toString('base64'),
    });
    expect(await getVia(file)).toEqual({ authorization: 'Bearer from-file', clientCert: true });
  });

  it('refuses an untrusted server unless insecure-skip-tls-verify', async () => {
    const api = new ApiClient(await loadApiAccess(kubeconfig('untrusted.yaml', { server: url }, { token: 'x' })), 5000);
    await expect(api.getJson('/api')).rejects.toThrow(/cannot reach the Kubernetes API server.*(self.signed|certificate)/i);
    expect((await getVia(kubeconfig('insecure.yaml', { server: url, 'insecure-skip-tls-verify': true }, { token: 'x' }))).authorization).toBe('Bearer x');
  });

  it('plain http needs insecure-skip-tls-verify, as client-node requires; no current context is a clear error', async () => {
    await expect(loadApiAccess(kubeconfig('http.yaml', { server: 'http://127.0.0.1:1' }, {}))).rejects.toThrow(/plain http: set insecure-skip-tls-verify/);
    const none = join(dir, 'none.yaml');
    writeFileSync(none, 'apiVersion: v1\nkind: Config\nclusters: []\n');
    await expect(loadApiAccess(none)).rejects.toThrow(/no cluster configured/);
    await expect(loadApiAccess(join(dir, 'missing.yaml'))).rejects.toThrow(/cannot read kubeconfig .*missing\.yaml: ENOENT/);
  });

  it('an exec credential plugin is left to client-node (imported then), and works', async () => {
    const file = kubeconfig('exec.yaml', { server: url, 'certificate-authority': 'server.crt' }, {
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1beta1',
        command: process.execPath,
        args: ['-e', "console.log(JSON.stringify({apiVersion:'client.authentication.k8s.io/v1beta1',kind:'ExecCredential',status:{token:'from-exec'}}))"],
      },
    });
    const access = await loadApiAccess(file);
    expect(access.from).toBe(`kubeconfig ${file}`);
    expect((await getVia(file)).authorization).toBe('Bearer from-exec');
  });

  it('in-cluster: the service account token and CA, https on the service port', async () => {
    const sa = join(dir, 'sa');
    rmSync(sa, { recursive: true, force: true });
    (await import('node:fs')).mkdirSync(sa);
    writeFileSync(join(sa, 'token'), 'sa-token');
    writeFileSync(join(sa, 'ca.crt'), serverCert.cert);
    const port = (server.address() as AddressInfo).port;
    const access = inClusterAt({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port) }, sa);
    expect(access.server).toBe(url);
    const api = new ApiClient(access, 5000);
    seen.length = 0;
    await api.getJson('/api');
    expect(seen[0]!.authorization).toBe('Bearer sa-token');
    expect(inClusterAt({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, sa).server).toBe('https://[fd00::1]:443');
  });

  it('a client-node KubeConfig for the same server, for writers that need its typed APIs', async () => {
    const file = kubeconfig('cn.yaml', { server: url, 'certificate-authority': 'server.crt' }, { token: 'cn' });
    const kc = await clientNodeKubeConfig(file);
    expect(kc.getCurrentCluster()?.server).toBe(url);
    const o: import('node:https').RequestOptions = {};
    await kc.applyToHTTPSOptions(o);
    expect((o.headers as Record<string, string>).Authorization).toBe('Bearer cn');
  });

  it('the client-node KubeConfig follows the same order as the watch: --kubeconfig, then KUBECONFIG as the CLI read it', async () => {
    const viaEnv = kubeconfig('cn-env.yaml', { server: url, 'certificate-authority': 'server.crt' }, { token: 'env' });
    const other = kubeconfig('cn-flag.yaml', { server: 'https://127.0.0.1:1', 'certificate-authority': 'server.crt' }, { token: 'flag' });
    expect((await clientNodeKubeConfig(undefined, { KUBECONFIG: viaEnv, KUBERNETES_SERVICE_HOST: '192.0.2.1' })).getCurrentCluster()?.server).toBe(url);
    expect((await clientNodeKubeConfig(other, { KUBECONFIG: viaEnv })).getCurrentCluster()?.server).toBe('https://127.0.0.1:1');
  });
});

