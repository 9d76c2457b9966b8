// The cluster of the Kubernetes scale measurements (issue #26, goal 3): S Services over 100 namespaces, each with one
// EndpointSlice of E endpoints and E Pods (10,000 Services, 50,000 endpoints and 50,000 Pods by default), and the
// endpoint changes of the churn: one endpoint's readiness flips, or (probe services) the slice moves to another
// address, so that a request through the proxy tells when the change serves. Pure: builds objects.

export const K8S_NAMESPACES = 100;

export interface ClusterShape {
  services: number;
  /** Endpoints (= Pods) per Service. */
  endpointsPerService: number;
  /** The Pods' container port, which every Service targets (the probe upstream listens on it). */
  targetPort: number;
}

export const nsOf = (i: number, shape: Pick<ClusterShape, 'services'>): string => `ns-${String(Math.floor((i * K8S_NAMESPACES) / Math.max(1, shape.services))).padStart(2, '0')}`;
export const svcName = (i: number): string => `svc-${i}`;
export const k8sHost = (i: number, shape: Pick<ClusterShape, 'services'>): string => `${svcName(i)}.${nsOf(i, shape)}.svc.cluster.local`;

/** Pod `p`'s IP: 127.2.0.0 upwards (loopback: the probe services' endpoints are served by the bench's upstream). */
export function podIp(p: number): string {
  const n = (2 << 16) + p;
  return `127.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

/** Spare address b (0 or 1) of probe service i: where its slice moves to on a probe event (127.200.x.y). */
export function probeIp(i: number, b: number): string {
  const n = 2 * i + b;
  return `127.200.${(n >> 8) & 255}.${n & 255}`;
}

type Obj = Record<string, unknown>;

export function serviceObj(i: number, shape: ClusterShape): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: svcName(i), namespace: nsOf(i, shape), labels: { app: svcName(i) } },
    spec: {
      type: 'ClusterIP',
      clusterIP: `10.96.${(i >> 8) & 255}.${i & 255}`,
      clusterIPs: [`10.96.${(i >> 8) & 255}.${i & 255}`],
      selector: { app: svcName(i) },
      ports: [{ name: 'http', port: 80, targetPort: shape.targetPort, protocol: 'TCP' }],
    },
  };
}

/** The Pods of service i: a realistic pod object (containers, status) the source trims on arrival. */
export function podObjs(i: number, shape: ClusterShape): Obj[] {
  const out: Obj[] = [];
  for (let k = 0; k < shape.endpointsPerService; k++) {
    const p = i * shape.endpointsPerService + k;
    out.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `${svcName(i)}-${k}`,
        namespace: nsOf(i, shape),
        labels: { app: svcName(i), version: k % 2 === 0 ? 'v1' : 'v2', 'pod-template-hash': '5d4f8c7b9' },
        annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-12-01T00:00:00Z' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${svcName(i)}-5d4f8c7b9`, uid: `rs-${i}`, controller: true }],
      },
      spec: {
        containers: [{ name: 'app', image: `registry.example/app:${i % 17}`, ports: [{ name: 'http', containerPort: shape.targetPort, protocol: 'TCP' }], env: [{ name: 'MODE', value: 'prod' }] }],
        nodeName: `node-${p % 200}`,
        serviceAccountName: 'default',
      },
      status: { phase: 'Running', podIP: podIp(p), podIPs: [{ ip: podIp(p) }], hostIP: `10.0.${(p >> 8) & 255}.${p & 255}`, conditions: [{ type: 'Ready', status: 'True' }] },
    });
  }
  return out;
}

export interface SliceEndpoint {
  ip: string;
  pod?: string;
  ready: boolean;
}

export function sliceObj(i: number, shape: ClusterShape, endpoints?: SliceEndpoint[]): Obj {
  const eps = endpoints ?? Array.from({ length: shape.endpointsPerService }, (_, k) => ({ ip: podIp(i * shape.endpointsPerService + k), pod: `${svcName(i)}-${k}`, ready: true }));
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${svcName(i)}-abcde`,
      namespace: nsOf(i, shape),
      labels: { 'kubernetes.io/service-name': svcName(i), 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType: 'IPv4',
    endpoints: eps.map((e) => ({
      addresses: [e.ip],
      conditions: { ready: e.ready, serving: e.ready, terminating: false },
      ...(e.pod !== undefined ? { targetRef: { kind: 'Pod', name: e.pod, namespace: nsOf(i, shape) } } : {}),
      nodeName: 'node-1',
    })),
    ports: [{ name: 'http', port: shape.targetPort, protocol: 'TCP' }],
  };
}

/** Every object of the cluster, Services first, then Pods, then EndpointSlices. */
export function* clusterObjs(shape: ClusterShape): Generator<Obj> {
  for (let i = 0; i < shape.services; i++) yield serviceObj(i, shape);
  for (let i = 0; i < shape.services; i++) yield* podObjs(i, shape);
  for (let i = 0; i < shape.services; i++) yield sliceObj(i, shape);
}

/** A probe event: service i's slice holds one endpoint, spare address b (its pods are left as they are). */
export function probeSlice(i: number, shape: ClusterShape, b: number): Obj {
  return sliceObj(i, shape, [{ ip: probeIp(i, b), ready: true }]);
}

/** A churn event: service i's slice with endpoint k's readiness set to `ready` (the others ready). */
export function churnSlice(i: number, shape: ClusterShape, k: number, ready: boolean): Obj {
  const eps = Array.from({ length: shape.endpointsPerService }, (_, j) => ({ ip: podIp(i * shape.endpointsPerService + j), pod: `${svcName(i)}-${j}`, ready: j === k ? ready : true }));
  return sliceObj(i, shape, eps);
}

/** `count` services spread over the cluster (one in each of as many namespaces as possible). */
export function spreadK8s(shape: Pick<ClusterShape, 'services'>, count: number): number[] {
  const k = Math.min(shape.services, count);
  return Array.from({ length: k }, (_, j) => Math.floor((j * shape.services) / k));
}
