/**
 * Mutual TLS between sidecars, as Istio does it: the client sidecar originates TLS with its workload certificate and
 * an ALPN of Istio's (`istio-http/1.1`, `istio-h2`, `istio` for TCP), checks the server's SPIFFE identity; the
 * server sidecar terminates TLS for connections whose ClientHello offers an `istio*` ALPN (an app's own TLS, with
 * other ALPNs, passes through untouched), requires a client certificate from the trust bundle, and hands the
 * decrypted socket to the HTTP or TCP path with the peer's identity attached.
 */
import type tls from 'node:tls';
import { tls as loadTls } from '../util/lazy-tls.js';
import { createHash } from 'node:crypto';
import type net from 'node:net';
import { certIdentity, principalOf, spiffeUri, type SpiffeId } from './spiffe.js';
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

/** The TLS material of the current workload certificate, made once per rotation. */
export class MtlsContext {
  /** One context for both directions: the same key, chain and trust bundle terminate and originate. */
  readonly server: tls.SecureContext;
  readonly client: tls.SecureContext;
  readonly own: SpiffeId;
  readonly ownUri: string;
  constructor(readonly cert: WorkloadCert) {
    this.server = loadTls().createSecureContext({ key: cert.key, cert: cert.cert, ca: cert.ca, minVersion: 'TLSv1.2' });
    this.client = this.server;
    this.own = cert.identity;
    this.ownUri = cert.spiffeId;
  }
}

export type TerminateResult = { ok: true; socket: tls.TLSSocket; peer: PeerIdentity; alpn: string } | { ok: false; error: string };

/**
 * Terminate mTLS on an accepted socket whose first bytes (`head`, a ClientHello) were already read. The client must
 * present a certificate from our trust bundle with one SPIFFE identity of our trust domain; `timeoutMs` bounds the
 * handshake.
 */
export function terminateMtls(sock: net.Socket, head: Buffer | undefined, ctx: MtlsContext, timeoutMs = 10_000): Promise<TerminateResult> {
  return new Promise((resolve) => {
    sock.pause();
    if (head !== undefined && head.length > 0) sock.unshift(head);
    const t = new (loadTls().TLSSocket)(sock, {
      isServer: true,
      secureContext: ctx.server,
      requestCert: true,
      rejectUnauthorized: true,
      // The server picks the first protocol of its own list the client also offers.
      ALPNProtocols: ['istio-h2', 'istio-http/1.1', 'istio-http/1.0', 'istio', 'istio-peer-exchange'],
    });
    let done = false;
    const finish = (r: TerminateResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!r.ok) t.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, error: 'mTLS handshake timeout' }), timeoutMs);
    t.once('error', (e: Error) => finish({ ok: false, error: e.message }));
    t.once('close', () => finish({ ok: false, error: 'closed during the mTLS handshake' }));
    t.once('secure', () => {
      // tls.Server clears this once the handshake is done; a TLSSocket made without one keeps it set, and node:http2
      // would then wait for a 'secureConnect' a server socket never emits (or read into a session not set up yet).
      (t as tls.TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
      const cert = t.getPeerX509Certificate();
      const id = cert === undefined ? undefined : certIdentity(cert);
      if (cert === undefined || id === undefined) return finish({ ok: false, error: 'peer certificate without a SPIFFE identity' });
      if (id.trustDomain !== ctx.own.trustDomain) return finish({ ok: false, error: `peer trust domain ${id.trustDomain} is not ${ctx.own.trustDomain}` });
      const peer: PeerIdentity = { id, spiffeId: spiffeUri(id), principal: principalOf(id), namespace: id.namespace, certHash: createHash('sha256').update(cert.raw).digest('hex') };
      peers.set(t, peer);
      finish({ ok: true, socket: t, peer, alpn: typeof t.alpnProtocol === 'string' ? t.alpnProtocol : '' });
    });
  });
}

/**
 * `tls.connect` options for originating mTLS to another sidecar (DestinationRule ISTIO_MUTUAL, or auto mTLS):
 * our certificate, the trust bundle, Istio's ALPN for the protocol, and a check that the server's SPIFFE identity is
 * one of `expected` (DestinationRule `subjectAltNames`, ServiceEntry `subjectAltNames`) or, with none given, any
 * identity of our trust domain.
 */
export function originationOptions(ctx: MtlsContext, protocol: 'http/1.1' | 'h2' | 'tcp', expected: readonly string[], sni?: string): tls.ConnectionOptions {
  return {
    secureContext: ctx.client,
    ALPNProtocols: [protocol === 'h2' ? 'istio-h2' : protocol === 'http/1.1' ? 'istio-http/1.1' : 'istio'],
    ...(sni !== undefined ? { servername: sni } : {}),
    checkServerIdentity: (_host, cert) => checkPeerSan(cert.subjectaltname, ctx.own.trustDomain, expected),
  };
}

/** Undefined when the server's SAN string (node's `subjectaltname`) names an acceptable identity, else the error. */
export function checkPeerSan(san: string | undefined, trustDomain: string, expected: readonly string[]): Error | undefined {
  const id = certIdentity({ subjectAltName: san });
  if (id === undefined) return new Error('server certificate without a SPIFFE identity');
  const uri = spiffeUri(id);
  if (expected.length > 0) {
    return expected.includes(uri) ? undefined : new Error(`server identity ${uri} is not one of ${expected.join(', ')}`);
  }
  return id.trustDomain === trustDomain ? undefined : new Error(`server identity ${uri} is outside trust domain ${trustDomain}`);
}

/** Envoy's x-forwarded-client-cert for the app (SANITIZE_SET: what the peer sent is replaced). */
export function xfcc(own: string, peer: PeerIdentity): string {
  return `By=${own};Hash=${peer.certHash};Subject="";URI=${peer.spiffeId}`;
}
