/**
 * Random mesh configuration for the equivalence tests of incremental configuration: documents of every kind the
 * sidecar reads (Istio networking and security kinds, Sidecar, Gateway API routes, Kubernetes Service, EndpointSlice
 * and Pod) over a small universe of names, hosts, subsets and labels, so that documents collide (duplicates, two
 * rules for a host, references that appear and disappear) — and now and then an invalid one. Driven by a seeded
 * PRNG: a failing run is reproduced from its seed.
 */
import { dump } from 'js-yaml';

export type Doc = Record<string, unknown>;
export type Rand = () => number;

export const NAMESPACES = ['default', 'prod'];
const NAMES = ['n1', 'n2', 'n3'];
const SHORT = ['a', 'b', 'c'];
const FQDN = ['x.example.com', 'y.example.com'];
const K8S = ['web', 'api'];
const SUBSETS = ['v1', 'v2', 'v3'];
const VERSIONS = ['v1', 'v2'];
const APPS = ['a', 'b'];

export class Gen {
  constructor(readonly rand: Rand) {}

  int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  chance(p: number): boolean {
    return this.rand() < p;
  }

  some<T>(xs: readonly T[], max: number, min = 0): T[] {
    const n = min + this.int(max - min + 1);
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(this.pick(xs));
    return out;
  }

  host(): string {
    const k = this.int(10);
    if (k < 4) return this.pick(SHORT);
    if (k < 7) return this.pick(FQDN);
    if (k < 8) return '*.example.com';
    if (k < 9) return `${this.pick(K8S)}.${this.pick(NAMESPACES)}.svc.cluster.local`;
    return `${this.pick(SHORT)}.${this.pick(NAMESPACES)}.svc.cluster.local`;
  }

  concreteHost(): string {
    const h = this.host();
    return h.startsWith('*') ? this.pick(FQDN) : h;
  }

  meta(): Doc {
    const m: Doc = { name: this.pick(NAMES), namespace: this.pick(NAMESPACES) };
    if (this.chance(0.1)) m.annotations = { 'remora.io/lb-algorithm': 'peak-ewma' };
    return m;
  }

  labels(): Record<string, string> {
    const l: Record<string, string> = {};
    if (this.chance(0.8)) l.version = this.pick(VERSIONS);
    if (this.chance(0.5)) l.app = this.pick(APPS);
    if (this.chance(0.1)) l['security.istio.io/tlsMode'] = 'istio';
    return l;
  }

  /** A random document of a random kind (about one in twelve invalid). */
  doc(): Doc {
    const kinds = [
      () => this.serviceEntry(), () => this.serviceEntry(), () => this.workloadEntry(), () => this.destinationRule(), () => this.destinationRule(),
      () => this.virtualService(), () => this.virtualService(), () => this.virtualService(), () => this.sidecar(), () => this.security(),
      () => this.httpRoute(), () => this.service(), () => this.endpointSlice(), () => this.pod(),
    ];
    const d = this.pick(kinds)();
    return this.chance(0.08) ? this.spoil(d) : d;
  }

  serviceEntry(): Doc {
    const resolution = this.pick(['STATIC', 'STATIC', 'DNS', 'NONE']);
    const hosts = [...new Set(this.some([...FQDN, ...SHORT, 'z.example.com', '*.example.com'], 2, 1))].filter((h) => resolution !== 'DNS' || !h.startsWith('*'));
    if (hosts.length === 0) hosts.push('x.example.com');
    const ports = this.chance(0.7) ? [{ number: 80, name: 'http', protocol: 'HTTP' }] : [{ number: 80, name: 'http', protocol: 'HTTP' }, { number: 8080, name: 'http-alt', protocol: 'HTTP' }];
    const spec: Doc = { hosts, ports, resolution, location: this.pick(['MESH_INTERNAL', 'MESH_EXTERNAL']) };
    if (this.chance(0.3)) spec.addresses = [`240.0.0.${1 + this.int(3)}`];
    if (this.chance(0.15)) spec.subjectAltNames = ['spiffe://cluster.local/ns/default/sa/se'];
    if (resolution === 'STATIC') {
      if (this.chance(0.25)) spec.workloadSelector = { labels: this.chance(0.8) ? { app: this.pick(APPS) } : {} };
      else spec.endpoints = this.some([1, 2, 3], 2, 1).map((i) => {
        const e: Doc = { address: `10.0.0.${i}`, labels: this.labels() };
        if (this.chance(0.3)) e.ports = { http: 9000 + i };
        if (this.chance(0.3)) e.serviceAccount = 'sa1';
        if (this.chance(0.1)) e.weight = 2;
        return e;
      });
    } else if (resolution === 'DNS' && this.chance(0.5)) {
      spec.endpoints = [{ address: this.pick(['backend.example.org', '10.0.0.9']) }];
    }
    return { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: this.meta(), spec };
  }

  workloadEntry(): Doc {
    const spec: Doc = { address: `10.0.1.${1 + this.int(3)}`, labels: { app: this.pick(APPS), ...this.labels() } };
    if (this.chance(0.4)) spec.serviceAccount = 'we-sa';
    if (this.chance(0.2)) spec.ports = { http: 9100 };
    return { apiVersion: 'networking.istio.io/v1beta1', kind: 'WorkloadEntry', metadata: this.meta(), spec };
  }

  destinationRule(): Doc {
    const spec: Doc = { host: this.host() };
    const subsets = [...new Set(this.some(SUBSETS, 3))];
    if (subsets.length > 0) spec.subsets = subsets.map((name) => ({ name, labels: { version: name === 'v3' ? 'v1' : name } }));
    const k = this.int(6);
    if (k === 0) spec.trafficPolicy = { loadBalancer: { simple: 'ROUND_ROBIN' } };
    else if (k === 1) spec.trafficPolicy = { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } };
    else if (k === 2) spec.trafficPolicy = { tls: { mode: this.pick(['ISTIO_MUTUAL', 'DISABLE']) } };
    else if (k === 3) spec.trafficPolicy = { connectionPool: { http: { http1MaxPendingRequests: 10 } }, outlierDetection: { consecutive5xxErrors: 3 } };
    if (subsets.length > 0 && this.chance(0.2)) (spec.subsets as Doc[])[0]!.trafficPolicy = { loadBalancer: { simple: 'LEAST_REQUEST' } };
    return { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: this.meta(), spec };
  }

  destination(): Doc {
    const d: Doc = { host: this.concreteHost() };
    if (this.chance(0.4)) d.subset = this.pick(SUBSETS);
    if (this.chance(0.2)) d.port = { number: this.pick([80, 8080]) };
    return d;
  }

  virtualService(): Doc {
    const delegate = this.chance(0.08);
    const spec: Doc = {};
    if (!delegate) spec.hosts = [...new Set(this.some([...SHORT, ...FQDN, '*.example.com'], 2, 1))];
    if (!delegate && this.chance(0.1)) spec.gateways = this.pick([['mesh'], ['gw'], ['mesh', 'gw']]);
    const http: Doc[] = [];
    for (let i = 0, n = 1 + this.int(2); i < n; i++) {
      const route: Doc = {};
      if (this.chance(0.5)) route.match = [{ uri: { prefix: this.pick(['/a', '/b', '/']) } }];
      if (!delegate && this.chance(0.06)) {
        route.delegate = { name: this.pick(NAMES), ...(this.chance(0.3) ? { namespace: this.pick(NAMESPACES) } : {}) };
      } else if (this.chance(0.1)) {
        route.directResponse = { status: 200, body: { string: 'ok' } };
      } else {
        const dests = this.some([0, 1, 2], 2, 1).map(() => ({ destination: this.destination(), weight: this.pick([10, 50, 90]) }));
        route.route = dests.length === 1 ? [{ destination: dests[0]!.destination }] : dests;
        if (this.chance(0.15)) route.mirror = this.destination();
        if (this.chance(0.2)) route.headers = { response: { set: { 'x-edit': `e${this.int(100)}` } } };
        if (this.chance(0.1)) route.retries = { attempts: 2, retryOn: '5xx' };
      }
      http.push(route);
    }
    spec.http = http;
    if (!delegate && this.chance(0.08)) spec.tcp = [{ match: [{ port: 9000 }], route: [{ destination: { host: this.concreteHost() } }] }];
    return { apiVersion: this.pick(['networking.istio.io/v1', 'networking.istio.io/v1beta1']), kind: 'VirtualService', metadata: this.meta(), spec };
  }

  sidecar(): Doc {
    const spec: Doc = { egress: [{ hosts: this.some(['./*', 'prod/*', '*/x.example.com', 'default/a.default.svc.cluster.local', 'istio-system/*'], 2, 1) }] };
    if (this.chance(0.3)) spec.workloadSelector = { labels: { app: this.pick(APPS) } };
    if (this.chance(0.2)) spec.outboundTrafficPolicy = { mode: this.pick(['ALLOW_ANY', 'REGISTRY_ONLY']) };
    return { apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: this.meta(), spec };
  }

  security(): Doc {
    const k = this.int(3);
    if (k === 0) return { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: this.meta(), spec: { action: 'ALLOW', rules: [{ to: [{ operation: { paths: ['/a'] } }] }] } };
    if (k === 1) return { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: this.meta(), spec: { mtls: { mode: this.pick(['PERMISSIVE', 'STRICT']) } } };
    return { apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: this.meta(), spec: { jwtRules: [{ issuer: 'https://issuer.example', jwksUri: 'https://issuer.example/jwks' }] } };
  }

  httpRoute(): Doc {
    const grpc = this.chance(0.3);
    const ns = this.pick(NAMESPACES);
    const parentRefs = [{ group: '', kind: 'Service', name: this.pick(K8S), ...(this.chance(0.3) ? { port: 80 } : {}), ...(this.chance(0.2) ? { namespace: this.pick(NAMESPACES) } : {}) }];
    const backendRefs = this.some(K8S, 2, 1).map((name) => ({ name, port: 80, weight: this.pick([1, 3]) }));
    const rules = grpc
      ? [{ matches: [{ method: { service: 'pkg.Svc' } }], backendRefs }]
      : [{ matches: [{ path: { type: 'PathPrefix', value: this.pick(['/', '/a']) } }], backendRefs, ...(this.chance(0.3) ? { filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-route', value: 'r' }] } }] } : {}) }];
    const metadata: Doc = { name: this.pick(NAMES), namespace: ns };
    if (this.chance(0.3)) metadata.creationTimestamp = this.pick(['2026-01-01T00:00:00Z', '2026-06-01T00:00:00Z']);
    return { apiVersion: 'gateway.networking.k8s.io/v1', kind: grpc ? 'GRPCRoute' : 'HTTPRoute', metadata, spec: { parentRefs, rules } };
  }

  service(): Doc {
    const name = this.pick(K8S);
    const spec: Doc = { ports: [{ name: 'http', port: 80, targetPort: this.pick([8080, 'http']), protocol: 'TCP' }] };
    if (this.chance(0.15)) spec.clusterIP = 'None';
    else spec.clusterIP = `10.96.0.${1 + K8S.indexOf(name)}`;
    return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: this.pick(NAMESPACES) }, spec };
  }

  endpointSlice(): Doc {
    const svc = this.pick(K8S);
    const endpoints = this.some([1, 2, 3], 3, 1).map((i) => ({
      addresses: [`10.1.0.${i}`], conditions: { ready: this.chance(0.8) },
      ...(this.chance(0.7) ? { targetRef: { kind: 'Pod', name: `p${i}` } } : {}),
      ...(this.chance(0.2) ? { hostname: `h${i}` } : {}),
    }));
    return {
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: { name: `${svc}-${this.pick(['x', 'y'])}`, namespace: this.pick(NAMESPACES), labels: { 'kubernetes.io/service-name': svc } },
      addressType: 'IPv4', endpoints, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    };
  }

  pod(): Doc {
    const i = 1 + this.int(3);
    return {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: `p${i}`, namespace: this.pick(NAMESPACES), labels: this.labels() },
      spec: { serviceAccountName: this.pick(['default', 'web-sa']), containers: [{ name: 'app', ports: [{ name: 'http', containerPort: 8080 }] }] },
      status: { podIP: `10.1.0.${i}`, phase: 'Running' },
    };
  }

  /** The same document made invalid one of several ways. */
  spoil(d: Doc): Doc {
    const c = JSON.parse(JSON.stringify(d)) as Doc;
    const spec = (c.spec ?? {}) as Doc;
    switch (this.int(6)) {
      case 0: (c.metadata as Doc).name = 'Bad_Name'; break;
      case 1: spec.bogusField = 1; c.spec = spec; break;
      case 2: c.apiVersion = 'networking.istio.io/v9'; break;
      case 3: if (c.kind === 'VirtualService') (spec.http as Doc[])[0]!.match = [{ uri: { regex: '(?=x)' } }]; else spec.bogusField = 2; c.spec = spec; break;
      case 4: if (c.kind === 'DestinationRule') spec.host = ''; else c.spec = 'not a mapping'; break;
      default: if (c.kind === 'HTTPRoute') ((spec.rules as Doc[])[0]!.backendRefs as Doc[])[0]!.port = 0; else spec.bogusField = 3; c.spec = spec; break;
    }
    return c;
  }
}

/** A document as YAML (block style, as people write it) or, now and then, JSON. */
export function docText(d: Doc, rand: Rand): string {
  return rand() < 0.15 ? `${JSON.stringify(d)}\n` : dump(d, { lineWidth: -1 });
}

/** A file of documents. */
export function fileText(docs: readonly string[]): string {
  return docs.map((t) => `---\n${t}`).join('');
}
