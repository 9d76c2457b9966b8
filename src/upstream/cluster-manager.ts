/**
 * Owns the live side of clusters across snapshot swaps: one ClusterRuntime per cluster name (LB,
 * outlier, limits) and one keep-alive H1Pool per endpoint and connection settings.
 * On a swap, runtimes are updated in place, new ones created, removed ones dropped; pools no longer
 * referenced are closed gracefully (in-flight requests finish first) in small batches, never recursively.
 */
import { H1Pool, type H1PoolOptions, type UpstreamPool } from './h1-pool.js';
import { makeH2Pool } from '../http2/lazy.js';
import type { ClusterDef, ClusterRuntime, Endpoint, PoolLimits } from '../model.js';
import type tls from 'node:tls';
import { tls as loadTls } from '../util/lazy-tls.js';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { originationOptions, refusedConnection, watchOrigination, type MtlsContext } from '../security/mtls.js';
import { serverIdentities } from '../security/spiffe.js';
import { sanEntries } from '../security/spiffe.js';
import { credentialDir } from '../security/credential-name.js';
import type { Snapshot } from '../config/snapshot.js';
import { createClusterRuntime } from './cluster-runtime.js';
import { compileClusterPolicy, upstreamIsHttp2 } from './policy.js';

const MAX_U32 = 4294967295;

export interface PoolDefaults {
  /** Upper bound of idle keep-alive time (ms). The pool lowers it further from a server's `Keep-Alive: timeout=` hint. */
  keepAliveMs: number;
  /** Time to wait for response headers when no route timeout applies (ms). */
  headersTimeoutMs: number;
}

export class ClusterManager {
  private runtimes = new Map<string, ClusterRuntime>();
  private pools = new Map<string, UpstreamPool>();
  /** The cluster def each TLS pool (key in `pools`) was made for: its connections carry that def's identities and SNI. */
  private tlsOwner = new Map<string, ClusterDef>();
  /** Passthrough/ NONE clusters created on demand, keyed by host:port (bounded). */
  private dynamic = new Map<string, ClusterRuntime>();
  /** Clusters that do not come from config (inbound app ports): never dropped on a swap. */
  private pinned = new Map<string, ClusterRuntime>();

  constructor(private readonly rand: () => number, private readonly now: () => number, private readonly poolDefaults: PoolDefaults) {}

  /** The workload certificate's TLS material, when the sidecar has one (`--cert-dir`): mTLS to other sidecars. */
  mtls: (() => MtlsContext | undefined) | undefined;

  /**
   * Whether a connection to `ep` of `def` is Istio mTLS: DestinationRule `tls.mode: ISTIO_MUTUAL`, or, when the
   * DestinationRule sets no TLS, Istio's auto mTLS to an endpoint labelled `security.istio.io/tlsMode: istio` (an
   * injected pod). Needs a workload certificate; without one (or with `DISABLE`) the connection is plaintext.
   */
  originatesMtls(def: ClusterDef, ep: Endpoint): boolean {
    if (this.mtls === undefined) return false;
    const p = def.policy;
    return p.tlsMode === 'ISTIO_MUTUAL' || (p.tlsAuto === true && ep.labels['security.istio.io/tlsMode'] === 'istio');
  }

  /**
   * DestinationRule `credentialName` for SIMPLE/MUTUAL: a directory of this name here holding tls.crt, tls.key, ca.crt
   * (the CLI's REMORA_CREDENTIALS_DIR when set).
   */
  credentialsDir = '/etc/remora/credentials';

  /**
   * Whether connections to `ep` of `def` are TLS: Istio mTLS (originatesMtls), or DestinationRule `SIMPLE` / `MUTUAL`
   * to an external service. The cluster is then the key of its own pools.
   */
  upstreamTls(def: ClusterDef, ep: Endpoint): boolean {
    const mode = def.policy.tlsMode;
    return mode === 'SIMPLE' || mode === 'MUTUAL' || this.originatesMtls(def, ep);
  }

  /** The connector of a TLS cluster (see upstreamTls) for `protocol`, to endpoint `ep`. */
  private connectorFor(def: ClusterDef, protocol: 'http/1.1' | 'h2' | 'tcp', ep: Endpoint): (host: string, port: number) => net.Socket {
    const p = def.policy;
    if (p.tlsMode === 'SIMPLE' || p.tlsMode === 'MUTUAL') return this.externalTlsConnect(def, protocol);
    return this.mtlsConnect(def, ep, protocol);
  }

  /**
   * TLS origination to an external service (DestinationRule `SIMPLE`, or `MUTUAL` with a client certificate): the
   * server verified against `caCertificates` (else the system's roots) and `caCrl` unless `insecureSkipVerify`, its
   * name against `subjectAltNames` (any of them, DNS or URI SAN) or else the SNI / host; ALPN for the protocol.
   * `credentialName` is a Secret's name: its directory under the credentials directory (tls.crt, tls.key, ca.crt,
   * ca.crl as Istio's Secret keys), never a path. Files are read when the pool is made (a changed DestinationRule
   * makes a new one).
   */
  private externalTlsConnect(def: ClusterDef, protocol: 'http/1.1' | 'h2' | 'tcp'): (host: string, port: number) => net.Socket {
    const p = def.policy;
    const f = p.tlsFiles ?? {};
    const read = (file: string | undefined): Buffer | undefined => (file === undefined ? undefined : readFileSync(file));
    let opts: tls.ConnectionOptions;
    try {
      const cred = f.credentialName !== undefined ? credentialDir(this.credentialsDir, f.credentialName) : undefined;
      const ca = cred !== undefined ? readOptional(join(cred, 'ca.crt')) : read(f.caCertificates);
      const crl = cred !== undefined ? readOptional(join(cred, 'ca.crl')) : read(f.caCrl);
      const cert = p.tlsMode === 'MUTUAL' ? (cred !== undefined ? readFileSync(join(cred, 'tls.crt')) : read(f.clientCertificate)) : undefined;
      const key = p.tlsMode === 'MUTUAL' ? (cred !== undefined ? readFileSync(join(cred, 'tls.key')) : read(f.privateKey)) : undefined;
      const sans = p.subjectAltNames ?? [];
      opts = {
        ...(ca !== undefined ? { ca } : {}),
        ...(crl !== undefined ? { crl } : {}),
        ...(cert !== undefined ? { cert } : {}),
        ...(key !== undefined ? { key } : {}),
        rejectUnauthorized: f.insecureSkipVerify !== true,
        ...(protocol !== 'tcp' ? { ALPNProtocols: [protocol] } : {}),
        ...(sans.length > 0 ? { checkServerIdentity: (_h: string, c: tls.PeerCertificate) => (sans.some((n) => [...sanEntries(c.subjectaltname, 'DNS'), ...sanEntries(c.subjectaltname, 'URI')].includes(n)) ? undefined : new Error(`server certificate names none of ${sans.join(', ')}`)) } : {}),
      };
    } catch (e) {
      const err = (e as Error).message;
      return () => { throw new Error(`TLS files of ${def.name}: ${err}`); };
    }
    const servername = p.sni ?? (net.isIP(def.host) === 0 ? def.host : undefined);
    return (host, port) => {
      const sock = loadTls().connect({ host, port, ...opts, ...(servername !== undefined ? { servername } : {}) });
      sock.setNoDelay(true);
      return sock;
    };
  }

  /**
   * A connector that opens Istio mTLS to `ep` of `def`: ALPN for `protocol`, the server's chain verified against the
   * trust bundle and its SPIFFE identity checked against the ones it may present (serverIdentities). With none known
   * the connection is refused (UF), never opened to "any identity of the trust domain".
   */
  private mtlsConnect(def: ClusterDef, ep: Endpoint, protocol: 'http/1.1' | 'h2' | 'tcp'): (host: string, port: number) => net.Socket {
    const p = def.policy;
    return (host, port) => {
      const ctx = this.mtls?.();
      // The certificate went away (expired, unreadable): no plaintext fallback, the connection fails (UF).
      if (ctx === undefined) throw new Error('no workload certificate for mTLS');
      const expected = serverIdentities(p.subjectAltNames, def.serviceSubjectAltNames, ep.identity, ctx.own.trustDomain, ctx.trustDomains);
      if (expected.length === 0) {
        ctx.outboundStats.failures.fail_verify_san++;
        return refusedConnection(`no identity is known for the server of ${def.name} at ${ep.key} (set DestinationRule subjectAltNames, ServiceEntry subjectAltNames or the endpoint's serviceAccount)`);
      }
      const sock = loadTls().connect({ host, port, ...originationOptions(ctx, protocol, expected, p.sni) });
      watchOrigination(sock, ctx.outboundStats);
      sock.setNoDelay(true);
      return sock;
    };
  }

  /** The TCP proxy's connector for one connection to `ep` of `def`, or undefined for plaintext. */
  tcpConnector(def: ClusterDef, ep: Endpoint): ((host: string, port: number) => net.Socket) | undefined {
    return this.upstreamTls(def, ep) ? this.connectorFor(def, 'tcp', ep) : undefined;
  }

  runtime(def: ClusterDef): ClusterRuntime {
    let rt = this.runtimes.get(def.name);
    if (rt === undefined) {
      rt = createClusterRuntime(def, this.rand, this.now());
      this.runtimes.set(def.name, rt);
    } else if (rt.def !== def) {
      rt.update(def);
    }
    return rt;
  }

  /** A cluster owned by the process rather than the config (e.g. `inbound|9080||`). */
  pin(def: ClusterDef): ClusterRuntime {
    const rt = createClusterRuntime(def, this.rand, this.now());
    // By name and endpoints: `inbound|9080||` has one runtime per address the app is reached at (as Envoy's
    // ORIGINAL_DST inbound cluster: 127.0.0.1 in explicit mode, the pod's IPv4 and IPv6 addresses when captured).
    this.pinned.set(`${def.name}|${def.endpoints.map((e) => e.key).join(',')}`, rt);
    return rt;
  }

  /** A one-endpoint cluster for traffic to a host:port outside the registry (ALLOW_ANY, resolution NONE). */
  passthrough(host: string, port: number, base?: ClusterDef): ClusterRuntime {
    const key = `${base?.name ?? 'PassthroughCluster'}|${host}:${port}`;
    let rt = this.dynamic.get(key);
    if (rt === undefined) {
      if (this.dynamic.size >= 1024) this.evictDynamic();
      const ep: Endpoint = { key: `${host}:${port}`, address: host, port, labels: {}, weight: 1 };
      const def: ClusterDef = {
        name: base?.name ?? 'PassthroughCluster',
        host: base?.host ?? host,
        port,
        subset: base?.subset ?? '',
        policy: base?.policy ?? compileClusterPolicy({}, port),
        endpoints: [ep],
        resolution: 'PASSTHROUGH',
        protocol: base?.protocol ?? '',
      };
      rt = createClusterRuntime(def, this.rand, this.now());
      this.dynamic.set(key, rt);
    }
    return rt;
  }

  private evictDynamic(): void {
    // Drop the oldest half; their pools close when unused.
    let n = this.dynamic.size >> 1;
    for (const k of this.dynamic.keys()) { if (n-- <= 0) break; this.dynamic.delete(k); }
  }

  /** The HTTP/2 pool of an endpoint (see upstreamIsHttp2): streams on shared connections, one per request. */
  h2pool(ep: Endpoint, limits: PoolLimits, mtlsOf?: ClusterDef): UpstreamPool {
    // mTLS pools are the cluster's own (its subjectAltNames and SNI are part of the connection), plaintext ones are
    // shared by the clusters with the same limits.
    let byEp = mtlsOf === undefined ? this.h2Cache.get(limits) : this.h2MtlsCache.get(mtlsOf);
    if (byEp === undefined) {
      byEp = new Map();
      if (mtlsOf === undefined) this.h2Cache.set(limits, byEp); else this.h2MtlsCache.set(mtlsOf, byEp);
    }
    const cached = byEp.get(ep.key);
    if (cached !== undefined && !cached.closed) return cached;
    const key = `${poolKey(ep, limits)}|h2${mtlsOf === undefined ? '' : tlsPoolKey(mtlsOf, ep)}`;
    let p = this.pools.get(key);
    if (p === undefined) {
      const o = this.poolOptions(limits);
      // The HTTP/2 codec is imported on first use (src/http2/lazy.ts).
      p = makeH2Pool(ep.address, ep.port, {
        maxConnections: o.maxConnections, connectTimeoutMs: o.connectTimeoutMs, keepAliveMs: o.keepAliveMs,
        maxRequestsPerConnection: o.maxRequestsPerConnection, maxConnectionDurationMs: o.maxConnectionDurationMs, tcpKeepaliveMs: o.tcpKeepaliveMs,
        ...(limits.maxConcurrentStreams !== undefined ? { maxConcurrentStreams: limits.maxConcurrentStreams } : {}),
        ...(limits.h2PingIntervalMs !== undefined ? { pingIntervalMs: limits.h2PingIntervalMs, pingTimeoutMs: limits.h2PingTimeoutMs ?? 0 } : {}),
        ...(mtlsOf !== undefined ? { connect: this.connectorFor(mtlsOf, 'h2', ep) } : {}),
      });
      this.pools.set(key, p);
      if (mtlsOf !== undefined) this.tlsOwner.set(key, mtlsOf);
    }
    byEp.set(ep.key, p);
    return p;
  }
  private h2Cache = new WeakMap<PoolLimits, Map<string, UpstreamPool>>();
  private h2MtlsCache = new WeakMap<ClusterDef, Map<string, UpstreamPool>>();

  /**
   * The pool a request to `ep` of cluster `def` goes through: HTTP/2 by the port's protocol, h2UpgradePolicy or the
   * client's own protocol (`clientH2`), HTTP/1.1 for an upgrade; TLS (Istio mTLS, SIMPLE/MUTUAL) in the cluster's own
   * pools. One rule for the forwarder's attempts and for shadow requests.
   */
  httpPool(def: ClusterDef, ep: Endpoint, clientH2: boolean, upgrade: boolean): UpstreamPool {
    const limits = def.policy.pool;
    const mtlsOf = (def.policy.tlsMode !== 'DISABLE' || this.mtls !== undefined) && this.upstreamTls(def, ep) ? def : undefined;
    return !upgrade && upstreamIsHttp2(def.protocol, limits, clientH2) ? this.h2pool(ep, limits, mtlsOf) : this.pool(ep, limits, mtlsOf);
  }

  /** The HTTP/1 pool of an endpoint; `mtlsOf` (the cluster) when its connections are Istio mTLS (originatesMtls). */
  pool(ep: Endpoint, limits: PoolLimits, mtlsOf?: ClusterDef): H1Pool {
    // Hot path: a cluster's PoolLimits object is stable for a snapshot, so look the pool up by that object and the
    // endpoint key first, without building the full key string on every request.
    let byEp = mtlsOf === undefined ? this.poolCache.get(limits) : this.poolMtlsCache.get(mtlsOf);
    if (byEp === undefined) {
      byEp = new Map();
      if (mtlsOf === undefined) this.poolCache.set(limits, byEp); else this.poolMtlsCache.set(mtlsOf, byEp);
    }
    const cached = byEp.get(ep.key);
    if (cached !== undefined && !cached.closed) return cached;
    const key = mtlsOf === undefined ? poolKey(ep, limits) : `${poolKey(ep, limits)}${tlsPoolKey(mtlsOf, ep)}`;
    let p = this.pools.get(key) as H1Pool | undefined;
    if (p === undefined) {
      const o = this.poolOptions(limits);
      if (mtlsOf !== undefined) o.connect = this.connectorFor(mtlsOf, 'http/1.1', ep);
      p = new H1Pool(ep.address, ep.port, o);
      this.pools.set(key, p);
      if (mtlsOf !== undefined) this.tlsOwner.set(key, mtlsOf);
    }
    byEp.set(ep.key, p);
    return p;
  }
  private poolCache = new WeakMap<PoolLimits, Map<string, H1Pool>>();
  private poolMtlsCache = new WeakMap<ClusterDef, Map<string, H1Pool>>();

  private poolOptions(limits: PoolLimits): H1PoolOptions {
    const keepAlive = Math.min(this.poolDefaults.keepAliveMs, limits.httpIdleTimeoutMs || this.poolDefaults.keepAliveMs);
    return {
      maxConnections: limits.maxConnections >= MAX_U32 ? Infinity : limits.maxConnections,
      connectTimeoutMs: limits.connectTimeoutMs,
      keepAliveMs: keepAlive,
      // Subtracted from a server's Keep-Alive hint so we close before the server does (the 503 UC race).
      keepAliveThresholdMs: 1000,
      maxRequestsPerConnection: limits.maxRequestsPerConnection > 0 ? limits.maxRequestsPerConnection : 0,
      maxConnectionDurationMs: limits.maxConnectionDurationMs,
      tcpKeepaliveMs: limits.tcpKeepalive?.timeMs ?? 0,
    };
  }

  /**
   * After a swap: refresh runtimes, forget removed clusters, close pools nobody references. Reads the snapshot's
   * clusters in use (those with a runtime) only: the snapshot builds its clusters on first use (ClusterTable), and
   * pools are only ever made for a runtime's def.
   */
  onSnapshot(snap: Snapshot): void {
    for (const [name, rt] of [...this.runtimes]) {
      const def = snap.clusters.get(name);
      if (def === undefined) this.runtimes.delete(name);
      else if (rt.def !== def) rt.update(def);
    }
    if (this.pools.size === 0) return;
    this.closeUnused(this.pools.keys(), this.runtimeDefs());
  }

  /**
   * After a swap that changed only the clusters `names` (added, changed or removed: compile-delta.ts): what onSnapshot
   * does, for those clusters alone. Runtimes of changed clusters take their new def, of removed ones are dropped; the
   * pools of their old defs' endpoints, and the TLS pools of their old defs, close unless a live cluster still uses
   * them. Work in proportion to the change and to the clusters in use (runtimes, pools), never to the mesh. The old
   * defs are the runtimes' own (a cluster without a runtime has no pools): `_prev` is not read, so that the previous
   * snapshot's clusters are not built for this.
   */
  onClustersChanged(snap: Snapshot, names: ReadonlySet<string>, _prev?: ReadonlyMap<string, ClusterDef>): void {
    const candidates = new Set<string>();
    const replaced = new Set<ClusterDef>();
    for (const name of names) {
      const rt = this.runtimes.get(name);
      if (rt === undefined) continue;
      const old = rt.def;
      const def = snap.clusters.get(name);
      if (old === def) continue;
      replaced.add(old);
      for (const ep of old.endpoints) { const k = poolKey(ep, old.policy.pool); candidates.add(k); candidates.add(`${k}|h2`); }
      if (def === undefined) this.runtimes.delete(name);
      else rt.update(def);
    }
    if (replaced.size === 0 || this.pools.size === 0) return;
    // A TLS pool belongs to the def it was made for (tlsPoolKey): a replaced def's pools are candidates too.
    for (const [k, owner] of this.tlsOwner) if (replaced.has(owner)) candidates.add(k);
    this.closeUnused(candidates, this.runtimeDefs());
  }

  private runtimeDefs(): ClusterDef[] {
    const out: ClusterDef[] = [];
    for (const rt of this.runtimes.values()) out.push(rt.def);
    return out;
  }

  /**
   * The one "pools no longer used" step of onSnapshot and onClustersChanged: of the pools named by `candidates`, close
   * (in batches) those that no live cluster uses. Live clusters are `live` (the runtimes' defs) and the dynamic and
   * pinned runtimes' defs. A plaintext pool is used when a live def has its endpoint with its limits;
   * a TLS pool (mTLS, SIMPLE, MUTUAL) when the def it was made for is live.
   */
  private closeUnused(candidates: Iterable<string>, live: Iterable<ClusterDef>): void {
    const usedKeys = new Set<string>();
    const usedDefs = new Set<ClusterDef>();
    const use = (def: ClusterDef): void => {
      usedDefs.add(def);
      for (const ep of def.endpoints) { const k = poolKey(ep, def.policy.pool); usedKeys.add(k); usedKeys.add(`${k}|h2`); }
    };
    for (const def of live) use(def);
    for (const m of [this.dynamic, this.pinned]) for (const rt of m.values()) use(rt.def);
    const dead: UpstreamPool[] = [];
    for (const k of [...candidates]) {
      const p = this.pools.get(k);
      if (p === undefined) continue;
      const owner = this.tlsOwner.get(k);
      if (owner !== undefined ? usedDefs.has(owner) : usedKeys.has(k)) continue;
      this.pools.delete(k);
      this.tlsOwner.delete(k);
      dead.push(p);
    }
    closeInBatches(dead);
  }

  clusters(): ClusterRuntime[] {
    return [...this.pinned.values(), ...this.runtimes.values(), ...this.dynamic.values()];
  }

  poolCount(): number {
    return this.pools.size;
  }

  /**
   * Upstream connections of every pool: `active` carry a request (HTTP/2: every open connection), `idle` wait for
   * one, `queued` requests wait for a connection. Read at scrape time (remora_upstream_connections); a test of client
   * aborts checks that both return to their baseline.
   */
  connectionStats(): { active: number; idle: number; queued: number } {
    let active = 0;
    let idle = 0;
    let queued = 0;
    for (const p of this.pools.values()) {
      if (p instanceof H1Pool) {
        idle += p.idleConnections;
        active += p.connections - p.idleConnections;
        queued += p.queued;
      } else {
        active += p.connections;
      }
    }
    return { active, idle, queued };
  }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    this.tlsOwner.clear();
    await Promise.allSettled(all.map((p) => p.close()));
  }

  async destroy(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    this.tlsOwner.clear();
    await Promise.allSettled(all.map((p) => p.destroy()));
  }
}

/** What a TLS pool's connections depend on beyond the endpoint: the cluster, the identities it accepts, its SNI. */
function tlsPoolKey(def: ClusterDef, ep: Endpoint): string {
  const id = ep.identity === undefined ? '' : `${ep.identity.namespace}/${ep.identity.serviceAccount}`;
  return `|mtls|${def.name}|${(def.policy.subjectAltNames ?? []).join(',')}|${(def.serviceSubjectAltNames ?? []).join(',')}|${id}|${def.policy.sni ?? ''}`;
}

function poolKey(ep: Endpoint, l: PoolLimits): string {
  return `${ep.key}|${l.maxConnections}|${l.connectTimeoutMs}|${l.maxRequestsPerConnection}|${l.httpIdleTimeoutMs}|${l.maxConnectionDurationMs}`;
}

/** Close removed pools a few at a time from the event loop (CVE-2022-23606: no deep recursion on mass removal). */
function closeInBatches(pools: UpstreamPool[]): void {
  if (pools.length === 0) return;
  const batch = pools.splice(0, 64);
  for (const p of batch) p.close().catch(() => { /* already closed */ });
  if (pools.length > 0) setImmediate(closeInBatches, pools);
}

/** A file that may be absent (a credential without a CA: the system roots then). */
function readOptional(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}
