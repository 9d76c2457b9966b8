/**
 * A pod spec, as `remora inject` writes it, turned into `podman run` flags the way the kubelet would run its
 * containers: user, capabilities, read-only root, env (downward API included), volumes, limits, probes. Pure: the
 * runner (pod-runner.ts) materialises volumes and runs the plan. Fields it does not model are refused, not dropped,
 * so a new field in inject's output fails the image test until it is modelled here.
 */

export type Obj = Record<string, unknown>;

export interface HttpProbe {
  path: string;
  port: number;
  /** HTTPS probes are not verified (the kubelet skips certificate checks). */
  scheme: 'HTTP' | 'HTTPS';
  periodSeconds: number;
  failureThreshold: number;
  timeoutSeconds: number;
  initialDelaySeconds: number;
}

export interface ContainerPlan {
  name: string;
  /** init: runs to completion in order; sidecar: an init container with restartPolicy Always; app: spec.containers. */
  kind: 'init' | 'sidecar' | 'app';
  image: string;
  /** Arguments after `podman run` (without -d), ending with the image and the container's args. */
  runArgs: string[];
  ports: number[];
  startupProbe?: HttpProbe;
  readinessProbe?: HttpProbe;
  livenessProbe?: HttpProbe;
  postStart?: string[];
  /** The effective user, as the kubelet decides it (securityContext, else the image's USER). */
  user: { uid: number; gid: number };
}

export interface PodPlan {
  name: string;
  namespace: string;
  containers: ContainerPlan[];
  /** Volumes the runner must provide as host directories, by name. */
  volumes: Array<{ name: string; source: 'configMap' | 'secret' | 'downwardAPI' | 'emptyDir'; configMap?: string; secret?: string; optional?: boolean; items?: Array<{ path: string; fieldPath: string }> }>;
  terminationGracePeriodSeconds: number;
}

export interface PodContext {
  /** Named network namespace (ip netns) every container joins, as the pod's sandbox. */
  netns: string;
  podIp: string;
  nodeName: string;
  /** Host directory of each volume (made by the runner from PodPlan.volumes). */
  volumeDirs: Record<string, string>;
  /** The image's USER ("1337:1337", "node", "" for root), for a container without runAsUser. */
  imageUser(image: string): string;
  /** Prefix of the podman container names (unique per test run). */
  prefix: string;
  /** The pod's resolver (dnsPolicy ClusterFirst): the cluster DNS address and the search path. */
  dns?: { nameserver: string; search: string[]; ndots: number };
}

export class UnsupportedField extends Error {
  override name = 'UnsupportedField';
}

const CONTAINER_FIELDS = new Set([
  'name', 'image', 'imagePullPolicy', 'command', 'args', 'env', 'ports', 'resources', 'securityContext', 'startupProbe',
  'readinessProbe', 'livenessProbe', 'volumeMounts', 'restartPolicy', 'lifecycle', 'workingDir',
  'terminationMessagePath', 'terminationMessagePolicy',
]);
const SECURITY_FIELDS = new Set([
  'runAsUser', 'runAsGroup', 'runAsNonRoot', 'readOnlyRootFilesystem', 'allowPrivilegeEscalation', 'privileged', 'capabilities',
  'seccompProfile',
]);
const POD_FIELDS = new Set([
  'containers', 'initContainers', 'volumes', 'securityContext', 'serviceAccountName', 'automountServiceAccountToken',
  'terminationGracePeriodSeconds', 'hostAliases', 'restartPolicy', 'dnsPolicy', 'enableServiceLinks',
]);

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function objAt(v: unknown, what: string): Obj {
  if (v === undefined) return {};
  if (!isObj(v)) throw new UnsupportedField(`${what}: not an object`);
  return v;
}

function listAt(v: unknown, what: string): Obj[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every(isObj)) throw new UnsupportedField(`${what}: not a list of objects`);
  return v;
}

function strings(v: unknown, what: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new UnsupportedField(`${what}: not a list of strings`);
  return v;
}

function refuseUnknown(o: Obj, known: Set<string>, what: string): void {
  for (const k of Object.keys(o)) if (!known.has(k)) throw new UnsupportedField(`${what}.${k}: not modelled by the test kubelet`);
}

/** Kubernetes memory quantity → bytes (Ki, Mi, Gi, k, M, G, or plain bytes). */
export function memoryBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q);
  if (!m) throw new UnsupportedField(`memory quantity ${q}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] ?? ''] ?? 1;
  return Math.round(Number(m[1]) * unit);
}

/** Kubernetes CPU quantity → CPUs ("100m" → 0.1, "2" → 2). */
export function cpus(q: string | number): number {
  const s = String(q);
  const m = /^(\d+(?:\.\d+)?)(m)?$/.exec(s);
  if (!m) throw new UnsupportedField(`cpu quantity ${s}`);
  return m[2] === 'm' ? Number(m[1]) / 1000 : Number(m[1]);
}

/** The downward API's rendering of a label or annotation map: `key="value"` lines, sorted, quotes escaped. */
export function downwardApiMap(map: Record<string, string>): string {
  return Object.keys(map).sort().map((k) => `${k}="${map[k]!.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join('\n');
}

/**
 * The kubelet's atomic-writer layout of a ConfigMap volume: files in `..<timestamp>/`, the `..data` symlink to it, and
 * one symlink per key through `..data` (what Remora's config reader and watcher must handle in a real pod).
 */
export function atomicWriterLayout(files: Record<string, string>, stamp: string): Array<{ path: string; content?: string; target?: string }> {
  const dir = `..${stamp}`;
  return [
    ...Object.entries(files).map(([k, content]) => ({ path: `${dir}/${k}`, content })),
    { path: '..data', target: dir },
    ...Object.keys(files).map((k) => ({ path: k, target: `..data/${k}` })),
  ];
}

function probe(p: unknown, ports: Obj[], what: string): HttpProbe | undefined {
  if (p === undefined) return undefined;
  const o = objAt(p, what);
  refuseUnknown(o, new Set(['httpGet', 'periodSeconds', 'failureThreshold', 'timeoutSeconds', 'initialDelaySeconds', 'successThreshold']), what);
  if (o.successThreshold !== undefined && o.successThreshold !== 1) throw new UnsupportedField(`${what}.successThreshold: only 1`);
  if (!isObj(o.httpGet)) throw new UnsupportedField(`${what}: only httpGet probes are modelled`);
  const hg = o.httpGet;
  refuseUnknown(hg, new Set(['path', 'port', 'scheme']), `${what}.httpGet`);
  if (hg.scheme !== undefined && hg.scheme !== 'HTTP' && hg.scheme !== 'HTTPS') throw new UnsupportedField(`${what}.httpGet.scheme ${String(hg.scheme)}`);
  let port = hg.port;
  if (typeof port === 'string') {
    const named = ports.find((x) => x.name === port);
    if (named === undefined) throw new UnsupportedField(`${what}.httpGet.port: no container port named ${port}`);
    port = named.containerPort;
  }
  if (typeof port !== 'number') throw new UnsupportedField(`${what}.httpGet.port: not a number or a port name`);
  const num = (v: unknown, d: number): number => (typeof v === 'number' ? v : d);
  return {
    path: typeof hg.path === 'string' ? hg.path : '/',
    port,
    scheme: hg.scheme === 'HTTPS' ? 'HTTPS' : 'HTTP',
    // Kubernetes' defaults.
    periodSeconds: num(o.periodSeconds, 10),
    failureThreshold: num(o.failureThreshold, 3),
    timeoutSeconds: num(o.timeoutSeconds, 1),
    initialDelaySeconds: num(o.initialDelaySeconds, 0),
  };
}

function fieldValue(fieldPath: string, pod: { name: string; namespace: string; serviceAccount: string; labels: Record<string, string> }, ctx: PodContext): string {
  switch (fieldPath) {
    case 'metadata.name': return pod.name;
    case 'metadata.namespace': return pod.namespace;
    case 'status.podIP': return ctx.podIp;
    case 'spec.serviceAccountName': return pod.serviceAccount;
    case 'spec.nodeName': return ctx.nodeName;
    default: {
      const label = /^metadata\.labels\['(.+)'\]$/.exec(fieldPath);
      if (label) return pod.labels[label[1]!] ?? '';
      throw new UnsupportedField(`fieldRef ${fieldPath}: not modelled by the test kubelet`);
    }
  }
}

/** Kubernetes: the container's securityContext field, else the pod's. */
function secField(c: Obj, pod: Obj, k: string): unknown {
  return c[k] !== undefined ? c[k] : pod[k];
}

/** The pod's volumes, which the runner must provide as host directories before the containers can be planned. */
export function podVolumes(podObj: unknown): PodPlan['volumes'] {
  const spec = objAt(objAt(podObj, 'pod').spec, 'spec');
  return listAt(spec.volumes, 'spec.volumes').map((v, i) => {
    const what = `spec.volumes[${i}]`;
    const vname = String(v.name);
    if (isObj(v.configMap)) return { name: vname, source: 'configMap' as const, configMap: String(v.configMap.name), optional: v.configMap.optional === true };
    if (isObj(v.secret)) return { name: vname, source: 'secret' as const, secret: String(v.secret.secretName), optional: v.secret.optional === true };
    if (isObj(v.emptyDir)) return { name: vname, source: 'emptyDir' as const };
    if (isObj(v.downwardAPI)) {
      const items = listAt(v.downwardAPI.items, `${what}.downwardAPI.items`).map((it) => ({ path: String(it.path), fieldPath: String(objAt(it.fieldRef, `${what}.fieldRef`).fieldPath) }));
      return { name: vname, source: 'downwardAPI' as const, items };
    }
    throw new UnsupportedField(`${what} ${vname}: only configMap, secret, downwardAPI and emptyDir volumes are modelled`);
  });
}

/** Plan every container of `podObj` (a Pod, as inject prints it) for `podman run`. */
export function planPod(podObj: unknown, ctx: PodContext): PodPlan {
  const p = objAt(podObj, 'pod');
  if (p.kind !== 'Pod') throw new UnsupportedField(`kind ${String(p.kind)}: the test kubelet runs Pods`);
  const meta = objAt(p.metadata, 'metadata');
  const spec = objAt(p.spec, 'spec');
  refuseUnknown(spec, POD_FIELDS, 'spec');
  const name = String(meta.name);
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : 'default';
  const labels = objAt(meta.labels, 'metadata.labels') as Record<string, string>;
  const serviceAccount = typeof spec.serviceAccountName === 'string' ? spec.serviceAccountName : 'default';
  const podSec = objAt(spec.securityContext, 'spec.securityContext');
  refuseUnknown(podSec, new Set(['runAsUser', 'runAsGroup', 'runAsNonRoot', 'fsGroup', 'seccompProfile']), 'spec.securityContext');

  const volumes = podVolumes(p);
  const hosts = listAt(spec.hostAliases, 'spec.hostAliases').flatMap((h) => strings(h.hostnames, 'hostAliases.hostnames').map((n) => `--add-host=${n}:${String(h.ip)}`));

  const plan = (c: Obj, kind: ContainerPlan['kind'], what: string): ContainerPlan => {
    refuseUnknown(c, CONTAINER_FIELDS, what);
    const cname = String(c.name);
    const image = String(c.image);
    const sec = objAt(c.securityContext, `${what}.securityContext`);
    refuseUnknown(sec, SECURITY_FIELDS, `${what}.securityContext`);
    const args: string[] = [
      `--name=${ctx.prefix}-${cname}`,
      `--network=ns:/run/netns/${ctx.netns}`,
      `--hostname=${name}`,
      ...hosts,
      // No registry is ever asked: every image must already be in the local store (IfNotPresent finds it there).
      '--pull=never',
      // The kubelet ignores an image's HEALTHCHECK: its probes are the pod's (podman's timers would need systemd).
      '--no-healthcheck',
      '--log-driver=k8s-file',
    ];
    if (ctx.dns !== undefined) {
      args.push(`--dns=${ctx.dns.nameserver}`, ...ctx.dns.search.map((d) => `--dns-search=${d}`), `--dns-option=ndots:${ctx.dns.ndots}`);
    }
    const pull = c.imagePullPolicy ?? 'IfNotPresent';
    if (pull !== 'IfNotPresent' && pull !== 'Never') throw new UnsupportedField(`${what}.imagePullPolicy ${String(pull)}: the test has no registry`);

    // User: runAsUser/runAsGroup (container, else pod), else the image's USER; runAsNonRoot refuses root.
    const imageUser = ctx.imageUser(image);
    const [iu, ig] = imageUser.split(':');
    const runAsUser = secField(sec, podSec, 'runAsUser');
    const runAsGroup = secField(sec, podSec, 'runAsGroup');
    const uid = typeof runAsUser === 'number' ? runAsUser : iu === undefined || iu === '' || iu === 'root' ? 0 : /^\d+$/.test(iu) ? Number(iu) : NaN;
    if (Number.isNaN(uid)) throw new UnsupportedField(`${what}: image ${image} has a non-numeric USER ${imageUser}; the kubelet cannot verify runAsNonRoot`);
    // Without runAsGroup: the image's group when the image's user runs, else group 0 (the CRI's choice for a UID that
    // the image's /etc/passwd does not name; inject always sets both).
    const gid = typeof runAsGroup === 'number' ? runAsGroup : typeof runAsUser === 'number' ? 0 : ig !== undefined && /^\d+$/.test(ig) ? Number(ig) : 0;
    if (secField(sec, podSec, 'runAsNonRoot') === true && uid === 0) {
      throw new UnsupportedField(`${what}: container has runAsNonRoot and image will run as root (the kubelet refuses to start it)`);
    }
    args.push(`--user=${uid}:${gid}`);
    if (sec.readOnlyRootFilesystem === true) args.push('--read-only', '--read-only-tmpfs=false'); // no tmpfs: Kubernetes adds none
    if (sec.allowPrivilegeEscalation === false) args.push('--security-opt=no-new-privileges');
    if (sec.privileged === true) args.push('--privileged');
    const seccomp = objAt(secField(sec, podSec, 'seccompProfile'), `${what}.seccompProfile`);
    if (seccomp.type === 'Unconfined') args.push('--security-opt=seccomp=unconfined');
    else if (seccomp.type !== undefined && seccomp.type !== 'RuntimeDefault') throw new UnsupportedField(`${what}.seccompProfile ${String(seccomp.type)}`);
    const caps = objAt(sec.capabilities, `${what}.securityContext.capabilities`);
    refuseUnknown(caps, new Set(['add', 'drop']), `${what}.securityContext.capabilities`);
    for (const d of strings(caps.drop, 'capabilities.drop')) args.push(`--cap-drop=${d}`);
    for (const a of strings(caps.add, 'capabilities.add')) args.push(`--cap-add=${a}`);

    const res = objAt(c.resources, `${what}.resources`);
    const limits = objAt(res.limits, `${what}.resources.limits`);
    const requests = objAt(res.requests, `${what}.resources.requests`);
    if (typeof limits.memory === 'string') args.push(`--memory=${memoryBytes(limits.memory)}b`);
    if (limits.cpu !== undefined) args.push(`--cpus=${cpus(limits.cpu as string)}`);
    // The kubelet's cpu.shares for a request: milliCPU × 1024 / 1000, at least 2.
    if (requests.cpu !== undefined) args.push(`--cpu-shares=${Math.max(2, Math.round(cpus(requests.cpu as string) * 1024))}`);

    for (const [i, e] of listAt(c.env, `${what}.env`).entries()) {
      const ename = String(e.name);
      if (typeof e.value === 'string') args.push(`--env=${ename}=${e.value}`);
      else if (isObj(e.valueFrom) && isObj(e.valueFrom.fieldRef)) args.push(`--env=${ename}=${fieldValue(String(e.valueFrom.fieldRef.fieldPath), { name, namespace, serviceAccount, labels }, ctx)}`);
      else throw new UnsupportedField(`${what}.env[${i}] ${ename}: only value and valueFrom.fieldRef are modelled`);
    }
    for (const [i, m] of listAt(c.volumeMounts, `${what}.volumeMounts`).entries()) {
      refuseUnknown(m, new Set(['name', 'mountPath', 'readOnly']), `${what}.volumeMounts[${i}]`);
      const dir = ctx.volumeDirs[String(m.name)];
      if (dir === undefined) throw new UnsupportedField(`${what}.volumeMounts[${i}]: no volume ${String(m.name)}`);
      args.push(`--volume=${dir}:${String(m.mountPath)}:${m.readOnly === true ? 'ro' : 'rw'}`);
    }
    if (typeof c.workingDir === 'string') args.push(`--workdir=${c.workingDir}`);
    const command = strings(c.command, `${what}.command`);
    // Kubernetes: command replaces the ENTRYPOINT (and then the image's CMD is not used), args replace the CMD.
    if (command.length > 0) args.push(`--entrypoint=${JSON.stringify(command)}`);
    args.push(image, ...strings(c.args, `${what}.args`));

    const ports = listAt(c.ports, `${what}.ports`);
    for (const port of ports) if (port.protocol !== undefined && port.protocol !== 'TCP') throw new UnsupportedField(`${what}.ports: only TCP`);
    const lifecycle = objAt(c.lifecycle, `${what}.lifecycle`);
    refuseUnknown(lifecycle, new Set(['postStart']), `${what}.lifecycle`);
    const postStart = lifecycle.postStart === undefined ? undefined : strings(objAt(objAt(lifecycle.postStart, 'postStart').exec, 'postStart.exec').command, 'postStart.exec.command');
    if (c.livenessProbe !== undefined && kind === 'init') throw new UnsupportedField(`${what}: probes on an init container`);
    return {
      name: cname,
      kind,
      image,
      runArgs: args,
      ports: ports.map((x) => Number(x.containerPort)),
      ...(c.startupProbe !== undefined ? { startupProbe: probe(c.startupProbe, ports, `${what}.startupProbe`)! } : {}),
      ...(c.readinessProbe !== undefined ? { readinessProbe: probe(c.readinessProbe, ports, `${what}.readinessProbe`)! } : {}),
      ...(c.livenessProbe !== undefined ? { livenessProbe: probe(c.livenessProbe, ports, `${what}.livenessProbe`)! } : {}),
      ...(postStart !== undefined ? { postStart } : {}),
      user: { uid, gid },
    };
  };

  const containers: ContainerPlan[] = [];
  for (const [i, c] of listAt(spec.initContainers, 'spec.initContainers').entries()) {
    if (c.restartPolicy !== undefined && c.restartPolicy !== 'Always') throw new UnsupportedField(`spec.initContainers[${i}].restartPolicy ${String(c.restartPolicy)}`);
    containers.push(plan(c, c.restartPolicy === 'Always' ? 'sidecar' : 'init', `spec.initContainers[${i}]`));
  }
  for (const [i, c] of listAt(spec.containers, 'spec.containers').entries()) {
    if (c.restartPolicy !== undefined) throw new UnsupportedField(`spec.containers[${i}].restartPolicy: only init containers have one`);
    containers.push(plan(c, 'app', `spec.containers[${i}]`));
  }
  const grace = typeof spec.terminationGracePeriodSeconds === 'number' ? spec.terminationGracePeriodSeconds : 30;
  return { name, namespace, containers, volumes, terminationGracePeriodSeconds: grace };
}

/** The files of a downwardAPI volume for this pod (labels and annotations maps). */
export function downwardApiFiles(podObj: unknown, items: Array<{ path: string; fieldPath: string }>): Record<string, string> {
  const meta = objAt(objAt(podObj, 'pod').metadata, 'metadata');
  const out: Record<string, string> = {};
  for (const it of items) {
    if (it.fieldPath === 'metadata.labels') out[it.path] = downwardApiMap(objAt(meta.labels, 'labels') as Record<string, string>);
    else if (it.fieldPath === 'metadata.annotations') out[it.path] = downwardApiMap(objAt(meta.annotations, 'annotations') as Record<string, string>);
    else if (it.fieldPath === 'metadata.name' || it.fieldPath === 'metadata.namespace') out[it.path] = String(meta[it.fieldPath.slice(9)] ?? '');
    else throw new UnsupportedField(`downwardAPI ${it.fieldPath}: not modelled by the test kubelet`);
  }
  return out;
}
