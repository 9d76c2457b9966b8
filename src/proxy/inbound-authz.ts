/**
 * Inbound authorization for the workload this sidecar serves: Kubernetes NetworkPolicy ingress rules, then
 * Istio AuthorizationPolicy, compiled once per config/pod change and checked per request (HTTP) or per connection
 * (L4, with Istio's TCP semantics). Off (a single boolean test) unless a policy selects this workload; denials are
 * counted and logged with a rate limit. The peer's namespace and principal come from its verified certificate only;
 * the pod watch's IP index serves NetworkPolicy (L3) alone.
 */
import type { Resource } from '../config/resource.js';
import { selectorMatches, type LabelSelector } from '../authz/label-selector.js';
import { compileNetworkPolicies, type NetworkPolicyEvaluator, type NetworkPolicySpec } from '../authz/network-policy.js';
import { compileAuthorizationPolicies, DEFAULT_ROOT_NAMESPACE, type AuthzEvaluator } from '../authz/authorization-policy.js';
import { RequestAuthenticator, type RequestAuth, type RequestAuthenticatorOptions } from '../security/request-authn.js';
import { mtlsModeForPort, resolvePeerAuthentication, type EffectivePeerAuthn, type MtlsMode } from '../security/peer-authentication.js';
import { E } from '../errors.js';

/** Structural subset of a (trimmed) client-node V1Pod, as `KubernetesSource.current().pods` holds them. */
export interface PodLike {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  spec?: { containers?: Array<{ ports?: Array<{ name?: string; containerPort: number; protocol?: string }> }> };
  status?: { phase?: string; podIP?: string; podIPs?: Array<{ ip: string }> };
}

export interface InboundAuthzOptions {
  namespace: string;
  labels: Readonly<Record<string, string>>;
  /** Istio meshConfig.rootNamespace (AuthorizationPolicies there apply mesh-wide). Default `istio-system`. */
  rootNamespace?: string;
  /** This pod's name (in Kubernetes, the hostname): its named container ports resolve NetworkPolicy `ports[].port: "http"`. */
  podName?: string;
  /** Same-(policy, peer) denials are logged at most once per this interval (ms; default 60000). */
  logIntervalMs?: number;
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
  /** Clock for the log rate limit (ms). */
  now?: () => number;
  /** RequestAuthentication's key fetching (`--jwks-allow-http`, limits). */
  authn?: RequestAuthenticatorOptions;
}

export interface AuthzUpdate {
  /** Every resource of the current config; kinds other than NetworkPolicy/AuthorizationPolicy are ignored. */
  resources?: readonly Resource[];
  /** Pods from the Kubernetes watch; omitted = keep the previous ones. */
  pods?: readonly PodLike[];
  /** Namespace → labels from the watch; omitted = keep the previous ones. */
  namespaceLabels?: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** The workload certificate's trust domain, then `--trust-domain-aliases` (principals match across them); omitted = keep. */
  trustDomains?: readonly string[];
  /**
   * `resources` holds the same policy objects as the last ones (a snapshot compiled from the previous one changed only
   * routing and registry kinds, compile-delta.ts): kept for later recompiles, not scanned again (150,000 objects at
   * 50,000 services).
   */
  samePolicies?: boolean;
}

export interface AuthzPeer {
  ip: string;
  /** The mTLS peer's principal (`td/ns/x/sa/y`) and namespace, from its verified certificate; absent on plaintext. */
  principal?: string;
  namespace?: string;
  /** The app port the request is for (NetworkPolicy `ports`, AuthorizationPolicy `to.operation.ports`). */
  port: number;
}

export interface AuthzHttpRequest {
  method: string;
  path: string;
  host: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The end user a RequestAuthentication verified, if any. */
  requestAuth?: RequestAuth;
}

export type AuthzResult =
  | { allowed: true }
  | { allowed: false; status: typeof E.rbacDenied.status; body: typeof E.rbacDenied.body; details: string; policy?: string };

const ALLOWED: AuthzResult = Object.freeze({ allowed: true });
const ALLOW_ALL_NP: NetworkPolicyEvaluator = () => ({ allowed: true });

/** At most this many (policy, peer) log keys are remembered; beyond that the oldest are forgotten. */
const MAX_LOG_KEYS = 10_000;

/** `::ffff:10.0.0.1` (dual-stack sockets) → `10.0.0.1`, so peers match pod IPs as the API server writes them. */
export function normalizeIp(ip: string): string {
  return ip.toLowerCase().startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

export class InboundAuthorizer {
  private resources: readonly Resource[] = [];
  private pods: readonly PodLike[] = [];
  private namespaceLabels: ReadonlyMap<string, Readonly<Record<string, string>>> = new Map();
  private trustDomains: readonly string[] = [];
  private active = false;
  private np: NetworkPolicyEvaluator = ALLOW_ALL_NP;
  private npActive = false;
  private ap: AuthzEvaluator | undefined;
  /** RequestAuthentication (JWT) for this workload; undefined when none applies. */
  authn: RequestAuthenticator | undefined;
  /** PeerAuthentication resolved for this workload (PERMISSIVE when none applies). */
  peerAuthn: EffectivePeerAuthn = { mode: 'PERMISSIVE', ports: new Map(), policies: [] };
  private podByIp = new Map<string, { namespace: string; labels: Readonly<Record<string, string>> }>();
  private deniedCount = 0;
  private allowedCount = 0;
  private lastLogged = new Map<string, number>();
  private warned = '';
  private authnKey = '[]';
  /** `ns/name` of the policies in force, for /config_dump and logs. */
  policies: string[] = [];

  constructor(private readonly opts: InboundAuthzOptions) {}

  /** PeerAuthentication's mTLS mode for an app port (undefined: the workload's mode). */
  mtlsMode(port: number | undefined): MtlsMode {
    return port === undefined ? this.peerAuthn.mode : mtlsModeForPort(this.peerAuthn, port);
  }

  /** Whether any policy selects this workload (else check() allows at once). */
  get enabled(): boolean {
    return this.active;
  }

  denied(): number {
    return this.deniedCount;
  }

  allowed(): number {
    return this.allowedCount;
  }

  /** Recompile from the new inputs (config snapshot and/or Kubernetes watch). Cheap when nothing applies. */
  update(input: AuthzUpdate): void {
    if (input.resources) this.resources = input.resources;
    if (input.pods) this.pods = input.pods;
    if (input.namespaceLabels) this.namespaceLabels = input.namespaceLabels;
    if (input.trustDomains) this.trustDomains = input.trustDomains;
    if (input.samePolicies === true && !input.pods && !input.namespaceLabels && !input.trustDomains) return;
    this.compile();
  }

  private compile(): void {
    const { namespace, labels } = this.opts;
    const root = this.opts.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
    const nps: Resource[] = [];
    const aps: Resource[] = [];
    const ras: Resource[] = [];
    const pas: Resource[] = [];
    for (const r of this.resources) {
      if (r.kind === 'NetworkPolicy' && r.apiVersion === 'networking.k8s.io/v1') {
        if (r.metadata.namespace === namespace && selectsForIngress(r.spec as NetworkPolicySpec, labels)) nps.push(r);
      } else if (r.kind === 'AuthorizationPolicy' && r.apiVersion.startsWith('security.istio.io/')) {
        if (r.metadata.namespace === namespace || r.metadata.namespace === root) aps.push(r);
      } else if (r.kind === 'RequestAuthentication' && r.apiVersion.startsWith('security.istio.io/')) {
        if (r.metadata.namespace === namespace || r.metadata.namespace === root) ras.push(r);
      } else if (r.kind === 'PeerAuthentication' && r.apiVersion.startsWith('security.istio.io/')) {
        if (r.metadata.namespace === namespace || r.metadata.namespace === root) pas.push(r);
      }
    }
    const before = this.peerAuthn;
    // Resources keep no creationTimestamp here: between two policies of one level the name decides (istiod: the oldest).
    this.peerAuthn = resolvePeerAuthentication(pas.map((r) => ({ metadata: { name: r.metadata.name, namespace: r.metadata.namespace }, spec: r.spec })), { namespace, labels, rootNamespace: root });
    if (before.mode !== this.peerAuthn.mode || before.policies.join() !== this.peerAuthn.policies.join()) {
      this.opts.log?.('info', `PeerAuthentication: mTLS ${this.peerAuthn.mode}`, { policies: this.peerAuthn.policies, ports: Object.fromEntries(this.peerAuthn.ports) });
    }
    // JWT rules are recompiled only when they change: a compiled rule holds its fetched key set (jwksUri cache).
    const raKey = JSON.stringify(ras.map((r) => [r.metadata.namespace, r.metadata.name, r.spec]));
    if (raKey !== this.authnKey) {
      this.authnKey = raKey;
      const ra = ras.length > 0 ? new RequestAuthenticator(ras, { namespace, labels, rootNamespace: root }, this.opts.authn) : undefined;
      this.authn = ra?.active ? ra : undefined;
      for (const w of this.authn?.warnings ?? []) this.opts.log?.('warn', `RequestAuthentication ${w}`);
    }
    const ap = aps.length > 0 ? compileAuthorizationPolicies(aps, { namespace, labels, rootNamespace: root, trustDomains: this.trustDomains }) : undefined;
    this.npActive = nps.length > 0;
    this.ap = ap?.active ? ap : undefined;
    const wasActive = this.active;
    this.active = this.npActive || this.ap !== undefined || this.authn !== undefined;
    this.policies = [
      ...nps.map((r) => `NetworkPolicy/${r.metadata.namespace}/${r.metadata.name}`),
      ...(this.ap ? aps.map((r) => `AuthorizationPolicy/${r.metadata.namespace}/${r.metadata.name}`) : []),
      ...(this.authn?.policies ?? []).map((id) => `RequestAuthentication/${id}`),
    ];
    if (!this.active) {
      // Nothing applies: drop the pod index too (it is only needed to evaluate policies).
      this.np = ALLOW_ALL_NP;
      this.podByIp = new Map();
      if (wasActive) this.opts.log?.('info', 'inbound authorization off: no NetworkPolicy or AuthorizationPolicy selects this workload');
      return;
    }
    // The pod index serves NetworkPolicy only (AuthorizationPolicy reads identities from certificates).
    this.podByIp = this.npActive ? indexPods(this.pods) : new Map();
    this.np = this.npActive
      ? compileNetworkPolicies(nps, labels, namespace, this.namespaceLabels, { namedPorts: this.ownNamedPorts() })
      : ALLOW_ALL_NP;
    if (!wasActive) this.opts.log?.('info', 'inbound authorization on', { policies: this.policies });
    const warnings = this.ap?.warnings ?? [];
    const key = warnings.join('\n');
    if (key !== this.warned) {
      this.warned = key;
      for (const w of warnings) this.opts.log?.('warn', `AuthorizationPolicy ${w}`);
    }
  }

  private ownNamedPorts(): Record<string, number> {
    const out: Record<string, number> = {};
    const name = this.opts.podName;
    if (!name) return out;
    const self = this.pods.find((p) => p.metadata?.name === name && (p.metadata?.namespace ?? 'default') === this.opts.namespace);
    for (const c of self?.spec?.containers ?? []) {
      for (const p of c.ports ?? []) if (p.name && (p.protocol ?? 'TCP') === 'TCP') out[p.name] = p.containerPort;
    }
    return out;
  }

  /** Decide one request from `peer`. NetworkPolicy first (it is L3/L4: the CNI would drop it before HTTP), then AuthorizationPolicy. */
  check(peer: AuthzPeer, req: AuthzHttpRequest): AuthzResult {
    if (!this.active) return ALLOWED;
    const ip = normalizeIp(peer.ip);
    const np = this.checkNetworkPolicy(ip, peer.port);
    if (np !== undefined) return np;
    if (this.ap) {
      const d = this.ap({
        sourceIp: ip,
        // Istio's source.namespace is the peer certificate's: a plaintext caller has none, whatever its IP.
        ...(peer.namespace !== undefined ? { sourceNamespace: peer.namespace } : {}),
        ...(peer.principal !== undefined ? { sourcePrincipal: peer.principal } : {}),
        method: req.method,
        path: req.path,
        host: req.host,
        port: peer.port,
        headers: req.headers,
        ...(req.requestAuth !== undefined ? { requestAuth: req.requestAuth } : {}),
      });
      if (!d.allowed) return this.deny(ip, `AuthorizationPolicy ${d.policy ?? '(no ALLOW policy matched)'}`, d.details ?? E.rbacDenied.details, d.policy);
    }
    this.allowedCount++;
    return ALLOWED;
  }

  /**
   * Decide one L4 connection from `peer` (TCP proxy): NetworkPolicy, then AuthorizationPolicy with Istio's TCP
   * semantics (HTTP-only fields dropped from DENY rules, ALLOW rules with them skipped).
   */
  checkConnection(peer: AuthzPeer): AuthzResult {
    if (!this.active) return ALLOWED;
    const ip = normalizeIp(peer.ip);
    const np = this.checkNetworkPolicy(ip, peer.port);
    if (np !== undefined) return np;
    if (this.ap) {
      const d = this.ap.tcp({
        sourceIp: ip,
        ...(peer.namespace !== undefined ? { sourceNamespace: peer.namespace } : {}),
        ...(peer.principal !== undefined ? { sourcePrincipal: peer.principal } : {}),
        port: peer.port,
      });
      if (!d.allowed) return this.deny(ip, `AuthorizationPolicy ${d.policy ?? '(no ALLOW policy matched)'} (TCP)`, d.details ?? E.rbacDenied.details, d.policy);
    }
    this.allowedCount++;
    return ALLOWED;
  }

  /** NetworkPolicy (L3: the peer's pod found by IP in the watch); undefined when it allows. */
  private checkNetworkPolicy(ip: string, port: number): AuthzResult | undefined {
    if (!this.npActive) return undefined;
    const pod = this.podByIp.get(ip);
    const d = this.np(pod ? { ip, podLabels: pod.labels, namespace: pod.namespace } : { ip }, port);
    return d.allowed ? undefined : this.deny(ip, `NetworkPolicy ${d.policy ?? ''}`, E.rbacDenied.details, d.policy);
  }

  private deny(ip: string, what: string, details: string, policy: string | undefined): AuthzResult {
    this.deniedCount++;
    const log = this.opts.log;
    if (log) {
      const now = (this.opts.now ?? Date.now)();
      const key = `${what}|${ip}`;
      const last = this.lastLogged.get(key);
      if (last === undefined || now - last >= (this.opts.logIntervalMs ?? 60_000)) {
        this.lastLogged.delete(key); // re-insert: the Map's order is then oldest-logged first
        this.lastLogged.set(key, now);
        if (this.lastLogged.size > MAX_LOG_KEYS) this.lastLogged.delete(this.lastLogged.keys().next().value!);
        log('warn', `inbound request denied by ${what}`, { peer: ip, details });
      }
    }
    const out: AuthzResult = { allowed: false, status: E.rbacDenied.status, body: E.rbacDenied.body, details };
    if (policy !== undefined) out.policy = policy;
    return out;
  }
}

/** Kubernetes: a NetworkPolicy isolates the pods its podSelector selects, for ingress when policyTypes has Ingress (absent = Ingress). */
function selectsForIngress(spec: NetworkPolicySpec, labels: Readonly<Record<string, string>>): boolean {
  if (!selectorMatches((spec.podSelector ?? {}) as LabelSelector, labels)) return false;
  const types = spec.policyTypes && spec.policyTypes.length > 0 ? spec.policyTypes : ['Ingress'];
  return types.includes('Ingress');
}

/**
 * Pod IP → identity, Running pods only (a Succeeded/Failed pod's IP may already belong to a new pod). An IP
 * shared by pods of different identities (hostNetwork pods share their node's IP) maps to no pod: selector
 * rules then never match it, only ipBlocks can.
 */
function indexPods(pods: readonly PodLike[]): Map<string, { namespace: string; labels: Readonly<Record<string, string>> }> {
  const out = new Map<string, { namespace: string; labels: Readonly<Record<string, string>> }>();
  const ambiguous = new Set<string>();
  const same = (a: { namespace: string; labels: Readonly<Record<string, string>> }, b: typeof a): boolean =>
    a.namespace === b.namespace && JSON.stringify(Object.entries(a.labels).sort()) === JSON.stringify(Object.entries(b.labels).sort());
  for (const p of pods) {
    if (p.status?.phase !== 'Running') continue;
    const id = { namespace: p.metadata?.namespace ?? 'default', labels: p.metadata?.labels ?? {} };
    const ips = new Set<string>();
    if (p.status.podIP) ips.add(p.status.podIP);
    for (const x of p.status.podIPs ?? []) if (x.ip) ips.add(x.ip);
    for (const raw of ips) {
      const ip = normalizeIp(raw);
      if (ambiguous.has(ip)) continue;
      const prev = out.get(ip);
      if (prev && !same(prev, id)) {
        out.delete(ip);
        ambiguous.add(ip);
      } else out.set(ip, id);
    }
  }
  return out;
}
