/**
 * Kubernetes `networking.k8s.io/v1` NetworkPolicy ingress evaluation for the one pod this sidecar serves.
 * Pure: policies + this pod's identity in, a `(peer, port) → decision` function out. Egress rules are not
 * evaluated (the sidecar enforces what reaches its pod; egress is the CNI's job, or the caller's sidecar's).
 */
import { cidrContains, parseCidr, parseIp, type Cidr } from './cidr.js';
import { selectorMatches, type LabelSelector } from './label-selector.js';

/** Structural: a Remora `Resource` of kind NetworkPolicy and a client-node `V1NetworkPolicy` both fit. */
export interface NetworkPolicyLike {
  metadata: { name?: string; namespace?: string };
  spec?: Record<string, unknown> | NetworkPolicySpec;
}

export interface NetworkPolicySpec {
  podSelector?: LabelSelector | null;
  policyTypes?: string[] | null;
  ingress?: Array<{ from?: NetworkPolicyPeer[] | null; ports?: NetworkPolicyPort[] | null }> | null;
  egress?: unknown[] | null;
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector | null;
  namespaceSelector?: LabelSelector | null;
  ipBlock?: { cidr: string; except?: string[] | null } | null;
}

export interface NetworkPolicyPort {
  /** TCP (default), UDP or SCTP; the sidecar only sees TCP, so UDP/SCTP ports never match. */
  protocol?: string | null;
  port?: number | string | null;
  endPort?: number | null;
}

export interface Peer {
  ip: string;
  /** Set when the peer IP belongs to a known pod (from the Kubernetes watch). */
  podLabels?: Readonly<Record<string, string>>;
  namespace?: string;
}

export interface NetworkPolicyDecision {
  allowed: boolean;
  /** `ns/name` of the policy whose rule allowed the connection; on denial, the isolating policies, comma-separated. */
  policy?: string;
}

export type NetworkPolicyEvaluator = (peer: Peer, port: number) => NetworkPolicyDecision;

export interface NetworkPolicyOptions {
  /** This pod's named container ports (name → number), for `ports[].port: "http"`. */
  namedPorts?: Readonly<Record<string, number>>;
}

interface CompiledPeer {
  match(peer: Peer): boolean;
}

interface CompiledRule {
  from?: CompiledPeer[];
  ports?: Array<(port: number) => boolean>;
}

interface CompiledPolicy {
  id: string;
  rules: CompiledRule[];
}

const NAME_LABEL = 'kubernetes.io/metadata.name';

/**
 * Compile the ingress side of `policies` for the pod (`podLabels` in `podNamespace`).
 * Kubernetes semantics: the pod is isolated for ingress only when some policy in its namespace selects it
 * with Ingress among its policyTypes (policyTypes absent → Ingress); then a connection is allowed when any
 * rule of any selecting policy allows it. An empty `from` allows all sources, empty `ports` all ports, and a
 * policy with no `ingress` rules allows nothing.
 */
export function compileNetworkPolicies(
  policies: readonly NetworkPolicyLike[],
  podLabels: Readonly<Record<string, string>>,
  podNamespace: string,
  namespaceLabels: ReadonlyMap<string, Readonly<Record<string, string>>>,
  opts: NetworkPolicyOptions = {},
): NetworkPolicyEvaluator {
  const nsLabels = (ns: string): Readonly<Record<string, string>> => namespaceLabels.get(ns) ?? { [NAME_LABEL]: ns };
  const selecting: CompiledPolicy[] = [];
  for (const p of policies) {
    const ns = p.metadata.namespace ?? 'default';
    if (ns !== podNamespace) continue;
    const spec = (p.spec ?? {}) as NetworkPolicySpec;
    // podSelector is required by the API; `{}` selects every pod of the namespace.
    if (!selectorMatches(spec.podSelector ?? {}, podLabels)) continue;
    const types = spec.policyTypes && spec.policyTypes.length > 0 ? spec.policyTypes : ['Ingress'];
    if (!types.includes('Ingress')) continue;
    const rules = (spec.ingress ?? []).map((r) => compileRule(r, ns, nsLabels, opts.namedPorts ?? {}));
    selecting.push({ id: `${ns}/${p.metadata.name ?? ''}`, rules });
  }
  selecting.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (selecting.length === 0) return () => ({ allowed: true });
  const isolating = selecting.map((p) => p.id).join(',');
  return (peer, port) => {
    for (const p of selecting) {
      for (const r of p.rules) {
        if (r.ports && !r.ports.some((m) => m(port))) continue;
        if (r.from && !r.from.some((f) => f.match(peer))) continue;
        return { allowed: true, policy: p.id };
      }
    }
    return { allowed: false, policy: isolating };
  };
}

function compileRule(
  rule: { from?: NetworkPolicyPeer[] | null; ports?: NetworkPolicyPort[] | null },
  policyNs: string,
  nsLabels: (ns: string) => Readonly<Record<string, string>>,
  namedPorts: Readonly<Record<string, number>>,
): CompiledRule {
  const out: CompiledRule = {};
  if (rule.from && rule.from.length > 0) out.from = rule.from.map((f) => compilePeer(f, policyNs, nsLabels));
  if (rule.ports && rule.ports.length > 0) out.ports = rule.ports.map((p) => compilePort(p, namedPorts));
  return out;
}

function compilePeer(f: NetworkPolicyPeer, policyNs: string, nsLabels: (ns: string) => Readonly<Record<string, string>>): CompiledPeer {
  if (f.ipBlock) {
    const cidr = parseCidr(f.ipBlock.cidr);
    const except = (f.ipBlock.except ?? []).map(parseCidr).filter((c): c is Cidr => c !== undefined);
    return {
      match: (peer) => {
        const ip = parseIp(peer.ip);
        if (!cidr || !ip || !cidrContains(cidr, ip)) return false;
        return !except.some((e) => cidrContains(e, ip));
      },
    };
  }
  const podSel = f.podSelector ?? undefined;
  const nsSel = f.namespaceSelector ?? undefined;
  if (!podSel && !nsSel) return { match: () => false }; // an empty peer is invalid in the API; match nothing
  return {
    match: (peer) => {
      // Selector peers only match pods: an IP not mapped to a pod can only be allowed by an ipBlock.
      if (peer.namespace === undefined || peer.podLabels === undefined) return false;
      if (nsSel) {
        if (!selectorMatches(nsSel, nsLabels(peer.namespace))) return false;
      } else if (peer.namespace !== policyNs) {
        return false; // podSelector alone: pods in the policy's own namespace
      }
      return podSel ? selectorMatches(podSel, peer.podLabels) : true;
    },
  };
}

function compilePort(p: NetworkPolicyPort, namedPorts: Readonly<Record<string, number>>): (port: number) => boolean {
  if ((p.protocol ?? 'TCP').toUpperCase() !== 'TCP') return () => false;
  if (p.port === undefined || p.port === null) return () => true; // all TCP ports
  if (typeof p.port === 'string' && !/^\d+$/.test(p.port)) {
    const n = namedPorts[p.port];
    return (port) => n !== undefined && port === n;
  }
  const start = Number(p.port);
  const end = typeof p.endPort === 'number' && p.endPort >= start ? p.endPort : start;
  return (port) => port >= start && port <= end;
}
