/**
 * Transparent capture: what the outbound (15001) and inbound (15006) listeners do with each accepted connection
 * before HTTP is assumed. This module accepts connections and reads where they were going; the proxy's L4 path
 * (src/proxy/l4.ts) and the HTTP servers take them from here, and nothing in src/proxy imports this module.
 * A connection addressed to the listener itself (the app set HTTP_PROXY, or a test dialled 127.0.0.1:15001) is
 * HTTP at once, with no extra work — on the inbound listener only in explicit mode: with `captureMode` (iptables in
 * front) such a connection is refused, as Envoy's virtualInbound blackhole chain does. A connection that iptables
 * redirected carries its original destination; that decides:
 * - inbound, a proxy port (admin, outbound, inbound, stats, health) → refused: never an inbound target; in capture
 *   mode, an original destination that is not one of the pod's addresses (127.0.0.1, another host) → refused;
 * - a registry port declared HTTP → HTTP (outbound: routed with the original destination known);
 * - a port declared TCP/TLS/… or a server-speaks-first port → L4 at once (never wait for the client);
 * - otherwise the first bytes are sniffed: an HTTP/1 request line or the HTTP/2 preface → HTTP; anything else (a TLS
 *   ClientHello, a binary protocol) → L4. A client silent for `sniffTimeoutMs` (the server may speak first) goes to L4
 *   outbound; inbound, the app is dialled and whoever speaks first decides, so HTTP sent late is still HTTP (and
 *   meets the HTTP policies) while a server-first protocol never stalls.
 */
import type net from 'node:net';
import type { Http1Server, OriginalDestination } from '../http1/server.js';
import type { LazyHttp2Listener } from '../http2/lazy.js';
import type { OriginalDstReader } from './original-dst.js';
import { unmapIpv4 } from './original-dst.js';
import { connectionProtocol, sniff, SNIFF_MAX_BYTES, type Sniffed } from './protocol.js';
import { resolveCaptured } from '../routing/l4-destination.js';
import { readClientHelloSni } from './tls-sni.js';
import { offersIstioAlpn, peerOf, terminateMtls, type MtlsContext } from '../security/mtls.js';
import type { MtlsMode } from '../security/peer-authentication.js';
import { refuseInbound, routeOutboundTcp, serveInboundTcp, type InboundL4Env, type L4Env } from '../proxy/l4.js';
import type { FirstBytes, L4Conn } from '../proxy/tcp-proxy.js';

export interface CaptureEnv extends L4Env {
  reader: OriginalDstReader;
  /** How long to wait for a client's first bytes before taking the connection as TCP (ms). */
  sniffTimeoutMs: number;
  /** Cleartext HTTP/2 (prior knowledge) on the same port: connections that open with the HTTP/2 preface. */
  h2?: Pick<LazyHttp2Listener, 'serveSocket'>;
  /** How long a connection may stay silent before its first byte (ms), when HTTP/2 detection waits for it. */
  firstByteTimeoutMs?: number;
}

export interface InboundCaptureEnv extends CaptureEnv, InboundL4Env {
  /** The workload certificate's TLS material; undefined = no certificate, plaintext only (mTLS off). */
  mtls?(): MtlsContext | undefined;
  /** PeerAuthentication's mode for an app port (undefined: a connection to the listener itself, the workload's mode). */
  mtlsMode?(port: number | undefined): MtlsMode;
  /**
   * Capture mode (`remora run --capture-mode redirect`, set by `remora inject`): iptables redirects every inbound
   * connection, so one addressed to the inbound listener itself was not redirected and is refused.
   */
  captureMode?: boolean;
}

/** Counters of what capture decided, for /stats. */
export class CaptureStats {
  direct = 0;
  http = 0;
  tcp = 0;
  sniffTimeouts = 0;
  /** Inbound: silent past detection, then HTTP bytes before the app said anything: served as HTTP. */
  lateHttp = 0;
  /**
   * Inbound connections refused before any policy: to a proxy port, not redirected in capture mode, or redirected
   * with an original destination that is not one of the pod's addresses (capture mode).
   */
  refusedOwnPort = 0;
  refusedNotRedirected = 0;
  refusedNotPodAddress = 0;
  /** Inbound mTLS connections terminated (the peer's certificate verified). */
  mtls = 0;
  /** Inbound connections refused by PeerAuthentication: plaintext under STRICT, or a failed mTLS handshake. */
  mtlsRefused = 0;
}

/**
 * Between accepting an inbound connection and serving it: mutual TLS (PeerAuthentication). `next` serves a socket
 * (the decrypted one, or the original with the bytes already read put back) as before.
 */
type Gate = (sock: net.Socket, dst: OriginalDestination | undefined, next: (s: net.Socket) => void) => void;

/** How a captured connection goes on: HTTP/1, HTTP/2 or L4; `late`: the client was silent past detection. */
type Decide = (sock: net.Socket, head: Buffer | undefined, dst: OriginalDestination, how: 'http' | 'h2' | 'tcp', sni: string | undefined, late: boolean, remote: Remote) => void;

/** The client's address, read at accept (the socket may be gone when a connection's record is made). */
interface Remote { ip: string; key: string }

function remoteOf(sock: net.Socket): Remote {
  const ip = unmapIpv4(sock.remoteAddress ?? '');
  return { ip, key: `${ip}:${sock.remotePort ?? 0}` };
}

/** A captured connection as the L4 path records it: the client's address and, as Envoy logs it, the original destination. */
function l4Conn(remote: Remote, dst: OriginalDestination, sock: net.Socket): L4Conn {
  const peer = peerOf(sock);
  return { remote: remote.key, remoteIp: remote.ip, local: `${dst.address}:${dst.port}`, port: dst.port, ...(peer !== undefined ? { peer } : {}) };
}

/**
 * Read a connection's first bytes until `classify` settles them (undefined: need more), then hand over in the same
 * tick (no 'data' can be emitted between here and the next owner's listener). `onTimeout` runs when the client says
 * nothing decisive within `timeoutMs`, `onEnd` when it ends its side first; either may hand the socket on too.
 */
function readFirstBytes<T>(
  sock: net.Socket, timeoutMs: number, classify: (head: Buffer) => T | undefined,
  then: (head: Buffer | undefined, what: T) => void, onTimeout: (head: Buffer | undefined) => void, onEnd: (head: Buffer | undefined) => void,
): void {
  let head: Buffer | undefined;
  let done = false;
  const stop = (): boolean => {
    if (done) return false;
    done = true;
    clearTimeout(timer);
    sock.off('data', onData);
    sock.off('end', ended);
    sock.off('close', closed);
    return true;
  };
  const onData = (d: Buffer): void => {
    head = head === undefined ? d : Buffer.concat([head, d]);
    const what = classify(head);
    if (what !== undefined && stop()) then(head, what);
  };
  const ended = (): void => { if (stop()) onEnd(head); };
  const closed = (): void => { stop(); };
  const timer = setTimeout(() => { if (stop()) onTimeout(head); }, timeoutMs);
  sock.on('data', onData);
  sock.once('end', ended);
  sock.once('close', closed);
  sock.on('error', noop);
}

/**
 * A connection addressed to the listener itself speaks HTTP: HTTP/1, or HTTP/2 with prior knowledge (h2c), told
 * apart by the first bytes. Only a first read that starts with "P" (the preface's "PRI * HTTP/2.0") waits for more;
 * everything else goes to the HTTP/1 server with that first read, in the same tick.
 */
function serveHttp(sock: net.Socket, server: Http1Server, env: CaptureEnv, dst: OriginalDestination | undefined): void {
  const h2 = env.h2;
  if (h2 === undefined) { server.serveSocket(sock, undefined, dst); return; }
  readFirstBytes<'h2' | 'http1'>(
    sock,
    env.firstByteTimeoutMs ?? 65_000,
    (head) => {
      if (head[0] !== 0x50 /* P */) return 'http1';
      const s = sniff(head);
      if (s === 'need-more' && head.length < SNIFF_MAX_BYTES) return undefined;
      return s === 'h2' ? 'h2' : 'http1';
    },
    (head, what) => (what === 'h2' ? h2.serveSocket(sock, head, dst) : server.serveSocket(sock, head, dst)),
    () => sock.destroy(), // silent since it connected: nothing to serve
    () => sock.destroy(), // ended its side before a request
  );
}

/**
 * Read where `sock` was going, then call `decide` with what the connection is; connections not redirected go to
 * `direct` (HTTP on the listener itself, or a refusal).
 */
function accept(
  sock: net.Socket, env: CaptureEnv, stats: CaptureStats, protocolOf: (dst: OriginalDestination) => string | undefined, decide: Decide,
  direct: (sock: net.Socket) => void, captured: ((sock: net.Socket, dst: OriginalDestination, remote: Remote) => boolean) | undefined, gate?: Gate,
): void {
  const r = env.reader.read(sock);
  if (r === undefined) { direct(sock); return; }
  const go = (dst0: OriginalDestination | undefined): void => {
    if (dst0 === undefined) { direct(sock); return; }
    const remote = remoteOf(sock);
    if (captured !== undefined && !captured(sock, dst0, remote)) return;
    if (gate !== undefined) gate(sock, dst0, (s) => route(s, dst0, remote));
    else route(sock, dst0, remote);
  };
  const route = (sock: net.Socket, dst: OriginalDestination, remote: Remote): void => {
    if (sock.destroyed) return;
    const proto = connectionProtocol(protocolOf(dst), dst.port);
    if (proto === 'tcp') return decide(sock, undefined, dst, proto, undefined, false, remote);
    if (proto === 'http') {
      // Declared HTTP: HTTP/1 or HTTP/2 with prior knowledge (Envoy's codec AUTO), never TCP.
      decide(sock, undefined, dst, 'http', undefined, false, remote);
      return;
    }
    sniffThen(sock, env.sniffTimeoutMs, stats, (head, what, sni, late) => {
      // A port declared TLS is never served as HTTP, whatever its first bytes look like; HTTP/2 is served when the
      // listener has its HTTP/2 side, else passed on as bytes.
      const how = proto !== 'sniff' ? 'tcp' : what === 'http1' ? 'http' : what === 'h2' && env.h2 !== undefined ? 'h2' : 'tcp';
      decide(sock, head, dst, how, sni, late, remote);
    });
  };
  if (r instanceof Promise) r.then(go, () => go(undefined));
  else go(r);
}

/**
 * Read until the first bytes say what they are (a TLS ClientHello: until it is whole, for its server name), the
 * client goes quiet for `timeoutMs` (`late`: the server may speak first), or it ends its side (TCP, the FIN passed on).
 */
function sniffThen(sock: net.Socket, timeoutMs: number, stats: CaptureStats, then: (head: Buffer | undefined, what: Sniffed, sni: string | undefined, late: boolean) => void): void {
  readFirstBytes<{ what: Sniffed; sni?: string }>(
    sock,
    timeoutMs,
    (head) => {
      const s = sniff(head);
      if (s === 'tls') {
        const hello = readClientHelloSni(head);
        if (hello.kind === 'sni') return { what: 'tls', sni: hello.serverName };
        return hello.kind === 'not-tls' ? { what: 'tcp' } : undefined; // else: the ClientHello is still arriving
      }
      if (s !== 'need-more') return { what: s };
      return head.length >= SNIFF_MAX_BYTES ? { what: 'tcp' } : undefined;
    },
    (head, r) => then(head, r.what, r.sni, false),
    (head) => { stats.sniffTimeouts++; then(head, 'tcp', undefined, true); },
    (head) => then(head, 'tcp', undefined, false),
  );
}

function noop(): void { /* 'close' follows */ }

/** The outbound listener's connection hook. */
export function outboundCapture(env: CaptureEnv, stats: CaptureStats): (sock: net.Socket, server: Http1Server) => void {
  const protocolOf = (dst: OriginalDestination): string | undefined => resolveCaptured(env.snapshot(), dst).cluster?.protocol;
  return (sock, server) => accept(sock, env, stats, protocolOf, (s, head, dst, how, sni, _late, remote) => {
    if (how === 'tcp') {
      stats.tcp++;
      routeOutboundTcp(env, s, head, dst, { remote: remote.key, remoteIp: remote.ip, local: `${dst.address}:${dst.port}` }, sni);
      return;
    }
    // HTTP with the original destination known: routed by Host, else by the VIP; passthrough to the original IP.
    stats.http++;
    if (how === 'h2') env.h2!.serveSocket(s, head, dst);
    else if (head === undefined) serveHttp(s, server, env, dst);
    else server.serveSocket(s, head, dst);
  }, (s) => { stats.direct++; serveHttp(s, server, env, undefined); }, undefined);
}

/**
 * The inbound listener's connection hook: the original destination is the app's address and port (any captured
 * port, not only `--app-port`); HTTP goes through the inbound HTTP path, anything else to the L4 path (policy, then
 * piped to the original destination).
 */
export function inboundCapture(env: InboundCaptureEnv, stats: CaptureStats): (sock: net.Socket, server: Http1Server) => void {
  // The app's ports carry no declared protocol here: sniff, except on server-first ports.
  const protocolOf = (): string | undefined => undefined;
  const gate = env.mtls === undefined ? undefined : mtlsGate(env, stats);
  const own = env.own?.ports;
  const podAddresses = env.own?.addresses;
  const captureMode = env.captureMode === true;
  // A redirected connection to one of the proxy's own ports: never an inbound target (admin, an open outbound relay).
  // In capture mode, nor one whose original destination is not the pod's: iptables redirects a packet in PREROUTING,
  // before routing would drop one addressed to 127.0.0.1 or pass over one for another host, so a neighbour on the
  // pod's L2 segment can address its packets to anything through the pod; delivered there, it would reach the
  // listeners bound to loopback, or use the pod as a relay from the pod's address.
  const captured = (s: net.Socket, dst: OriginalDestination, remote: Remote): boolean => {
    const why = own !== undefined && own.has(dst.port) ? 'own_port' : captureMode && !podAddresses?.has(dst.address.toLowerCase()) ? 'not_pod_address' : undefined;
    if (why === undefined) return true;
    if (why === 'own_port') stats.refusedOwnPort++;
    else stats.refusedNotPodAddress++;
    refuseInbound(env, s, { remote: remote.key, remoteIp: remote.ip, local: `${dst.address}:${dst.port}`, port: dst.port }, why);
    return false;
  };
  return (sock, server) => {
    const direct = (s: net.Socket): void => {
      if (env.captureMode === true) {
        // Capture mode: every inbound connection is redirected, so this one dialled the listener itself.
        stats.refusedNotRedirected++;
        const remote = remoteOf(s);
        refuseInbound(env, s, { remote: remote.key, remoteIp: remote.ip, local: `${unmapIpv4(s.localAddress ?? '')}:${s.localPort ?? 0}` }, 'not_redirected');
        return;
      }
      stats.direct++;
      if (gate !== undefined) gate(s, undefined, (t) => serveHttp(t, server, env, undefined));
      else serveHttp(s, server, env, undefined);
    };
    accept(sock, env, stats, protocolOf, (s, head, dst, how, _sni, late, remote) => {
      if (how !== 'tcp') {
        stats.http++;
        if (how === 'h2') env.h2!.serveSocket(s, head, dst);
        else if (head === undefined) serveHttp(s, server, env, dst);
        else server.serveSocket(s, head, dst);
        return;
      }
      stats.tcp++;
      serveInboundTcp(env, s, head, dst, l4Conn(remote, dst, s), late ? lateBytes(s, server, env, dst, stats) : undefined);
    }, direct, captured, gate);
  };
}

/**
 * A client silent past detection whose first bytes come before the app's: HTTP (HTTP/1, or HTTP/2 where the listener
 * serves it) is served as HTTP, with its policies; anything else stays TCP.
 */
function lateBytes(sock: net.Socket, server: Http1Server, env: CaptureEnv, dst: OriginalDestination, stats: CaptureStats): FirstBytes {
  return (head) => {
    const s = sniff(head);
    if (s === 'need-more' && head.length < SNIFF_MAX_BYTES) return 'more';
    if (s === 'http1' || (s === 'h2' && env.h2 !== undefined)) {
      stats.tcp--;
      stats.http++;
      stats.lateHttp++;
      if (s === 'h2') env.h2!.serveSocket(sock, head, dst);
      else server.serveSocket(sock, head, dst);
      return 'taken';
    }
    return 'tcp';
  };
}

/**
 * PeerAuthentication at the inbound listener, when the sidecar has a workload certificate: a connection that opens
 * with a ClientHello offering one of Istio's ALPN values is a sidecar's mTLS — terminated (client certificate from the
 * trust bundle required) unless the port's mode is DISABLE, and served decrypted with the peer's identity; anything
 * else is plaintext (or an app's own TLS), refused under STRICT, served as before under PERMISSIVE and DISABLE.
 * Only the first read waits: a plaintext first byte is decided at once.
 */
function mtlsGate(env: InboundCaptureEnv, stats: CaptureStats): Gate {
  return (sock, dst, next) => {
    const ctx = env.mtls?.();
    const mode = env.mtlsMode?.(dst?.port) ?? 'PERMISSIVE';
    if (ctx === undefined && mode !== 'STRICT') return next(sock);
    readFirstBytes<{ tls: boolean; istio: boolean }>(
      sock,
      // A captured connection may be a server-speaks-first protocol: its silent client is not kept waiting.
      dst !== undefined ? env.sniffTimeoutMs : env.firstByteTimeoutMs ?? 65_000,
      (head) => {
        if (head[0] !== 0x16) return { tls: false, istio: false };
        const hello = readClientHelloSni(head);
        if (hello.kind === 'need-more') return undefined;
        return { tls: hello.kind === 'sni', istio: hello.kind === 'sni' && offersIstioAlpn(hello.alpn) };
      },
      (head, what) => {
        if (what.istio && ctx !== undefined && mode !== 'DISABLE') {
          void terminateMtls(sock, head, ctx).then((r) => {
            if (!r.ok) { stats.mtlsRefused++; return; }
            stats.mtls++;
            next(r.socket);
          });
          return;
        }
        if (mode === 'STRICT') {
          // Envoy: no filter chain matches a plaintext connection on a STRICT port; the connection is closed.
          stats.mtlsRefused++;
          sock.resetAndDestroy();
          return;
        }
        handBack(sock, head, next);
      },
      (head) => { if (mode === 'STRICT') { stats.mtlsRefused++; sock.destroy(); } else handBack(sock, head, next); },
      (head) => { if (mode === 'STRICT') { stats.mtlsRefused++; sock.destroy(); } else handBack(sock, head, next); },
    );
  };
}

/**
 * Serve a socket whose first bytes were read to decide: they are put back (the next reader sees them first), the next
 * owner attaches its listeners, then the socket flows again (a paused stream does not resume for a new listener).
 */
function handBack(sock: net.Socket, head: Buffer | undefined, next: (s: net.Socket) => void): void {
  sock.pause();
  if (head !== undefined && head.length > 0) sock.unshift(head);
  next(sock);
  // Only an owner that reads now: the TCP proxy keeps the socket paused until its upstream is connected (then pipes);
  // flowing before that would hand the put-back bytes to nobody.
  if (!sock.destroyed && sock.listenerCount('data') > 0) sock.resume();
}
