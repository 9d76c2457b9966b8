/**
 * Protocol decisions for captured connections, pure (no I/O): what a port is declared to speak, which ports are
 * server-speaks-first, and what the first bytes of a connection are. Istio's rules (docs/configuration.md
 * "Protocol selection"): an explicit protocol (port name prefix, appProtocol, ServiceEntry protocol) always wins;
 * otherwise the first bytes are sniffed, but a server-first port is TCP at once and sniffing gives up to TCP after a
 * short timeout, so that MySQL, SMTP or a banner-sending server never stalls (Linkerd's and Istio's pain point).
 */

/** What the proxy does with a connection: serve HTTP, pipe bytes, pipe bytes after reading the ClientHello's SNI, or look first. */
export type ConnProtocol = 'http' | 'tcp' | 'tls' | 'sniff';

/** What the first bytes say. */
export type Sniffed = 'http1' | 'h2' | 'tls' | 'tcp' | 'need-more';

/**
 * Ports whose servers speak first or whose clients' first bytes are never HTTP: Linkerd's default opaque ports
 * (SMTP 25 and 587, MySQL 3306, Galera 4444, PostgreSQL 5432, Redis 6379, Elasticsearch transport 9300, memcached
 * 11211) plus other banner-first protocols (FTP 21, SSH 22, POP3 110, IMAP 143, MySQL X 33060).
 */
export const SERVER_FIRST_PORTS: ReadonlySet<number> = new Set([21, 22, 25, 110, 143, 587, 3306, 4444, 5432, 6379, 9300, 11211, 33060]);

/**
 * A declared service-port protocol (lowercase, as the config compiler stores it) → what to do. HTTP, HTTP2, gRPC
 * are served as HTTP (HTTP/1, or HTTP/2 when the connection opens with its preface);
 * TLS and HTTPS are passed as bytes after their ClientHello is read; every other named protocol is an opaque byte
 * stream; none (or an unrecognised one) means "sniff".
 */
export function declaredProtocol(protocol: string | undefined): ConnProtocol {
  switch (protocol) {
    case 'http':
    case 'http2':
    case 'grpc':
    case 'grpc-web':
      // HTTP/1.1, or HTTP/2 with prior knowledge when the connection opens with its preface (Envoy's codec AUTO).
      return 'http';
    case 'tls':
    case 'https':
      // Opaque, but the ClientHello's server name can pick a tls route or an SNI-named service (never terminated).
      return 'tls';
    case 'tcp':
    case 'mongo':
    case 'mysql':
    case 'redis':
    case 'udp':
      return 'tcp';
    default:
      return 'sniff';
  }
}

/** What to do with a connection to `port` whose service declares `protocol` (undefined: no service known). */
export function connectionProtocol(protocol: string | undefined, port: number): ConnProtocol {
  const d = declaredProtocol(protocol);
  if (d !== 'sniff') return d;
  return SERVER_FIRST_PORTS.has(port) ? 'tcp' : 'sniff';
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Request-line methods (RFC 9110 and the WebDAV ones llhttp accepts). */
const METHODS = [
  'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'PROPFIND', 'PROPPATCH', 'MKCOL',
  'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'REPORT', 'MKACTIVITY', 'CHECKOUT', 'MERGE', 'M-SEARCH', 'NOTIFY', 'SUBSCRIBE',
  'UNSUBSCRIBE', 'PURGE', 'MKCALENDAR', 'LINK', 'UNLINK', 'SEARCH', 'BIND', 'REBIND', 'UNBIND', 'ACL', 'QUERY',
].map((m) => Buffer.from(`${m} `, 'latin1'));

/** A prefix of `whole` (both start at 0)? */
function isPrefix(buf: Buffer, whole: Buffer): boolean {
  const n = Math.min(buf.length, whole.length);
  return buf.compare(whole, 0, n, 0, n) === 0;
}

/**
 * Classify a connection's first bytes. `need-more` while they are still a prefix of something recognisable; the
 * caller decides how long to wait (bytes or time) before taking it as TCP.
 */
export function sniff(buf: Buffer): Sniffed {
  if (buf.length === 0) return 'need-more';
  if (isPrefix(buf, H2_PREFACE)) return buf.length >= H2_PREFACE.length ? 'h2' : 'need-more';
  // TLS record: handshake (22), version 3.x, then a ClientHello (1) once the record header is in.
  if (buf[0] === 0x16) {
    if (buf.length < 3) return 'need-more';
    if (buf[1] === 0x03 && buf[2]! <= 0x04) {
      if (buf.length < 6) return 'need-more';
      return buf[5] === 0x01 ? 'tls' : 'tcp';
    }
    return 'tcp';
  }
  let prefixOfSome = false;
  for (const m of METHODS) {
    if (buf.length >= m.length) {
      if (buf.compare(m, 0, m.length, 0, m.length) === 0) return 'http1';
    } else if (isPrefix(buf, m)) {
      prefixOfSome = true;
    }
  }
  return prefixOfSome ? 'need-more' : 'tcp';
}

/** How many bytes settle any classification (the h2 preface is the longest need). */
export const SNIFF_MAX_BYTES = H2_PREFACE.length;
