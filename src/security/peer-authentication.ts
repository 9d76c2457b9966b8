/**
 * Istio `security.istio.io` PeerAuthentication: the mTLS mode the inbound side of this workload requires, per port,
 * resolved as istiod does for a sidecar. Pure.
 *
 * - Candidates: policies in the root namespace without a selector (mesh-wide; a root-namespace policy with a
 *   selector is ignored, as Istio documents), policies in the workload's namespace without a selector (namespace-wide)
 *   and with a selector matching the workload's labels (workload-wide).
 * - At each level the oldest policy wins (creationTimestamp, then name), as istiod picks among conflicting ones.
 * - The mode is inherited downwards: mesh (default PERMISSIVE when none) ← namespace ← workload, where UNSET or an
 *   absent `mtls` inherits; `portLevelMtls` (only meaningful on a workload policy: Istio rejects it without a
 *   selector) overrides per port, UNSET inheriting the workload's mode.
 */
import { selectorMatches } from '../authz/label-selector.js';

export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/** Structural: a Remora `Resource` of kind PeerAuthentication fits. */
export interface PeerAuthenticationLike {
  metadata: { name?: string; namespace?: string; creationTimestamp?: string };
  spec?: Record<string, unknown>;
}

export interface PeerAuthnWorkload {
  namespace: string;
  labels: Readonly<Record<string, string>>;
  rootNamespace: string;
}

export interface EffectivePeerAuthn {
  /** The workload's mode (every port without its own). */
  mode: MtlsMode;
  /** Ports with a mode of their own (`portLevelMtls` of the workload policy). */
  ports: ReadonlyMap<number, MtlsMode>;
  /** `ns/name` of the mesh, namespace and workload policies that took part, widest first. */
  policies: readonly string[];
}

const MODES = new Set(['STRICT', 'PERMISSIVE', 'DISABLE', 'UNSET']);

function modeOf(v: unknown): MtlsMode | undefined {
  const m = typeof v === 'object' && v !== null ? (v as { mode?: unknown }).mode : undefined;
  return m === 'STRICT' || m === 'PERMISSIVE' || m === 'DISABLE' ? m : undefined; // UNSET / absent: inherit
}

function oldest(list: PeerAuthenticationLike[]): PeerAuthenticationLike | undefined {
  return [...list].sort((a, b) => {
    const ta = a.metadata.creationTimestamp ?? '';
    const tb = b.metadata.creationTimestamp ?? '';
    if (ta !== tb) return ta === '' ? 1 : tb === '' ? -1 : ta < tb ? -1 : 1;
    return (a.metadata.name ?? '') < (b.metadata.name ?? '') ? -1 : 1;
  })[0];
}

export function resolvePeerAuthentication(policies: readonly PeerAuthenticationLike[], w: PeerAuthnWorkload): EffectivePeerAuthn {
  const mesh: PeerAuthenticationLike[] = [];
  const ns: PeerAuthenticationLike[] = [];
  const workload: PeerAuthenticationLike[] = [];
  for (const p of policies) {
    const pns = p.metadata.namespace ?? '';
    const sel = (p.spec ?? {}).selector as { matchLabels?: Record<string, string> } | undefined | null;
    const hasSelector = sel !== undefined && sel !== null && Object.keys(sel.matchLabels ?? {}).length > 0;
    if (pns === w.namespace) {
      if (!hasSelector) ns.push(p);
      else if (selectorMatches({ matchLabels: sel!.matchLabels ?? {} }, w.labels)) workload.push(p);
    } else if (pns === w.rootNamespace && !hasSelector) {
      mesh.push(p);
    }
  }
  const picked = [oldest(mesh), oldest(ns), oldest(workload)];
  let mode: MtlsMode = 'PERMISSIVE';
  for (const p of picked) mode = modeOf(p?.spec?.mtls) ?? mode;
  const ports = new Map<number, MtlsMode>();
  const wp = picked[2];
  const plm = wp?.spec?.portLevelMtls;
  if (typeof plm === 'object' && plm !== null) {
    for (const [k, v] of Object.entries(plm as Record<string, unknown>)) {
      const port = Number(k);
      if (Number.isInteger(port) && port > 0 && port < 65536) ports.set(port, modeOf(v) ?? mode);
    }
  }
  return { mode, ports, policies: picked.filter((p): p is PeerAuthenticationLike => p !== undefined).map((p) => `${p.metadata.namespace ?? ''}/${p.metadata.name ?? ''}`) };
}

/** The mode for one inbound (app) port. */
export function mtlsModeForPort(eff: EffectivePeerAuthn, port: number): MtlsMode {
  return eff.ports.get(port) ?? eff.mode;
}

/** Istio's PeerAuthentication validation, as `[field path, message]` pairs. */
export function validatePeerAuthenticationSpec(spec: Record<string, unknown>): Array<[ReadonlyArray<string | number>, string]> {
  const out: Array<[ReadonlyArray<string | number>, string]> = [];
  const mtls = spec.mtls;
  if (mtls !== undefined && mtls !== null) {
    const m = (mtls as { mode?: unknown }).mode;
    if (typeof mtls !== 'object' || (m !== undefined && !MODES.has(String(m)))) out.push([['spec', 'mtls', 'mode'], `"${String(m)}" is not UNSET, DISABLE, PERMISSIVE or STRICT`]);
  }
  const sel = spec.selector as { matchLabels?: unknown } | undefined | null;
  const hasSelector = sel !== undefined && sel !== null && typeof sel.matchLabels === 'object' && sel.matchLabels !== null && Object.keys(sel.matchLabels).length > 0;
  const plm = spec.portLevelMtls;
  if (plm !== undefined && plm !== null) {
    if (typeof plm !== 'object' || Array.isArray(plm)) {
      out.push([['spec', 'portLevelMtls'], 'must be a mapping of port numbers to {mode}']);
    } else {
      if (!hasSelector) out.push([['spec', 'portLevelMtls'], 'portLevelMtls requires a workload selector']);
      for (const [k, v] of Object.entries(plm as Record<string, unknown>)) {
        const port = Number(k);
        if (!/^\d+$/.test(k) || port < 1 || port > 65535) out.push([['spec', 'portLevelMtls', k], `"${k}" is not a port number`]);
        const m = typeof v === 'object' && v !== null ? (v as { mode?: unknown }).mode : undefined;
        if (m !== undefined && !MODES.has(String(m))) out.push([['spec', 'portLevelMtls', k, 'mode'], `"${String(m)}" is not UNSET, DISABLE, PERMISSIVE or STRICT`]);
      }
    }
  }
  return out;
}
