/**
 * HTTP CONNECT on the outbound listener (`remora run --connect`; off by default, a CONNECT is then answered 405):
 * Envoy's CONNECT termination. `CONNECT host:port` opens a TCP connection chosen exactly as a captured connection
 * to that host and port would be (src/proxy/l4.ts `routeOutboundTcp`: the VirtualService `tcp[]` route or the
 * service's cluster, else PassthroughCluster or BlackHoleCluster; never one of the proxy's own ports), and answers
 * `200 Connection Established` once the upstream is connected; from then on the connection is the byte pipe with the
 * TCP proxy's balancing, limits, metrics (`istio_tcp_*`) and access log. No upstream: an HTTP error answer (503; 502
 * for REGISTRY_ONLY's black hole; 403 for a proxy port), and the connection closes.
 */
import { isIPv6, type Socket } from 'node:net';
import type { Http1Request, Http1Response } from '../http1/server.js';
import { routeOutboundTcp, type L4Env } from './l4.js';
import { parseAuthority } from '../routing/request-target.js';
import { E, L4 } from '../errors.js';

/** The authority-form target of a CONNECT (RFC 9110 §9.3.6): host and port, both required; null when malformed. */
export function connectTarget(url: string): { host: string; port: number } | null {
  const a = parseAuthority(url);
  if (a === undefined || a.explicitPort < 1) return null;
  // A DNS name or an IPv4 address, or an IPv6 address in brackets: nothing else names a TCP destination.
  const ok = url.charCodeAt(0) === 91 /* [ */ ? isIPv6(a.host) : /^[a-z0-9.-]+$/.test(a.host);
  return ok ? { host: a.host, port: a.explicitPort } : null;
}

const ESTABLISHED = Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n', 'latin1');

/** The answer to a CONNECT that got no upstream, by the TCP proxy's response flag. */
export function connectFailure(flag: string, details: string): Buffer {
  const blackhole = details === L4.blackHole.details;
  const own = details === L4.proxyPort.details;
  const status = blackhole ? '502 Bad Gateway' : own ? '403 Forbidden' : '503 Service Unavailable';
  const body = blackhole ? E.registryOnly.details : own ? E.proxyPortNotRoutable.body : `upstream connect error (${flag}: ${details})`;
  return Buffer.from(`HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body, 'latin1')}\r\nconnection: close\r\n\r\n${body}`, 'latin1');
}

/** Serve a CONNECT request (flagged `req.upgrade` by an Http1Server built with `connect: true`). */
export function handleConnect(req: Http1Request, res: Http1Response, env: L4Env): void {
  const target = connectTarget(req.url);
  if (target === null) {
    const body = 'CONNECT needs host:port';
    res.writeHead(400, ['content-type', 'text/plain', 'content-length', String(body.length)]);
    res.end(body);
    return;
  }
  let taken: { socket: Socket; head: Buffer[] };
  try {
    taken = res.takeOver();
  } catch {
    res.destroy(); // the client went meanwhile
    return;
  }
  const { socket, head } = taken;
  const early = head.length === 0 ? undefined : Buffer.concat(head);
  // The addresses now, while the socket is open: the record is made when it may be gone.
  const remoteIp = unmapIpv4(socket.remoteAddress ?? '');
  const conn = { remote: `${remoteIp}:${socket.remotePort ?? 0}`, remoteIp, local: `${unmapIpv4(socket.localAddress ?? '')}:${socket.localPort ?? 0}` };
  routeOutboundTcp(env, socket, early, { address: target.host, port: target.port }, conn, undefined, {
    host: target.host,
    greeting: { established: ESTABLISHED, failed: connectFailure },
  });
}

/** `::ffff:10.0.0.1` → `10.0.0.1`. */
function unmapIpv4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
