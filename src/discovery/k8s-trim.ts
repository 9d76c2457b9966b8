/**
 * API objects as the Kubernetes source caches them: trimmed on arrival to what the mapping, the compiler and authz
 * read (strings and label sets interned, so memory grows with the cluster's distinct values), and turned into
 * Resources for the validator and compiler. Pure data shaping, no I/O.
 */
import type { KubernetesObject, V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import type { Resource } from '../config/resource.js';
import { SERVICE_NAME_LABEL } from './k8s-mapping.js';
import { GATEWAY_API, type KindSpec, type Role } from './k8s-kinds.js';

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

export type Obj = KubernetesObject & Record<string, unknown>;

/**
 * One copy of each namespace, label key and value, phase, protocol and port name across the cache: JSON.parse gives
 * every occurrence its own string, and 50,000 Pods repeat them all (a namespace, `app: web`, `pod-template-hash`).
 * Bounded: past 100,000 distinct strings it starts over (sharing is a saving, never a meaning).
 */
const interned = new Map<string, string>();
function intern<T extends string | undefined>(s: T): T {
  if (s === undefined || s.length > 128) return s;
  const i = interned.get(s);
  if (i !== undefined) return i as T;
  if (interned.size >= 100_000) interned.clear();
  interned.set(s, s);
  return s;
}

/** One (read-only) object per distinct label set: the Pods of a ReplicaSet carry the same labels. Bounded too. */
const labelSets = new Map<string, Record<string, string>>();
function internLabels(l: Record<string, string>): Record<string, string> {
  const parts: string[] = [];
  for (const k in l) parts.push(k, l[k]!);
  const key = parts.join('\0'); // flat: a key built with += would keep its tree of concatenations

  const known = labelSets.get(key);
  if (known !== undefined) return known;
  const out: Record<string, string> = {};
  for (const k in l) out[intern(k)] = intern(l[k]!);
  if (labelSets.size >= 50_000) labelSets.clear();
  labelSets.set(key, out);
  return out;
}

/** The few EndpointSlice condition combinations k8s-mapping reads, one object each. */
const CONDITIONS = new Map<string, Readonly<{ ready?: boolean; terminating?: boolean }>>();
function conditionsOf(c: { ready?: boolean | null; terminating?: boolean | null }): Readonly<{ ready?: boolean; terminating?: boolean }> {
  const ready = typeof c.ready === 'boolean' ? c.ready : undefined;
  const terminating = typeof c.terminating === 'boolean' ? c.terminating : undefined;
  const key = `${ready}|${terminating}`;
  let o = CONDITIONS.get(key);
  if (o === undefined) {
    o = Object.freeze({ ...(ready !== undefined ? { ready } : {}), ...(terminating !== undefined ? { terminating } : {}) });
    CONDITIONS.set(key, o);
  }
  return o;
}

function trimMeta(m: Record<string, unknown> | undefined, keepAnnotations: boolean, keepLabels = true): Record<string, unknown> {
  const meta = (m ?? {}) as { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
  const out: Record<string, unknown> = { name: meta.name, resourceVersion: meta.resourceVersion };
  if (meta.namespace !== undefined) out.namespace = intern(meta.namespace);
  if (meta.labels && keepLabels) out.labels = internLabels(meta.labels);
  if (keepAnnotations && meta.annotations) {
    const { [LAST_APPLIED]: _drop, ...rest } = meta.annotations;
    if (Object.keys(rest).length > 0) out.annotations = rest;
  }
  return out;
}

/** `podContainers`: keep a Pod's named container ports (only this workload's own Pod needs them). */
export function trimObject(role: Role, obj: Obj, podContainers = true): Obj {
  const meta = obj.metadata as Record<string, unknown> | undefined;
  switch (role) {
    case 'service': {
      const spec = (obj as V1Service).spec ?? {};
      return {
        metadata: trimMeta(meta, false),
        spec: { type: spec.type, clusterIP: spec.clusterIP, clusterIPs: spec.clusterIPs, ports: spec.ports, externalName: spec.externalName },
      } as Obj;
    }
    case 'endpointslice': {
      const s = obj as unknown as V1EndpointSlice;
      const m = trimMeta(meta, false, false);
      const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
      m.labels = svc ? { [SERVICE_NAME_LABEL]: intern(svc) } : {};
      return {
        metadata: m,
        addressType: intern(s.addressType),
        ports: (s.ports ?? []).map((p) => ({ name: intern(p.name), port: p.port, protocol: intern(p.protocol) })),
        endpoints: (s.endpoints ?? []).map((e) => {
          // What k8s-mapping reads: the addresses, readiness (ready, terminating), hostname and the pod it is.
          const c = e.conditions;
          const out: Record<string, unknown> = { addresses: e.addresses };
          if (c !== undefined) out.conditions = conditionsOf(c);
          if (e.hostname !== undefined) out.hostname = e.hostname;
          if (e.targetRef) out.targetRef = { kind: intern(e.targetRef.kind), name: e.targetRef.name };
          return out;
        }),
      } as unknown as Obj;
    }
    case 'pod': {
      const p = obj as V1Pod;
      // Named container ports only (NetworkPolicy's named ports resolve through them); podIPs only when it says more
      // than podIP (dual-stack).
      const containers = (podContainers ? p.spec?.containers ?? [] : [])
        .map((c) => ({ name: intern(c.name), ports: (c.ports ?? []).filter((cp) => cp.name).map((cp) => ({ name: intern(cp.name), containerPort: cp.containerPort, protocol: intern(cp.protocol) })) }))
        .filter((c) => c.ports.length > 0);
      const ips = p.status?.podIPs;
      const status: Record<string, unknown> = { podIP: p.status?.podIP, phase: intern(p.status?.phase) };
      if (ips && (ips.length !== 1 || ips[0]?.ip !== p.status?.podIP)) status.podIPs = ips.map((x) => ({ ip: x.ip }));
      // The service account: the identity its sidecar presents (outbound mTLS checks it; absent = `default`).
      const spec: Record<string, unknown> = {};
      if (p.spec?.serviceAccountName) spec.serviceAccountName = intern(p.spec.serviceAccountName);
      if (containers.length > 0) spec.containers = containers;
      return (Object.keys(spec).length > 0 ? { metadata: trimMeta(meta, false), spec, status } : { metadata: trimMeta(meta, false), status }) as unknown as Obj;
    }
    case 'namespace':
      return { metadata: trimMeta(meta, false) } as Obj;
    case 'resource': {
      const out = { apiVersion: obj.apiVersion, kind: obj.kind, metadata: trimMeta(meta, true), spec: (obj as { spec?: unknown }).spec ?? {} } as Obj;
      // Gateway API routes: creation time (precedence ties), generation (observedGeneration) and status (what the
      // status writer compares with) are part of their meaning.
      if (obj.apiVersion?.startsWith(`${GATEWAY_API}/`)) {
        const m = meta as { creationTimestamp?: unknown; generation?: unknown } | undefined;
        const om = out.metadata as Record<string, unknown>;
        if (m?.creationTimestamp !== undefined) om.creationTimestamp = m.creationTimestamp;
        if (m?.generation !== undefined) om.generation = m.generation;
        if ((obj as { status?: unknown }).status !== undefined) out.status = (obj as { status?: unknown }).status;
      }
      return out;
    }
  }
}

export function toResource(obj: Obj, spec: KindSpec, version: string): Resource {
  const meta = (obj.metadata ?? {}) as { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
  const metadata: Resource['metadata'] = { name: meta.name ?? '', namespace: meta.namespace ?? 'default' };
  if (meta.labels) metadata.labels = meta.labels;
  if (meta.annotations) metadata.annotations = meta.annotations;
  if (meta.resourceVersion) metadata.resourceVersion = meta.resourceVersion;
  const s = (obj as { spec?: unknown }).spec;
  const apiVersion = obj.apiVersion ?? `${spec.group}/${version}`;
  const specObj = s && typeof s === 'object' ? (s as Record<string, unknown>) : {};
  // The validator checks the document as a whole (apiVersion, kind, metadata, spec), as it does for files.
  const rawMeta: Record<string, unknown> = { name: metadata.name, namespace: metadata.namespace };
  if (metadata.labels) rawMeta.labels = metadata.labels;
  if (metadata.annotations) rawMeta.annotations = metadata.annotations;
  const m = obj.metadata as { creationTimestamp?: unknown; generation?: unknown } | undefined;
  if (m?.creationTimestamp !== undefined) rawMeta.creationTimestamp = m.creationTimestamp;
  if (m?.generation !== undefined) rawMeta.generation = m.generation;
  const raw: Record<string, unknown> = { apiVersion, kind: spec.kind, metadata: rawMeta, spec: specObj };
  if ((obj as { status?: unknown }).status !== undefined) raw.status = (obj as { status?: unknown }).status;
  return {
    apiVersion,
    kind: spec.kind,
    metadata,
    spec: specObj,
    raw,
    source: { file: 'kubernetes', line: 0 },
    lineOf: () => 0,
  };
}
