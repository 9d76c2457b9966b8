/** Builders for Kubernetes objects used by discovery tests (plain JSON, as the API server sends them). */

export interface PortSpec {
  name?: string;
  port: number;
  targetPort?: number | string;
  appProtocol?: string;
  protocol?: string;
}

export function service(
  name: string,
  ns: string,
  ports: PortSpec[],
  opts: { clusterIP?: string; clusterIPs?: string[]; type?: string; externalName?: string; labels?: Record<string, string> } = {},
) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns, ...(opts.labels ? { labels: opts.labels } : {}) },
    spec: {
      type: opts.type ?? 'ClusterIP',
      ...(opts.clusterIP !== undefined ? { clusterIP: opts.clusterIP } : {}),
      ...(opts.clusterIPs ? { clusterIPs: opts.clusterIPs } : {}),
      ...(opts.externalName ? { externalName: opts.externalName } : {}),
      ports: ports.map((p) => ({ protocol: 'TCP', ...p })),
    },
  };
}

export interface EndpointSpec {
  ip: string;
  pod?: string;
  ready?: boolean | null;
  terminating?: boolean;
  hostname?: string;
}

export function endpointSlice(
  name: string,
  ns: string,
  svc: string,
  endpoints: EndpointSpec[],
  ports: { name?: string; port: number }[],
  addressType: 'IPv4' | 'IPv6' | 'FQDN' = 'IPv4',
) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': svc, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    addressType,
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: e.ready === null ? { terminating: e.terminating ?? false } : { ready: e.ready ?? true, serving: e.ready ?? true, terminating: e.terminating ?? false },
      ...(e.hostname ? { hostname: e.hostname } : {}),
      ...(e.pod ? { targetRef: { kind: 'Pod', name: e.pod, namespace: ns } } : {}),
    })),
    ports: ports.map((p) => ({ name: p.name ?? '', port: p.port, protocol: 'TCP' })),
  };
}

export function pod(name: string, ns: string, ip: string, labels: Record<string, string>, containerPorts: { name?: string; containerPort: number }[] = []) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels, managedFields: [{ manager: 'kubelet', operation: 'Update' }] },
    spec: { containers: [{ name: 'app', image: 'app:1', ports: containerPorts }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
  };
}
