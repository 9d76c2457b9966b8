/**
 * The upstream mesh conformance setup on loopback: echo "pods" (HTTP/1 and gRPC servers that report who they are and
 * what they saw), the conformance Services and EndpointSlices, and a client sidecar (`remora run` through the CLI)
 * per namespace, fed from config files or from the fake API server's watch. Routes are swapped per test.
 */
import { writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { parseAllDocuments } from 'yaml';
import { FakeKubeApiServer, writeKubeconfig } from '../../support/fake-kube-apiserver.js';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { fakeUpstream } from '../../support/fake-upstream.js';

export const NS = 'gateway-conformance-mesh';
export const CONSUMER_NS = 'gateway-conformance-mesh-consumer';

/** What an echo pod saw (the conformance echo's fields). */
export interface Echoed {
  pod: string;
  method: string;
  path: string;
  host: string;
  /** Lowercase names; repeated headers joined with ',' (as the conformance echo reports them). */
  headers: Record<string, string>;
}

const raw = { serialize: (b: Buffer): Buffer => b, deserialize: (b: Buffer): Buffer => b };
const ECHO_SERVICE: grpc.ServiceDefinition = {
  Echo: { path: '/grpc.echo.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
};
export const GrpcEchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');

export interface EchoPod {
  name: string;
  ip: string;
  httpPort: number;
  grpcPort: number;
  close(): Promise<void>;
}

function joinHeaders(rawHeaders: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const k = rawHeaders[i]!.toLowerCase();
    out[k] = out[k] === undefined ? rawHeaders[i + 1]! : `${out[k]},${rawHeaders[i + 1]!}`;
  }
  return out;
}

/** An echo pod on `ip` (a loopback address of its own, as pods have their own IPs). */
export async function startEchoPod(name: string, ip: string): Promise<EchoPod> {
  const http = await fakeUpstream().id(name).on(ip).route('*', 200, (r) => JSON.stringify({ pod: name, method: r.method, path: r.url, host: r.headers.host ?? '', headers: joinHeaders(r.rawHeaders) } satisfies Echoed), { 'content-type': 'application/json' }).start();
  const g = new grpc.Server();
  g.addService(ECHO_SERVICE, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const md: Record<string, string> = {};
      // grpc-js joins a repeated header's values with ", "; the conformance echo reports them joined with ",".
      for (const k of Object.keys(call.metadata.getMap())) md[k] = call.metadata.get(k).map(String).join(',').split(', ').join(',');
      cb(null, Buffer.from(JSON.stringify({ pod: name, method: 'POST', path: '/grpc.echo.Echo/Echo', host: '', headers: md } satisfies Echoed)));
    },
  });
  const grpcPort = await new Promise<number>((resolve, reject) => g.bindAsync(`${ip}:0`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return {
    name, ip, httpPort: http.port, grpcPort,
    async close() {
      await http.close();
      g.forceShutdown();
    },
  };
}

function serviceYaml(name: string, ns: string, ip: string, grpcAppProtocol?: string): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  clusterIP: ${ip}
  ports:
  - {name: http, port: 80, appProtocol: http, targetPort: 8080}
  - {name: http-alt, port: 8080, appProtocol: http}
  - {name: https, port: 443, targetPort: 8443}
  - {name: tcp, port: 9090}
  - {name: grpc, port: 7070${grpcAppProtocol ? `, appProtocol: ${grpcAppProtocol}` : ''}}
`;
}

function sliceYaml(name: string, ns: string, service: string, pod: EchoPod): string {
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}, namespace: ${ns}, labels: {kubernetes.io/service-name: ${service}}}
addressType: IPv4
endpoints: [{addresses: [${pod.ip}], conditions: {ready: true}, targetRef: {kind: Pod, name: ${pod.name}}}]
ports: [{name: http, port: ${pod.httpPort}}, {name: http-alt, port: ${pod.httpPort}}, {name: grpc, port: ${pod.grpcPort}}]
`;
}

export interface Response { status: number; headers: Record<string, string | string[] | undefined>; body: string; echoed: Echoed | undefined }

/** A client sidecar and how its config changes. */
export interface Client {
  proxy: RunningProxy;
  /** One request through the sidecar (explicit-proxy form: the Host header names the service, as the app's URL would). */
  request(host: string, path: string, opts?: { method?: string; headers?: Record<string, string> }): Promise<Response>;
  /** One gRPC call over the client's single HTTP/2 connection to the sidecar. */
  grpc(authority: string, metadata?: Record<string, string>): Promise<{ code: number; echoed?: Echoed }>;
  close(): Promise<void>;
}

export interface MeshEnv {
  source: 'files' | 'api';
  pods: { v1: EchoPod; v2: EchoPod; consumer: EchoPod };
  /** The sidecar of a client in `ns` (started once, reused). */
  client(ns?: string): Promise<Client>;
  /** Replace every route (YAML documents) and wait until every sidecar runs the new config. */
  setRoutes(yaml: string): Promise<void>;
  close(): Promise<void>;
}

async function configHash(p: RunningProxy): Promise<string> {
  const r = await p.admin('/config_dump');
  return (JSON.parse(r.body) as { hash: string | null }).hash ?? '';
}

/** Wait until the sidecar's config hash differs from `before` and then holds still for 150 ms. */
async function settled(p: RunningProxy, before: string): Promise<void> {
  const end = Date.now() + 10_000;
  let last = before;
  let since = Date.now();
  while (Date.now() < end) {
    const h = await configHash(p);
    if (h !== last) { last = h; since = Date.now(); }
    if (last !== before && Date.now() - since >= 150) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`the sidecar did not apply the new routes within 10 s\n${p.stderr}`);
}

export async function startMesh(source: 'files' | 'api'): Promise<MeshEnv> {
  const v1 = await startEchoPod('echo-v1-pod', '127.0.0.2');
  const v2 = await startEchoPod('echo-v2-pod', '127.0.0.3');
  const consumer = await startEchoPod('echo-v1-consumer-pod', '127.0.0.4');
  const base = [
    serviceYaml('echo-v1', NS, '10.96.0.11'),
    serviceYaml('echo-v2', NS, '10.96.0.12'),
    serviceYaml('echo', NS, '10.96.0.10', 'kubernetes.io/h2c'),
    serviceYaml('echo-v1', CONSUMER_NS, '10.96.1.11'),
    sliceYaml('echo-v1-a', NS, 'echo-v1', v1),
    sliceYaml('echo-v2-a', NS, 'echo-v2', v2),
    sliceYaml('echo-a', NS, 'echo', v1),
    sliceYaml('echo-b', NS, 'echo', v2),
    sliceYaml('echo-v1-a', CONSUMER_NS, 'echo-v1', consumer),
  ].join('---\n');
  let api: FakeKubeApiServer | undefined;
  let kubeconfig: { path: string; cleanup: () => void } | undefined;
  if (source === 'api') {
    api = await new FakeKubeApiServer().start();
    kubeconfig = writeKubeconfig(api.url);
    for (const d of parseAllDocuments(base)) api.apply(d.toJS());
  }
  const clients = new Map<string, Client>();
  let routeObjects: Array<{ kind: string; namespace: string; name: string }> = [];
  let generation = 0;

  const env: MeshEnv = {
    source,
    pods: { v1, v2, consumer },
    async client(ns = NS) {
      const have = clients.get(ns);
      if (have) return have;
      const proxy = source === 'files'
        ? await startProxy({ 'mesh.yaml': base, 'routes.yaml': '# no routes yet\n' }, ['--namespace', ns, '--resolv-conf', ''])
        : await startProxy({}, ['--kubernetes', '--namespace', ns, '--resolv-conf', ''], { env: { KUBECONFIG: kubeconfig!.path } });
      const grpcClients = new Map<string, grpc.Client>();
      const c: Client = {
        proxy,
        async request(host, path, opts = {}) {
          const r = await request(proxy.url(path), { method: (opts.method ?? 'GET') as 'GET', headers: { ...opts.headers, host } });
          const body = await r.body.text();
          let echoed: Echoed | undefined;
          try { echoed = r.statusCode === 200 ? (JSON.parse(body) as Echoed) : undefined; } catch { echoed = undefined; }
          return { status: r.statusCode, headers: r.headers, body, echoed };
        },
        grpc(authority, metadata = {}) {
          let cl = grpcClients.get(authority);
          if (cl === undefined) {
            cl = new GrpcEchoClient(`127.0.0.1:${proxy.info.outbound}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority });
            grpcClients.set(authority, cl);
          }
          const md = new grpc.Metadata();
          for (const [k, v] of Object.entries(metadata)) md.set(k, v);
          return new Promise((resolve) => {
            (cl as unknown as Record<string, (...a: unknown[]) => void>).Echo!(Buffer.alloc(0), md, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, v?: Buffer) => {
              resolve(err ? { code: err.code } : { code: 0, echoed: JSON.parse(v!.toString()) as Echoed });
            });
          });
        },
        async close() {
          for (const g of grpcClients.values()) g.close();
          await proxy.stop();
        },
      };
      clients.set(ns, c);
      return c;
    },
    async setRoutes(yaml) {
      const before = await Promise.all([...clients.values()].map((c) => configHash(c.proxy)));
      if (source === 'files') {
        // Every sidecar reads its own directory; a rename swaps the file whole (one reload).
        generation++;
        for (const c of clients.values()) {
          const tmp = join(c.proxy.dir, '.routes.tmp');
          writeFileSync(tmp, `# routes ${generation}\n${yaml}`);
          renameSync(tmp, join(c.proxy.dir, 'routes.yaml'));
        }
      } else {
        const had = routeObjects.length;
        for (const o of routeObjects) api!.delete(o.kind, o.namespace, o.name);
        routeObjects = [];
        for (const d of parseAllDocuments(yaml)) {
          const obj = d.toJS() as { kind: string; metadata: { name: string; namespace?: string } };
          if (!obj) continue;
          api!.apply(obj);
          routeObjects.push({ kind: obj.kind, namespace: obj.metadata.namespace ?? 'default', name: obj.metadata.name });
        }
        // Nothing deleted or applied: the config does not change.
        if (had === 0 && routeObjects.length === 0) return;
      }
      await Promise.all([...clients.values()].map((c, i) => settled(c.proxy, before[i]!)));
    },
    async close() {
      for (const c of clients.values()) await c.close();
      await api?.close();
      kubeconfig?.cleanup();
      await Promise.all([v1.close(), v2.close(), consumer.close()]);
    },
  };
  return env;
}

/** Retry `check` until it passes (the conformance suite's "eventually consistent" expectation), up to 5 s. */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
