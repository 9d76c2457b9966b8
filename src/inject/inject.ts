/**
 * The pod-template mutation shared by `remora inject` and the admission webhook: adds the Remora
 * sidecar (native by default), its volumes, annotations and probe rewrites. Pure; never mutates input.
 */
import { iptablesRules, TRAFFIC_ANNOTATIONS } from './iptables.js';
import { diff, type JsonPatchOp } from './json-patch.js';

export { type JsonPatchOp } from './json-patch.js';

export const SIDECAR_NAME = 'remora-proxy';
export const INIT_NAME = 'remora-init';
export const CONFIG_VOLUME = 'remora-config';
export const PODINFO_VOLUME = 'remora-podinfo';
export const CONFIG_MOUNT_PATH = '/etc/remora/config';
export const PODINFO_MOUNT_PATH = '/etc/remora/podinfo';
export const CERTS_VOLUME = 'remora-certs';
export const CERTS_MOUNT_PATH = '/var/run/secrets/remora/certs';
/** cert-manager's csi-driver-spiffe: a certificate per pod for the pod's own service account (deploy/mtls). */
export const SPIFFE_CSI_DRIVER = 'spiffe.csi.cert-manager.io';
/** Result annotation, like Istio's `sidecar.istio.io/status`: its presence means "already injected". */
export const STATUS_ANNOTATION = 'remora.io/status';
/** Opt-out keys, read from the pod template's annotations and labels. */
export const INJECT_KEYS = ['sidecar.istio.io/inject', 'remora.io/inject'] as const;
/** Neutral fallback image; the CLI and injector pass `ghcr.io/remora-mesh/remora:<package version>`. */
export const DEFAULT_IMAGE = 'remora:latest';
export const DEFAULT_CONFIG_MAP = 'remora-config';
export const PROXY_UID = 1337;

export const PORTS = {
  outbound: 15001, // Istio: outbound capture, bound to 127.0.0.1 (not exposed)
  inbound: 15006, // Istio: inbound capture
  admin: 15000, // Envoy admin, 127.0.0.1 only (not exposed)
  health: 15021, // Istio: /healthz/ready and /app-health/*
  stats: 15090, // Istio: /stats/prometheus
} as const;

export interface InjectOptions {
  /** Sidecar image (default DEFAULT_IMAGE); the annotation `sidecar.istio.io/proxyImage` overrides per pod. */
  image?: string;
  /** ConfigMap mounted at /etc/remora/config (default `remora-config`). */
  configMap?: string;
  /** Native sidecar (initContainer with restartPolicy Always, Kubernetes ≥ 1.29); default true. */
  nativeSidecar?: boolean;
  /** Add the `remora-init` iptables init container (transparent capture); default false. */
  iptables?: boolean;
  /** Rewrite app httpGet probes to the sidecar's health port (Istio rewriteAppHTTPProbers); default true. */
  rewriteProbes?: boolean;
  /** Default IfNotPresent. */
  imagePullPolicy?: string;
  /**
   * Pass `--kubernetes` to the sidecar (watch Services/EndpointSlices/Istio objects; needs the
   * remora-proxy ClusterRole bound to the pod's service account); default false. The pod
   * annotation `remora.io/kubernetes: "true"|"false"` overrides.
   */
  kubernetes?: boolean;
  /**
   * Workload certificates for mutual TLS (`--cert-dir` of remora run): `csi` mounts a certificate per pod from
   * cert-manager's csi-driver-spiffe, whose SPIFFE ID is the pod's own service account (the driver asks as that
   * account; deploy/mtls approves nothing else), `secret` mounts a Secret `<serviceAccountName>-mesh-tls` provided
   * by other means. Default none (plaintext). The pod annotation `remora.io/certs: secret|csi|none` overrides,
   * `remora.io/cert-secret` names another Secret.
   */
  certs?: 'secret' | 'csi';
}

export interface InjectResult {
  changed: boolean;
  object: unknown;
  /** Why nothing was injected (opt-out, already injected, no pod template …). */
  skipped?: string;
}

/** What the sidecar receives in REMORA_APP_PROBERS, keyed by the rewritten path. */
export interface AppProber {
  httpGet: { path: string; port: number; scheme: 'HTTP' | 'HTTPS'; host?: string; httpHeaders?: Array<{ name: string; value: string }> };
  timeoutSeconds: number;
}
export type AppProbers = Record<string, AppProber>;

/** A malformed injection-relevant annotation: the pod should be refused, not half-injected. */
export class InjectError extends Error {
  override name = 'InjectError';
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isObj(v)) for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}

/** Kubernetes' ParseBool-style "false" spellings that Istio accepts for `sidecar.istio.io/inject`. */
function isFalse(v: string | undefined): boolean {
  return v !== undefined && ['false', 'f', '0', 'no', 'n', 'off', 'disabled'].includes(v.trim().toLowerCase());
}

/** Path from the object root to its pod template, or undefined for kinds without one. */
export function podTemplatePath(kind: unknown): string[] | undefined {
  switch (kind) {
    case 'Pod':
      return [];
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'ReplicationController':
    case 'Job':
      return ['spec', 'template'];
    case 'CronJob':
      return ['spec', 'jobTemplate', 'spec', 'template'];
    default:
      return undefined;
  }
}

/** Inject every pod template in `obj` (a workload, a Pod, or a `List` of them). Returns a new object. */
export function injectObject(obj: unknown, opts: InjectOptions = {}): InjectResult {
  if (!isObj(obj)) return { changed: false, object: obj, skipped: 'not a Kubernetes object' };
  if (obj.kind === 'List' && Array.isArray(obj.items)) {
    const results = obj.items.map((item) => injectObject(item, opts));
    if (!results.some((r) => r.changed)) return { changed: false, object: obj, skipped: 'no item was injected' };
    return { changed: true, object: { ...obj, items: results.map((r) => r.object) } };
  }
  const path = podTemplatePath(obj.kind);
  if (path === undefined) return { changed: false, object: obj, skipped: `kind ${String(obj.kind)} has no pod template` };
  let template: unknown = obj;
  for (const k of path) template = isObj(template) ? template[k] : undefined;
  if (!isObj(template)) return { changed: false, object: obj, skipped: 'no pod template' };
  const r = injectPodTemplate(template, opts);
  if (!r.changed) return { changed: false, object: obj, skipped: r.skipped };
  return { changed: true, object: setAt(obj, path, r.template) };
}

/** JSON Patch (RFC 6902) that injects `pod`; empty when nothing is to be done. */
export function podPatch(pod: unknown, opts: InjectOptions = {}): JsonPatchOp[] {
  const r = injectObject(pod, opts);
  return r.changed ? diff(pod, r.object) : [];
}

/** Copy-on-write set: only the objects along `path` are copied. */
function setAt(obj: Obj, path: readonly string[], value: Obj): Obj {
  if (path.length === 0) return value;
  const [head, ...rest] = path as [string, ...string[]];
  const child = obj[head];
  return { ...obj, [head]: setAt(isObj(child) ? child : {}, rest, value) };
}

function skipReason(meta: Obj, spec: Obj): string | undefined {
  const annotations = stringMap(meta.annotations);
  const labels = stringMap(meta.labels);
  for (const key of INJECT_KEYS) {
    if (isFalse(annotations[key]) || isFalse(labels[key])) return `opted out by ${key}`;
  }
  if (annotations[STATUS_ANNOTATION] !== undefined) return 'already injected';
  const all = [...(Array.isArray(spec.initContainers) ? spec.initContainers : []), ...(Array.isArray(spec.containers) ? spec.containers : [])];
  if (all.some((c) => isObj(c) && (c.name === SIDECAR_NAME || c.name === INIT_NAME))) return 'already injected';
  // As Istio: a host-network pod shares the node's network; a sidecar there would capture the node.
  if (spec.hostNetwork === true) return 'hostNetwork pods are not injected';
  if (!Array.isArray(spec.containers) || spec.containers.length === 0) return 'pod template has no containers';
  return undefined;
}

/** Inject one pod template ({metadata, spec}); returns a new template or the reason to skip. */
export function injectPodTemplate(template: Obj, opts: InjectOptions = {}): { changed: boolean; template: Obj; skipped?: string } {
  const meta = isObj(template.metadata) ? template.metadata : {};
  const spec = isObj(template.spec) ? template.spec : {};
  const reason = skipReason(meta, spec);
  if (reason !== undefined) return { changed: false, template, skipped: reason };

  const annotations = stringMap(meta.annotations);
  const containers = structuredClone(spec.containers as unknown[]);
  const appPorts = collectAppPorts(containers);

  const rewrite = opts.rewriteProbes !== false && !isFalse(annotations['sidecar.istio.io/rewriteAppHTTPProbers']);
  const probers: AppProbers = rewrite ? rewriteProbes(containers) : {};

  const image = annotations['sidecar.istio.io/proxyImage'] ?? annotations['remora.io/proxyImage'] ?? opts.image ?? DEFAULT_IMAGE;
  const native = opts.nativeSidecar !== false;
  const sidecar = sidecarContainer({ image, opts, appPorts, probers, annotations, native });

  const added: { initContainers: string[]; containers: string[]; volumes: string[] } = { initContainers: [], containers: [], volumes: [] };
  const initContainers = Array.isArray(spec.initContainers) ? structuredClone(spec.initContainers) : [];
  const front: unknown[] = [];
  if (opts.iptables === true) {
    front.push(initContainer(image, opts, appPorts, annotations));
    added.initContainers.push(INIT_NAME);
  }
  if (native) {
    // After remora-init (rules in place) and before the app's own init containers, so they have the mesh.
    front.push(sidecar);
    added.initContainers.push(SIDECAR_NAME);
  } else {
    containers.unshift(sidecar);
    added.containers.push(SIDECAR_NAME);
  }
  initContainers.unshift(...front);

  const volumes = Array.isArray(spec.volumes) ? structuredClone(spec.volumes) : [];
  volumes.push(
    // optional: a missing ConfigMap must not keep the pod from starting; the proxy starts with no routes.
    { name: CONFIG_VOLUME, configMap: { name: opts.configMap ?? DEFAULT_CONFIG_MAP, optional: true } },
    {
      name: PODINFO_VOLUME,
      downwardAPI: {
        items: [
          { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
          { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } },
        ],
      },
    },
  );
  added.volumes.push(CONFIG_VOLUME, PODINFO_VOLUME);
  const certs = certSource(annotations, opts);
  if (certs !== undefined) {
    const sa = typeof spec.serviceAccountName === 'string' && spec.serviceAccountName !== '' ? spec.serviceAccountName : 'default';
    volumes.push(certs === 'csi'
      // The trust domain and the issuer are the driver's installation settings; the identity is the pod's account.
      ? { name: CERTS_VOLUME, csi: { driver: SPIFFE_CSI_DRIVER, readOnly: true } }
      : { name: CERTS_VOLUME, secret: { secretName: annotations['remora.io/cert-secret'] ?? `${sa}-mesh-tls` } });
    added.volumes.push(CERTS_VOLUME);
    sidecar.args = [...(sidecar.args as string[]), '--cert-dir', CERTS_MOUNT_PATH];
    (sidecar.volumeMounts as Obj[]).push({ name: CERTS_VOLUME, mountPath: CERTS_MOUNT_PATH, readOnly: true });
  }

  const newAnnotations: Record<string, string> = { ...(isObj(meta.annotations) ? (meta.annotations as Record<string, string>) : {}) };
  // Only when the pod declares no scrape config of its own: an app's own prometheus.io/port wins.
  if (!['prometheus.io/scrape', 'prometheus.io/port', 'prometheus.io/path'].some((k) => k in newAnnotations)) {
    newAnnotations['prometheus.io/scrape'] = 'true';
    newAnnotations['prometheus.io/port'] = String(PORTS.stats);
    newAnnotations['prometheus.io/path'] = '/stats/prometheus';
  }
  newAnnotations[STATUS_ANNOTATION] = JSON.stringify({
    initContainers: added.initContainers,
    containers: added.containers,
    volumes: added.volumes,
    image,
    native,
  });

  const newSpec: Obj = { ...spec, containers, volumes };
  if (initContainers.length > 0) newSpec.initContainers = initContainers;
  return { changed: true, template: { ...template, metadata: { ...meta, annotations: newAnnotations }, spec: newSpec } };
}

/** Where the sidecar's workload certificate comes from: the pod annotation, else the injection option. */
function certSource(annotations: Record<string, string>, opts: InjectOptions): 'secret' | 'csi' | undefined {
  const a = annotations['remora.io/certs'];
  if (a !== undefined) {
    if (a === 'secret' || a === 'csi') return a;
    if (a === 'none' || isFalse(a)) return undefined;
    throw new Error(`annotation remora.io/certs: "${a}" is not secret, csi or none`);
  }
  return opts.certs;
}

/** TCP containerPorts of the app containers, first-seen order, deduplicated. */
function collectAppPorts(containers: unknown[]): number[] {
  const ports: number[] = [];
  for (const c of containers) {
    if (!isObj(c) || !Array.isArray(c.ports)) continue;
    for (const p of c.ports) {
      if (!isObj(p) || typeof p.containerPort !== 'number') continue;
      if (p.protocol !== undefined && p.protocol !== 'TCP') continue;
      if (!ports.includes(p.containerPort)) ports.push(p.containerPort);
    }
  }
  return ports;
}

const PROBES = [
  ['livenessProbe', 'livez'],
  ['readinessProbe', 'readyz'],
  ['startupProbe', 'startupz'],
] as const;

/** Rewrite httpGet probes in place (on the already-cloned containers); returns the original probes. */
function rewriteProbes(containers: unknown[]): AppProbers {
  const probers: AppProbers = {};
  for (const c of containers) {
    if (!isObj(c) || typeof c.name !== 'string') continue;
    for (const [field, suffix] of PROBES) {
      const probe = c[field];
      if (!isObj(probe) || !isObj(probe.httpGet)) continue;
      const hg = probe.httpGet;
      const port = resolvePort(hg.port, c.ports);
      if (port === undefined) continue; // unresolvable named port: leave the probe alone
      const key = `/app-health/${c.name}/${suffix}`;
      const prober: AppProber = {
        httpGet: { path: typeof hg.path === 'string' && hg.path !== '' ? hg.path : '/', port, scheme: hg.scheme === 'HTTPS' ? 'HTTPS' : 'HTTP' },
        timeoutSeconds: typeof probe.timeoutSeconds === 'number' ? probe.timeoutSeconds : 1, // Kubernetes default: 1s
      };
      if (typeof hg.host === 'string' && hg.host !== '') prober.httpGet.host = hg.host;
      if (Array.isArray(hg.httpHeaders) && hg.httpHeaders.length > 0) {
        prober.httpGet.httpHeaders = hg.httpHeaders.filter(isObj).map((h) => ({ name: String(h.name), value: String(h.value) }));
      }
      probers[key] = prober;
      c[field] = { ...probe, httpGet: { path: key, port: PORTS.health, scheme: 'HTTP' } };
    }
  }
  return probers;
}

function resolvePort(port: unknown, ports: unknown): number | undefined {
  if (typeof port === 'number') return port;
  if (typeof port !== 'string') return undefined;
  if (/^\d+$/.test(port)) return Number(port);
  if (!Array.isArray(ports)) return undefined;
  const named = ports.find((p) => isObj(p) && p.name === port);
  return isObj(named) && typeof named.containerPort === 'number' ? named.containerPort : undefined;
}

const QUANTITY_SUFFIX: Record<string, number> = {
  '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** A Kubernetes quantity (`128Mi`, `1G`, `134217728`, `129e6`) in bytes, or undefined when it is not one. */
export function quantityBytes(q: string): number | undefined {
  const m = /^\s*([+]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?)\s*$/.exec(q);
  if (m === null) return undefined;
  const n = Number(m[1]! + (m[2] ?? ''));
  const bytes = n * QUANTITY_SUFFIX[m[3] ?? '']!;
  return Number.isFinite(bytes) ? bytes : undefined;
}

/**
 * V8's old-generation cap (MiB) for a sidecar whose container may use `limit`: what the limit leaves after ~32 MiB
 * of what is not the JS heap (the binary's pages, young generation, native buffers), at least half the limit; 96 for
 * the default 128Mi, as before. An unreadable limit keeps 96.
 */
export function oldSpaceMiB(limit: string | undefined): number {
  const bytes = limit === undefined ? undefined : quantityBytes(limit);
  if (bytes === undefined || bytes <= 0) return 96;
  const mib = Math.floor(bytes / 2 ** 20);
  return Math.max(16, Math.floor(mib / 2), mib - 32);
}

function resources(annotations: Record<string, string>): Obj {
  // Defaults sized for an idle Node.js proxy; Istio's per-pod override annotations apply.
  const requests: Record<string, string> = {
    cpu: annotations['sidecar.istio.io/proxyCPU'] ?? '10m',
    memory: annotations['sidecar.istio.io/proxyMemory'] ?? '40Mi',
  };
  const limits: Record<string, string> = { memory: annotations['sidecar.istio.io/proxyMemoryLimit'] ?? '128Mi' };
  const cpuLimit = annotations['sidecar.istio.io/proxyCPULimit'];
  if (cpuLimit !== undefined) limits.cpu = cpuLimit;
  return { requests, limits };
}

function sidecarContainer(p: {
  image: string;
  opts: InjectOptions;
  appPorts: number[];
  probers: AppProbers;
  annotations: Record<string, string>;
  native: boolean;
}): Obj {
  const args = ['run', '--config', CONFIG_MOUNT_PATH];
  const k8s = p.annotations['remora.io/kubernetes'];
  if (k8s !== undefined ? !isFalse(k8s) && k8s.trim() !== '' : p.opts.kubernetes === true) args.push('--kubernetes');
  if (p.appPorts.length > 0) args.push('--app-port', p.appPorts.join(','));
  // Behind remora-init's rules every inbound connection is redirected: one that dialled 15006 itself is refused.
  if (p.opts.iptables === true) args.push('--capture-mode', 'redirect');
  // The pod's live labels from the downward API (a label map cannot be an env var); not REMORA_LABELS,
  // which would be frozen at injection time and would override the file.
  args.push('--labels-file', `${PODINFO_MOUNT_PATH}/labels`);
  const fieldEnv = (name: string, fieldPath: string): Obj => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  const env: Obj[] = [
    fieldEnv('POD_NAME', 'metadata.name'),
    fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('INSTANCE_IP', 'status.podIP'),
    fieldEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
  ];
  if (Object.keys(p.probers).length > 0) env.push({ name: 'REMORA_APP_PROBERS', value: JSON.stringify(p.probers) });
  // Keep V8's heap under the container memory limit so GC runs before the OOM killer does (the cap follows
  // proxyMemoryLimit: a large mesh given 1Gi gets the heap to use it); a 1 MB semi-space (default: grows to ~16 MB) and
  // one V8 worker thread keep a sidecar's private memory lower under load, at the same CPU per request
  // (docs/performance.md, "One service: idle and at max throughput"). The image's NODE_OPTIONS, plus the cap.
  const limit = (resources(p.annotations).limits as Record<string, string>).memory;
  env.push({ name: 'NODE_OPTIONS', value: `--max-old-space-size=${oldSpaceMiB(limit)} --max-semi-space-size=1 --v8-pool-size=1` });

  const probe = (extra: Obj): Obj => ({ httpGet: { path: '/healthz/ready', port: PORTS.health, scheme: 'HTTP' }, timeoutSeconds: 3, ...extra });
  const c: Obj = {
    name: SIDECAR_NAME,
    image: p.image,
    imagePullPolicy: p.opts.imagePullPolicy ?? 'IfNotPresent',
    args,
    ports: [
      { name: 'remora-inbound', containerPort: PORTS.inbound, protocol: 'TCP' },
      { name: 'http-health', containerPort: PORTS.health, protocol: 'TCP' },
      { name: 'http-envoy-prom', containerPort: PORTS.stats, protocol: 'TCP' },
    ],
    env,
    resources: resources(p.annotations),
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    },
    // Istio's values: startup polls every 1s for up to 10 min; readiness every 15s, 4 failures.
    startupProbe: probe({ periodSeconds: 1, failureThreshold: 600 }),
    readinessProbe: probe({ periodSeconds: 15, failureThreshold: 4 }),
    volumeMounts: [
      { name: CONFIG_VOLUME, mountPath: CONFIG_MOUNT_PATH, readOnly: true },
      { name: PODINFO_VOLUME, mountPath: PODINFO_MOUNT_PATH, readOnly: true },
    ],
  };
  if (p.native) {
    c.restartPolicy = 'Always';
  } else {
    // Classic sidecar: kubelet starts containers in order and waits for postStart, so the app starts after ready.
    c.lifecycle = { postStart: { exec: { command: ['remora', 'wait', '--timeout', '60s'] } } };
  }
  return c;
}

/** Init container running `remora iptables --apply` with the capture flags resolved at injection time. */
function initContainer(image: string, opts: InjectOptions, appPorts: number[], annotations: Record<string, string>): Obj {
  try {
    iptablesRules({ appPorts }, annotations); // validate now: refuse a pod with a malformed annotation
  } catch (err) {
    throw new InjectError((err as Error).message);
  }
  const A = TRAFFIC_ANNOTATIONS;
  const args = ['iptables', '--apply', '--app-ports', appPorts.join(',')];
  const flag: Array<[string, string]> = [
    ['--include-inbound-ports', A.includeInboundPorts],
    ['--exclude-inbound-ports', A.excludeInboundPorts],
    ['--include-outbound-ip-ranges', A.includeOutboundIPRanges],
    ['--exclude-outbound-ip-ranges', A.excludeOutboundIPRanges],
    ['--include-outbound-ports', A.includeOutboundPorts],
    ['--exclude-outbound-ports', A.excludeOutboundPorts],
  ];
  for (const [f, key] of flag) {
    const v = annotations[key];
    if (v !== undefined) args.push(`${f}=${v}`);
  }
  return {
    name: INIT_NAME,
    image,
    imagePullPolicy: opts.imagePullPolicy ?? 'IfNotPresent',
    args,
    resources: { requests: { cpu: '10m', memory: '40Mi' }, limits: { memory: '128Mi' } },
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      // As Istio's istio-init. iptables-legacy takes a lock file in /run; the image's iptables-nft takes none and also
      // works with a read-only root (tried in the image test's images).
      readOnlyRootFilesystem: false,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  };
}
