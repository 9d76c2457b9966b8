/**
 * The table of what the Kubernetes source lists and watches: each kind's API group, served versions (tried in order),
 * plural, scope, role in the cache, and whether its absence is an error. Data only.
 */

export type Role = 'service' | 'endpointslice' | 'pod' | 'namespace' | 'resource';
/** The kinds a workload's Sidecar scope narrows (k8s-source.ts KubernetesSource.inScope). */
export const SCOPED_ROLES: ReadonlySet<Role> = new Set<Role>(['service', 'endpointslice', 'pod']);

export interface KindSpec {
  kind: string;
  group: string;
  /** Tried in order; the first one served is used (Istio CRDs: v1, then v1beta1, then v1alpha3). */
  versions: string[];
  plural: string;
  namespaced: boolean;
  role: Role;
  /** Absent (404 on every version, or 403) is not an error: the kind is simply empty. */
  optional: boolean;
}

const ISTIO_NET = ['v1', 'v1beta1', 'v1alpha3'];
export const GATEWAY_API = 'gateway.networking.k8s.io';
export const KINDS: KindSpec[] = [
  { kind: 'Service', group: '', versions: ['v1'], plural: 'services', namespaced: true, role: 'service', optional: false },
  { kind: 'EndpointSlice', group: 'discovery.k8s.io', versions: ['v1'], plural: 'endpointslices', namespaced: true, role: 'endpointslice', optional: false },
  { kind: 'Pod', group: '', versions: ['v1'], plural: 'pods', namespaced: true, role: 'pod', optional: false },
  // Cluster-scoped; a namespace-restricted Role cannot list it, hence optional (namespaceSelector then sees only the name label).
  { kind: 'Namespace', group: '', versions: ['v1'], plural: 'namespaces', namespaced: false, role: 'namespace', optional: true },
  { kind: 'VirtualService', group: 'networking.istio.io', versions: ISTIO_NET, plural: 'virtualservices', namespaced: true, role: 'resource', optional: true },
  { kind: 'DestinationRule', group: 'networking.istio.io', versions: ISTIO_NET, plural: 'destinationrules', namespaced: true, role: 'resource', optional: true },
  { kind: 'ServiceEntry', group: 'networking.istio.io', versions: ISTIO_NET, plural: 'serviceentries', namespaced: true, role: 'resource', optional: true },
  { kind: 'WorkloadEntry', group: 'networking.istio.io', versions: ISTIO_NET, plural: 'workloadentries', namespaced: true, role: 'resource', optional: true },
  { kind: 'Sidecar', group: 'networking.istio.io', versions: ISTIO_NET, plural: 'sidecars', namespaced: true, role: 'resource', optional: true },
  { kind: 'NetworkPolicy', group: 'networking.k8s.io', versions: ['v1'], plural: 'networkpolicies', namespaced: true, role: 'resource', optional: true },
  { kind: 'AuthorizationPolicy', group: 'security.istio.io', versions: ['v1', 'v1beta1'], plural: 'authorizationpolicies', namespaced: true, role: 'resource', optional: true },
  { kind: 'RequestAuthentication', group: 'security.istio.io', versions: ['v1', 'v1beta1'], plural: 'requestauthentications', namespaced: true, role: 'resource', optional: true },
  { kind: 'PeerAuthentication', group: 'security.istio.io', versions: ['v1', 'v1beta1'], plural: 'peerauthentications', namespaced: true, role: 'resource', optional: true },
  // Gateway API routes bound to Services (the mesh profile, src/gateway/).
  { kind: 'HTTPRoute', group: GATEWAY_API, versions: ['v1', 'v1beta1'], plural: 'httproutes', namespaced: true, role: 'resource', optional: true },
  { kind: 'GRPCRoute', group: GATEWAY_API, versions: ['v1', 'v1alpha2'], plural: 'grpcroutes', namespaced: true, role: 'resource', optional: true },
  { kind: 'TCPRoute', group: GATEWAY_API, versions: ['v1', 'v1alpha2'], plural: 'tcproutes', namespaced: true, role: 'resource', optional: true },
  { kind: 'TLSRoute', group: GATEWAY_API, versions: ['v1', 'v1alpha3', 'v1alpha2'], plural: 'tlsroutes', namespaced: true, role: 'resource', optional: true },
];
