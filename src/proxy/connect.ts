/**
 * HTTP CONNECT on the outbound listener (`remora run --connect`; off by default, a CONNECT is then answered 405):
 * Envoy's CONNECT termination. `CONNECT host:port` opens a TCP connection chosen exactly as a captured connection
 * to that host and port would be (src/net/capture.ts `routeOutboundTcp`: the VirtualService `tcp[]` route or the
 * service's cluster, else PassthroughCluster or BlackHoleCluster), and answers `200 Connection Established` once
 * the upstream is connected; from then on the connection is a byte pipe with the TCP proxy's balancing, limits,
 * metrics (`istio_tcp_*`) and access log. No upstream: an HTTP error answer (503; 502 for REGISTRY_ONLY's black
 * hole), and the connection closes.
 */
import { isIPv6, type Socket } from 'node:net';
import type { Http1Request, Http1Response } from '../http1/server.js';
import { routeOutboundTcp, type CaptureEnv, type CaptureStats } from '../net/capture.js';
import { parseAuthority } from '../routing/request-target.js';

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
  const blackhole = details === 'blackhole_cluster';
  const status = blackhole ? '502 Bad Gateway' : '503 Service Unavailable';
  const body = blackhole ? 'registry_only_blackhole' : `upstream connect error (${flag}: ${details})`;
  return Buffer.from(`HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body, 'latin1')}\r\nconnection: close\r\n\r\n${body}`, 'latin1');
}

/** Serve a CONNECT request (flagged `req.upgrade` by an Http1Server built with `connect: true`). */
export function handleConnect(req: Http1Request, res: Http1Response, env: CaptureEnv, stats: CaptureStats): void {
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
  const baseIn = socket.bytesRead - (early?.length ?? 0);
  routeOutboundTcp(env, stats, socket, early, { address: target.host, port: target.port }, undefined, {
    host: target.host,
    greeting: { established: ESTABLISHED, failed: connectFailure, baseIn },
  });
}
