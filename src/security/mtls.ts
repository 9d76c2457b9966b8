/**
 * Mutual TLS between sidecars, as Istio does it: the client sidecar originates TLS with its workload certificate and
 * an ALPN of Istio's (`istio-http/1.1`, `istio-h2`, `istio` for TCP) and checks that the server's SPIFFE identity is
 * one it expects; the server sidecar terminates TLS for connections whose ClientHello offers an `istio*` ALPN (an
 * app's own TLS, with other ALPNs, passes through untouched), verifies the client's chain against the trust bundle
 * (validity, key usages, CRL) and its identity against the trust domain and its aliases, and hands the decrypted
 * socket to the HTTP or TCP path with the peer's identity attached. A peer that fails is refused before a byte of it
 * is read, and counted with Envoy's `ssl.*` names.
 */
import type tls from 'node:tls';
import { tls as loadTls } from '../util/lazy-tls.js';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { certIdentity, parseSpiffeId, principalOf, spiffeUri, type SpiffeId } from './spiffe.js';
import type { WorkloadIdentity } from '../model.js';
import type { WorkloadCert } from './workload-cert.js';

/** ALPN values Istio's sidecars offer for mTLS; the inbound side terminates a connection offering any of them. */
export const ISTIO_ALPN = ['istio-peer-exchange', 'istio', 'istio-http/1.0', 'istio-http/1.1', 'istio-h2'] as const;

export function offersIstioAlpn(alpn: readonly string[] | undefined): boolean {
  return alpn !== undefined && alpn.some((a) => a === 'istio' || a.startsWith('istio-'));
}

/** The verified peer of an mTLS connection. */
export interface PeerIdentity {
  id: SpiffeId;
  spiffeId: string;
  /** `td/ns/x/sa/y` (AuthorizationPolicy principals). */
  principal: string;
  /** The peer's namespace (from its identity). */
  namespace: string;
  /** SHA-256 of the peer certificate (DER), hex: XFCC's Hash. */
  certHash: string;
}

const peers = new WeakMap<net.Socket, PeerIdentity>();

/** The verified identity of the peer on this (decrypted) socket, if it came over mTLS. */
export function peerOf(sock: net.Socket | undefined): PeerIdentity | undefined {
  return sock === undefined ? undefined : peers.get(sock);
}

/** Why a peer certificate was refused, by Envoy's stat names (`ssl.fail_verify_*`). */
export type VerifyFailure = 'fail_verify_error' | 'fail_verify_san' | 'fail_verify_no_cert';

/**
 * Envoy's `ssl.*` counters for one direction, kept across certificate rotations: handshakes that completed,
 * handshakes that failed for another reason (`connection_error`: a timeout, a protocol error, a close), and peers
 * refused by verification.
 */
export class TlsStats {
  handshakes = 0;
  connectionErrors = 0;
  readonly failures: Record<VerifyFailure, number> = { fail_verify_error: 0, fail_verify_san: 0, fail_verify_no_cert: 0 };
}

export interface MtlsOptions {
  /** Istio meshConfig `trustDomainAliases`: other trust domains whose identities are this mesh's (a migration). */
  trustDomainAliases?: readonly string[];
  /** Counters for the inbound (terminated) and outbound (originated) side. */
  inboundStats?: TlsStats;
  outboundStats?: TlsStats;
  /** A debug line for each refused peer. */
  log?: (level: 'debug', msg: string, fields: Record<string, unknown>) => void;
}

/** The TLS material of the current workload certificate, made once per rotation. */
export class MtlsContext {
  /** One context for both directions: the same key, chain, trust bundle and CRL terminate and originate. */
  readonly server: tls.SecureContext;
  readonly client: tls.SecureContext;
  readonly own: SpiffeId;
  readonly ownUri: string;
  /** Our trust domain and its aliases: a peer's identity must be in one of them. */
  readonly trustDomains: ReadonlySet<string>;
  readonly inboundStats: TlsStats;
  readonly outboundStats: TlsStats;
  readonly log: MtlsOptions['log'];
  constructor(readonly cert: WorkloadCert, opts: MtlsOptions = {}) {
    this.server = loadTls().createSecureContext({ key: cert.key, cert: cert.cert, ca: cert.ca, ...(cert.crl !== undefined ? { crl: cert.crl } : {}), minVersion: 'TLSv1.2' });
    this.client = this.server;
    this.own = cert.identity;
    this.ownUri = cert.spiffeId;
    this.trustDomains = new Set([cert.identity.trustDomain, ...(opts.trustDomainAliases ?? [])]);
    this.inboundStats = opts.inboundStats ?? new TlsStats();
    this.outboundStats = opts.outboundStats ?? new TlsStats();
    this.log = opts.log;
  }
}

export type TerminateResult =
  | { ok: true; socket: tls.TLSSocket; peer: PeerIdentity; alpn: string }
  | { ok: false; error: string; reason: VerifyFailure | 'connection_error' };

function ignore(): void { /* the connection is being refused: its late errors mean nothing */ }

/** The server side's protocols: the first of this list the client also offers is chosen. */
const SERVER_ALPN = ['istio-h2', 'istio-http/1.1', 'istio-http/1.0', 'istio', 'istio-peer-exchange'];

/**
 * OpenSSL's verdict on the peer chain of a server-side TLSSocket, as tls.Server reads it (its onServerSocketSecure):
 * null when the chain verified against the context's trust bundle (and CRLs) for client use at the current time.
 * Node verifies during the handshake but accepts whatever the result; only tls.Server acts on it, and a TLSSocket
 * made around an already-read ClientHello has no tls.Server. Without the method (a Node that changed it) the
 * answer is a failure: never an unverified peer.
 */
function chainVerdict(t: tls.TLSSocket): { code: string; message: string } | null {
  const handle = (t as unknown as { _handle?: { verifyError?: () => (Error & { code?: string }) | null } })._handle;
  if (typeof handle?.verifyError !== 'function') return { code: 'NO_VERIFIER', message: 'this Node cannot report the certificate verification result' };
  const e = handle.verifyError();
  return e === null || e === undefined ? null : { code: e.code ?? 'UNSPECIFIED', message: e.message };
}

/**
 * Terminate mTLS on an accepted socket whose first bytes (`head`, a ClientHello) were already read. The client must
 * present a certificate that chains to our trust bundle, is within its validity, may be used by a client (extended
 * key usage), is not revoked by a CRL of the bundle, and carries one SPIFFE identity of our trust domain or an alias.
 * Anything else is refused before any of its data is read: no certificate fails the handshake itself (an alert),
 * a certificate that fails verification gets a reset right after it, counted (`ctx.inboundStats`) and logged at
 * debug. `timeoutMs` bounds the handshake.
 */
export function terminateMtls(sock: net.Socket, head: Buffer | undefined, ctx: MtlsContext, timeoutMs = 10_000): Promise<TerminateResult> {
  return new Promise((resolve) => {
    sock.pause();
    if (head !== undefined && head.length > 0) sock.unshift(head);
    const stats = ctx.inboundStats;
    const t = new (loadTls().TLSSocket)(sock, {
      isServer: true,
      secureContext: ctx.server,
      requestCert: true,
      // A client without a certificate fails inside the handshake (SSL_VERIFY_FAIL_IF_NO_PEER_CERT); the chain of a
      // client that has one is judged below.
      rejectUnauthorized: true,
      ALPNProtocols: SERVER_ALPN,
    });
    let done = false;
    const finish = (r: TerminateResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!r.ok) {
        if (r.reason === 'connection_error') stats.connectionErrors++;
        else stats.failures[r.reason]++;
        ctx.log?.('debug', `mTLS peer refused: ${r.error}`, { reason: `ssl.${r.reason}`, peer: `${sock.remoteAddress ?? ''}:${sock.remotePort ?? 0}` });
        // A verified handshake's refusal is a reset (the client sees ECONNRESET, not a clean end of stream).
        t.on('error', ignore);
        if (r.reason === 'connection_error' || r.reason === 'fail_verify_no_cert') t.destroy();
        else sock.resetAndDestroy();
      }
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, error: 'mTLS handshake timeout', reason: 'connection_error' }), timeoutMs);
    t.once('error', (e: NodeJS.ErrnoException) => finish({
      ok: false,
      error: e.message,
      reason: e.code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE' ? 'fail_verify_no_cert' : 'connection_error',
    }));
    t.once('close', () => finish({ ok: false, error: 'closed during the mTLS handshake', reason: 'connection_error' }));
    t.once('secure', () => {
      // tls.Server clears this once the handshake is done; a TLSSocket made without one keeps it set, and node:http2
      // would then wait for a 'secureConnect' a server socket never emits (or read into a session not set up yet).
      (t as tls.TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
      const cert = t.getPeerX509Certificate();
      if (cert === undefined) return finish({ ok: false, error: 'no client certificate', reason: 'fail_verify_no_cert' });
      const verdict = chainVerdict(t);
      const claimed = cert.subjectAltName ?? '';
      if (verdict !== null) return finish({ ok: false, error: `certificate verify failed: ${verdict.code} (${verdict.message}); presented ${claimed}`, reason: 'fail_verify_error' });
      const id = certIdentity(cert);
      if (id === undefined) return finish({ ok: false, error: `peer certificate without one SPIFFE identity: ${claimed}`, reason: 'fail_verify_san' });
      if (!ctx.trustDomains.has(id.trustDomain)) return finish({ ok: false, error: `peer trust domain ${id.trustDomain} is not ${[...ctx.trustDomains].join(' or ')}`, reason: 'fail_verify_san' });
      stats.handshakes++;
      const peer: PeerIdentity = { id, spiffeId: spiffeUri(id), principal: principalOf(id), namespace: id.namespace, certHash: createHash('sha256').update(cert.raw).digest('hex') };
      peers.set(t, peer);
      finish({ ok: true, socket: t, peer, alpn: typeof t.alpnProtocol === 'string' ? t.alpnProtocol : '' });
    });
  });
}

/**
 * `tls.connect` options for originating mTLS to another sidecar (DestinationRule ISTIO_MUTUAL, or auto mTLS):
 * our certificate, the trust bundle (the server's chain is verified by Node: `rejectUnauthorized`), Istio's ALPN for
 * the protocol, and a check that the server's SPIFFE identity is one of `expected` (see serverIdentities; empty
 * refuses every server).
 */
export function originationOptions(ctx: MtlsContext, protocol: 'http/1.1' | 'h2' | 'tcp', expected: readonly string[], sni?: string): tls.ConnectionOptions {
  return {
    secureContext: ctx.client,
    rejectUnauthorized: true,
    ALPNProtocols: [protocol === 'h2' ? 'istio-h2' : protocol === 'http/1.1' ? 'istio-http/1.1' : 'istio'],
    ...(sni !== undefined ? { servername: sni } : {}),
    checkServerIdentity: (_host, cert) => checkPeerSan(cert.subjectaltname, expected),
  };
}

/**
 * Undefined when the server's SAN string (node's `subjectaltname`) names one of the `expected` identities, else
 * the error (code ERR_TLS_CERT_ALTNAME_INVALID, as Node's own name check: counted as `ssl.fail_verify_san`).
 */
export function checkPeerSan(san: string | undefined, expected: readonly string[]): Error | undefined {
  const id = certIdentity({ subjectAltName: san });
  if (id === undefined) return sanError('server certificate without one SPIFFE identity');
  const uri = spiffeUri(id);
  if (expected.length === 0) return sanError(`server identity ${uri} cannot be checked: no identity is known for this destination`);
  return expected.includes(uri) ? undefined : sanError(`server identity ${uri} is not one of ${expected.join(', ')}`);
}

function sanError(message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
}

/**
 * Count an originated mTLS connection's handshake in `stats`: done, refused by verification (the server's chain:
 * `fail_verify_error`; its identity: `fail_verify_san`), or failed otherwise (`connection_error`).
 */
export function watchOrigination(sock: tls.TLSSocket, stats: TlsStats): void {
  let secure = false;
  sock.once('secureConnect', () => { secure = true; stats.handshakes++; });
  sock.once('error', (e: NodeJS.ErrnoException) => {
    if (secure) return;
    if (e.code === 'ERR_TLS_CERT_ALTNAME_INVALID') stats.failures.fail_verify_san++;
    // OpenSSL's verification codes (CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE …) have underscores and no
    // ERR_ prefix; errno codes (ECONNRESET) have neither underscores nor the prefix, Node's own errors have the prefix.
    else if (e.code !== undefined && e.code.includes('_') && !e.code.startsWith('ERR_')) stats.failures.fail_verify_error++;
    else stats.connectionErrors++;
  });
}

/** A connection that fails at once with `reason` (a connect failure for the pools and the TCP proxy, UF). */
export function refusedConnection(reason: string): net.Socket {
  const s = new net.Socket();
  setImmediate(() => s.destroy(Object.assign(new Error(reason), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' })));
  return s;
}

/** Envoy's x-forwarded-client-cert for the app (SANITIZE_SET: what the peer sent is replaced). */
export function xfcc(own: string, peer: PeerIdentity): string {
  return `By=${own};Hash=${peer.certHash};Subject="";URI=${peer.spiffeId}`;
}
