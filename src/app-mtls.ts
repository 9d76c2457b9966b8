/**
 * Mutual TLS wiring of `remora run`: the workload certificate followed across rotations (a new TLS context for new
 * connections each time, AuthorizationPolicy recompiled when the trust domains change), and PeerAuthentication on
 * what is already open — STRICT closes plaintext connections, and without a certificate STRICT is warned about.
 */
import type { Http1Server } from './http1/server.js';
import type { LazyHttp2Listener } from './http2/lazy.js';
import type { InboundAuthorizer } from './proxy/inbound-authz.js';
import type { TcpProxy } from './proxy/tcp-proxy.js';
import { MtlsContext, TlsStats, peerOf, type MtlsOptions } from './security/mtls.js';
import type { EffectivePeerAuthn } from './security/peer-authentication.js';
import type { WorkloadCert, WorkloadCertStore } from './security/workload-cert.js';
import type { Logger } from './util/logger.js';
import { pemCount } from './app-views.js';

/** The PeerAuthentication in force, as a comparable string. */
export function peerAuthnKey(pa: EffectivePeerAuthn): string {
  return `${pa.mode}|${[...pa.ports].map(([p, m]) => `${p}=${m}`).join(',')}`;
}

/**
 * PeerAuthentication changed: plaintext connections already open to a port that is STRICT now are closed once their
 * in-flight requests finish, as Envoy drains the filter chains it replaced — HTTP/1: Connection: close on the
 * current response (idle ones at once); HTTP/2: GOAWAY; L4: closed. Only with a certificate (else STRICT cannot be
 * enforced and is warned about).
 */
export function closePlaintextToStrict(
  authz: InboundAuthorizer,
  open: { h1: Http1Server | undefined; h2: LazyHttp2Listener | undefined; tcp: TcpProxy },
  logger: Logger,
): void {
  const strict = (port: number | undefined): boolean => authz.mtlsMode(port) === 'STRICT';
  let n = open.h1?.drainWhere((sock, dst) => peerOf(sock) === undefined && strict(dst?.port)) ?? 0;
  n += open.h2?.closeWhere((peer, dst) => peer === undefined && strict(dst?.port)) ?? 0;
  n += open.tcp.closeWhere((conn, dest) => dest.direction === 'inbound' && conn.peer === undefined && strict(conn.port));
  if (n > 0) logger.log('info', `PeerAuthentication STRICT: closing ${n} plaintext inbound connection(s) once their requests finish`);
}

/**
 * A STRICT PeerAuthentication applies but the sidecar has no certificate (no --cert-dir): it cannot be enforced. Warns
 * once per set of policies: `warned` is the key last warned about; returns the key now ('' when none is STRICT).
 */
export function warnUnenforcedMtls(pa: EffectivePeerAuthn, warned: string, logger: Logger): string {
  const strict = pa.mode === 'STRICT' || [...pa.ports.values()].includes('STRICT');
  const key = strict ? pa.policies.join(',') : '';
  if (key === warned) return key;
  if (strict) logger.log('warn', 'PeerAuthentication STRICT applies to this workload but remora run has no --cert-dir: mutual TLS is not enforced (plaintext is accepted)', { policies: pa.policies });
  return key;
}

/** Where the sidecar keeps the TLS context of the newest valid certificate. */
export interface CertificateWiring {
  trustDomainAliases: readonly string[];
  logger: Logger;
  authz: InboundAuthorizer;
  context(): MtlsContext | undefined;
  setContext(ctx: MtlsContext): void;
}

/**
 * `--cert-dir`: follow the workload certificate's rotations (the store is started by the caller). New mTLS connections
 * (both ways) use the newest valid one; open connections keep theirs. Returns Envoy's ssl.* counters by direction.
 */
export function followCertificates(store: WorkloadCertStore, w: CertificateWiring): { inbound: TlsStats; outbound: TlsStats } {
  // Envoy's ssl.* counters, kept across rotations (each rotation makes a new context).
  const tlsStats = { inbound: new TlsStats(), outbound: new TlsStats() };
  const mtlsOpts: MtlsOptions = {
    trustDomainAliases: w.trustDomainAliases,
    inboundStats: tlsStats.inbound,
    outboundStats: tlsStats.outbound,
    log: (level, msg, fields) => w.logger.log(level, msg, fields),
  };
  store.on('rotated', (c: WorkloadCert) => {
    const prev = w.context();
    const before = prev === undefined ? '' : [...prev.trustDomains].join();
    const ctx = new MtlsContext(c, mtlsOpts);
    w.setContext(ctx);
    // AuthorizationPolicy principals match across the trust domain and its aliases: recompiled when they change.
    if ([...ctx.trustDomains].join() !== before) w.authz.update({ trustDomains: [...ctx.trustDomains] });
    w.logger.log('info', 'workload certificate loaded', { identity: c.spiffeId, notAfter: c.notAfter.toISOString(), serial: c.serialNumber, bundle: pemCount(c.ca), crl: c.files.crl ?? null });
  });
  store.on('rejected', (err: string) => w.logger.log('warn', `workload certificate not taken: ${err}`));
  store.on('expired', () => w.logger.log('error', 'workload certificate expired: mTLS connections fail until a new one is written'));
  return tlsStats;
}
