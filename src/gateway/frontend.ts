/**
 * Which registry host a captured request is for, when Gateway API routes are in the config (GEP-1294 "frontend"):
 * a route bound to a Service applies to calls to its ClusterIP whatever the Host header says, and never to calls to
 * one of its endpoints (a pod IP). Pure; the snapshot's mesh part is built by compile.
 */
import type { HostEntry } from '../config/snapshot.js';
import type { CapturedDestination } from '../routing/l4-destination.js';
import type { L4Routes } from '../routing/l4-route.js';

export interface MeshSnapshot {
  /** Hosts whose HTTP routes come from Gateway API routes → the same host with Istio's default route (built on first use). */
  readonly plain: { has(host: string): boolean; get(host: string): HostEntry | undefined };
  /** TCPRoute/TLSRoute routes of the hosts they bind. */
  readonly l4: ReadonlyMap<string, L4Routes>;
}

/**
 * The entry for a captured request: `named` is what the Host header resolved to. Addressed to a ClusterIP (VIP),
 * the ClusterIP's service wins over a Host naming another service whenever either is bound by Gateway API routes
 * (MeshClusterIPMatching); without routes on either, Istio's Host-header routing stays. Addressed to an endpoint, a
 * route-bound service is reached through its plain default route (the Service backend carries no routes).
 */
export function frontendEntry(mesh: MeshSnapshot, named: HostEntry | undefined, captured: CapturedDestination): HostEntry | undefined {
  const dialled = captured.entry;
  if (captured.via === 'vip') {
    if (named !== undefined && dialled !== undefined && named !== dialled && (mesh.plain.has(named.host) || mesh.plain.has(dialled.host))) return dialled;
    return named ?? dialled;
  }
  const e = named ?? dialled;
  if (captured.via === 'endpoint' && e !== undefined) return mesh.plain.get(e.host) ?? e;
  return e;
}
