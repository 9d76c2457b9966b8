/**
 * The admin API's views of a running sidecar: /config_dump, /server_info and /stats in text and JSON, built as plain
 * data from what the sidecar (src/app.ts) holds. No state of their own, no I/O.
 */
import type { ConfigStore } from './discovery/config-store.js';
import type { KubernetesSource } from './discovery/k8s-source.js';
import type { OriginalDstReader } from './net/original-dst.js';
import type { InboundAuthorizer } from './proxy/inbound-authz.js';
import type { RunOptions } from './run-options.js';
import type { MtlsContext } from './security/mtls.js';
import type { WorkloadCertStore } from './security/workload-cert.js';
import { VERSION } from './version.js';

/** The sidecar's listeners by name and bound port. */
type Ports = ReadonlyArray<{ name: string; port: number }>;

/** What /config_dump shows of the sidecar. */
export interface DumpSource {
  readonly opts: RunOptions;
  readonly store: ConfigStore;
  readonly servers: Ports;
  readonly originalDst: OriginalDstReader | undefined;
  readonly certs: WorkloadCertStore | undefined;
  readonly mtlsCtx: MtlsContext | undefined;
  readonly authz: InboundAuthorizer;
  readonly kube: KubernetesSource | undefined;
}

export function configDump(s: DumpSource): unknown {
  const snap = s.store.current;
  return {
    version: snap?.version ?? null,
    hash: snap?.hash ?? null,
    lastReloadTime: s.store.lastReloadAt ? new Date(s.store.lastReloadAt).toISOString() : null,
    reloads: s.store.reloads,
    reloadFailures: s.store.reloadFailures,
    // The last accepted build: ms to read + parse the files, validate, compile.
    lastBuildMs: s.store.lastBuild ?? null,
    lastError: s.store.lastError ? { time: new Date(s.store.lastError.at).toISOString(), errors: s.store.lastError.errors } : null,
    ports: Object.fromEntries(s.servers.map((l) => [l.name, l.port])),
    capture: { mode: s.opts.captureMode === true ? 'redirect' : 'none', originalDestination: s.originalDst?.kind ?? null, description: s.originalDst?.description ?? null, protocolDetectionTimeoutMs: s.opts.protocolDetectionTimeoutMs ?? 100 },
    certificates: s.certs === undefined ? null : {
      dir: s.certs.dir,
      identity: s.certs.current?.spiffeId ?? null,
      notBefore: s.certs.current?.notBefore.toISOString() ?? null,
      notAfter: s.certs.current?.notAfter.toISOString() ?? null,
      serialNumber: s.certs.current?.serialNumber ?? null,
      valid: s.certs.valid,
      rotations: s.certs.rotations,
      trustBundleCertificates: s.certs.current === undefined ? 0 : pemCount(s.certs.current.ca),
      crl: s.certs.current?.files.crl ?? null,
      trustDomains: s.mtlsCtx === undefined ? [] : [...s.mtlsCtx.trustDomains],
      lastError: s.certs.lastError ?? null,
      peerAuthentication: { mode: s.authz.peerAuthn.mode, ports: Object.fromEntries(s.authz.peerAuthn.ports), policies: s.authz.peerAuthn.policies },
    },
    kubernetes: s.kube ? { stalenessMs: s.kube.current().stalenessMs(Date.now()), syncedAt: new Date(s.kube.current().syncedAt).toISOString(), versions: s.kube.versions() } : null,
    warnings: snap?.warnings ?? [],
    resources: (snap?.resources ?? []).map((r) => ({
      apiVersion: r.apiVersion, kind: r.kind, metadata: r.metadata, spec: r.spec, source: r.source,
    })),
    clusters: snap ? [...snap.clusters.values()].map((c) => ({ name: c.name, resolution: c.resolution, lb: c.policy.lb.kind, endpoints: c.endpoints.map((e) => e.key) })) : [],
  };
}

export function serverInfo(s: { opts: RunOptions; servers: Ports; draining: boolean; ready: () => boolean; startedAt: number }): unknown {
  return {
    version: VERSION,
    state: s.draining ? 'DRAINING' : s.ready() ? 'LIVE' : 'PRE_INITIALIZING',
    uptime_current_epoch: `${Math.round((Date.now() - s.startedAt) / 1000)}s`,
    node: { id: `sidecar~${s.opts.workloadName}.${s.opts.namespace}`, metadata: { NAMESPACE: s.opts.namespace, LABELS: s.opts.labels } },
    command_line_options: s.opts,
    ports: Object.fromEntries(s.servers.map((l) => [l.name, l.port])),
  };
}

/** Envoy's /stats: the Prometheus exposition without its comment lines. */
export function statsText(prometheus: string): string {
  return prometheus.split('\n').filter((l) => l && !l.startsWith('#')).join('\n') + '\n';
}

/** /stats?format=json: each `name value` line of /stats as { name, value }. */
export function statsJson(stats: string): unknown {
  return { stats: stats.trim().split('\n').map((l) => { const i = l.lastIndexOf(' '); return { name: l.slice(0, i), value: Number(l.slice(i + 1)) }; }) };
}

/** How many certificates a PEM bundle holds (the roots of a trust bundle, for the log). */
export function pemCount(pem: string): number {
  return pem.split('-----BEGIN CERTIFICATE-----').length - 1;
}
