// Code a config does not use is not loaded (issue #26): through the real CLI, a sidecar serving plain HTTP/1 never
// imports the HTTP/2 codec, node:tls, jose (JWT), the OpenTelemetry exporter or the Kubernetes client; each is
// imported once something needs it (an HTTP/2 connection, an end-user JWT). Which modules a process loaded is read by
// test/support/module-probe.mjs (a resolve hook and process.moduleLoadList, written at exit).
import http2 from 'node:http2';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { FakeKubeApiServer, writeKubeconfig } from '../../support/fake-kube-apiserver.js';
import { service } from '../../support/k8s-objects.js';

const PROBE = resolve(import.meta.dirname, '../../support/module-probe.mjs');
let dir: string;
let up: FakeUpstream;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-lazy-'));
  up = await fakeUpstream('app');
});
afterAll(async () => {
  await up.close();
  rmSync(dir, { recursive: true, force: true });
});

const MESH = (port: number): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: app, namespace: default}
spec:
  hosts: [app.example.com]
  ports: [{number: ${port}, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
`;

interface Loaded {
  builtins: string[];
  urls: string[];
}

/** Runs the proxy with the probe, lets `use` exercise it, stops it (SIGTERM: a clean exit), and reads what it loaded. */
async function loadedBy(name: string, files: Record<string, string>, args: string[], use: (p: RunningProxy) => Promise<void>): Promise<Loaded> {
  const out = join(dir, name);
  const p = await startProxy(files, args, { env: { NODE_OPTIONS: `--import ${PROBE}`, MODULE_PROBE_OUT: out } });
  try {
    await use(p);
  } finally {
    p.child.kill('SIGTERM');
    await p.exited;
    await p.stop();
  }
  return { builtins: readFileSync(out, 'utf8').split('\n'), urls: readFileSync(`${out}.esm`, 'utf8').split('\n') };
}

const has = (l: Loaded, what: RegExp): boolean => l.urls.some((u) => what.test(u)) || l.builtins.some((b) => what.test(b));
const HTTP2_CODEC = /\/dist\/chunks\/(session|server|h2-pool)-[^/]+\.js$/;
const TLS = /^NativeModule tls$/;
const JOSE = /\/node_modules\/jose\//;
const OTEL = /\/node_modules\/@opentelemetry\/|\/dist\/chunks\/otel-sdk-/;
const KUBE = /\/node_modules\/@kubernetes\/client-node\/|\/dist\/chunks\/k8s-source-/;
const CLIENT_NODE = /\/node_modules\/@kubernetes\/client-node\//;

describe('modules a config does not use are not loaded', () => {
  it('plain HTTP/1: no HTTP/2 codec, TLS, JWT, OpenTelemetry or Kubernetes client', async () => {
    const l = await loadedBy('http1', { 'mesh.yaml': MESH(up.port) }, [], async (p) => {
      const r = await p.get('/', { host: `app.example.com:${up.port}` });
      expect(r.status).toBe(200);
    });
    // The probe works: the app chunk and the YAML reader were recorded.
    expect(has(l, /\/dist\/chunks\/(app|run)-[^/]+\.js$/)).toBe(true); // the Sidecar: its own chunk, or run.ts's
    expect(has(l, /\/node_modules\/js-yaml\//)).toBe(true);
    expect(has(l, HTTP2_CODEC)).toBe(false);
    expect(has(l, TLS)).toBe(false);
    expect(has(l, JOSE)).toBe(false);
    expect(has(l, OTEL)).toBe(false);
    expect(has(l, KUBE)).toBe(false);
  });

  it('--trace-endpoint over http loads the tracing chunk, but no @opentelemetry package and no TLS', async () => {
    const l = await loadedBy('trace', { 'mesh.yaml': MESH(up.port) }, ['--trace-endpoint', `http://127.0.0.1:${up.port}/v1/traces`, '--trace-sampling', '100'], async (p) => {
      expect((await p.get('/', { host: `app.example.com:${up.port}` })).status).toBe(200);
    });
    expect(has(l, /\/dist\/chunks\/otel-sdk-[^/]+\.js$/)).toBe(true);
    expect(has(l, /\/node_modules\/@opentelemetry\//)).toBe(false);
    expect(has(l, /\/node_modules\/protobufjs\//)).toBe(false);
    expect(has(l, TLS)).toBe(false);
  });

  it('the first HTTP/2 connection loads the codec (and only it), and is served', async () => {
    const l = await loadedBy('h2', { 'mesh.yaml': MESH(up.port) }, [], async (p) => {
      const client = http2.connect(`http://127.0.0.1:${p.info.outbound}`);
      try {
        const status = await new Promise<number>((ok, fail) => {
          const req = client.request({ ':method': 'GET', ':path': '/', ':authority': `app.example.com:${up.port}` });
          req.on('response', (h) => ok(Number(h[':status'])));
          req.on('error', fail);
          req.resume();
          req.end();
        });
        expect(status).toBe(200);
      } finally {
        client.close();
      }
    });
    expect(has(l, HTTP2_CODEC)).toBe(true);
    expect(has(l, TLS)).toBe(false);
    expect(has(l, JOSE)).toBe(false);
  });

  it('the first end-user JWT to verify loads jose', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://issuer.example').setSubject('alice').setExpirationTime('5m').sign(privateKey);
    const ra = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  jwtRules:
  - issuer: https://issuer.example
    jwks: '${JSON.stringify({ keys: [jwk] })}'
`;
    const l = await loadedBy('jwt', { 'ra.yaml': ra }, ['--app-port', String(up.port)], async (p) => {
      const ok = await request(`http://127.0.0.1:${p.info.inbound}/`, { headers: { authorization: `Bearer ${token}` } });
      await ok.body.text();
      expect(ok.statusCode).toBe(200);
      const bad = await request(`http://127.0.0.1:${p.info.inbound}/`, { headers: { authorization: `Bearer ${token}x` } });
      await bad.body.text();
      expect(bad.statusCode).toBe(401);
    });
    expect(has(l, JOSE)).toBe(true);
    expect(has(l, HTTP2_CODEC)).toBe(false);
  });

  it('--kubernetes with a plain kubeconfig watches without @kubernetes/client-node', async () => {
    const api = await new FakeKubeApiServer().start();
    const kc = writeKubeconfig(api.url);
    try {
      api.apply(service('reviews', 'default', [{ name: 'http', port: 9080 }], { clusterIP: '10.96.0.15' }));
      const l = await loadedBy('kube', { 'mesh.yaml': MESH(up.port) }, ['--kubernetes', '--kubeconfig', kc.path], async (p) => {
        expect((await p.get('/', { host: `app.example.com:${up.port}` })).status).toBe(200);
        expect(api.openWatches).toBeGreaterThan(0);
      });
      expect(has(l, /\/dist\/chunks\/k8s-source-/)).toBe(true);
      expect(has(l, CLIENT_NODE)).toBe(false);
    } finally {
      kc.cleanup();
      await api.close();
    }
  });

  it('an HTTP/1 request to an HTTP/2 upstream waits for the codec to load (the first requests queued), and is served', async () => {
    const h2 = await fakeUpstream().http2().route('*', 200, (r) => `h2 ${r.url}`).start();
    const port = h2.port;
    try {
      const mesh = MESH(port).replace('name: http, protocol: HTTP', 'name: http2, protocol: HTTP2').replace('app.example.com', 'h2.example.com').replace('name: app,', 'name: h2app,');
      const l = await loadedBy('h2-upstream', { 'mesh.yaml': mesh }, [], async (p) => {
        // Several at once, before anything loaded the codec: all wait for the one import, none fails.
        const rs = await Promise.all([1, 2, 3, 4].map((i) => p.get(`/r${i}`, { host: `h2.example.com:${port}` })));
        expect(rs.map((r) => [r.status, r.body])).toEqual([1, 2, 3, 4].map((i) => [200, `h2 /r${i}`]));
        expect((await p.get('/again', { host: `h2.example.com:${port}` })).body).toBe('h2 /again');
      });
      expect(has(l, HTTP2_CODEC)).toBe(true);
    } finally {
      await h2.close();
    }
  });
});

