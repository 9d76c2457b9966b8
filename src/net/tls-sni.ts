/**
 * The server name a TLS client asks for (SNI), read from its ClientHello without terminating TLS: what Envoy's
 * tls_inspector does for Istio's TLS routes and SNI-matched passthrough. Pure; the handshake message may span
 * several TLS records (a large ClientHello with post-quantum key shares), and is bounded to 16 KiB.
 */

export type SniResult =
  /** A complete ClientHello: its host name ('' without a server_name extension) and the ALPN protocols it offers. */
  | { kind: 'sni'; serverName: string; alpn?: string[] }
  /** Not a ClientHello, or malformed. */
  | { kind: 'not-tls' }
  /** More bytes are needed. */
  | { kind: 'need-more' };

/** Largest ClientHello (handshake message) read before giving up. */
export const MAX_CLIENT_HELLO = 16 * 1024;

const NEED_MORE: SniResult = { kind: 'need-more' };
const NOT_TLS: SniResult = { kind: 'not-tls' };

/** Join the handshake bytes of consecutive handshake records (type 22). */
function handshakeBytes(buf: Buffer): Buffer | 'need-more' | 'not-tls' {
  const parts: Buffer[] = [];
  let total = 0;
  let at = 0;
  let wanted = -1;
  while (true) {
    if (buf.length < at + 5) return 'need-more';
    if (buf[at] !== 0x16 || buf[at + 1] !== 0x03) return 'not-tls';
    const len = buf.readUInt16BE(at + 3);
    if (len === 0 || len > 16384 + 2048) return 'not-tls';
    if (buf.length < at + 5 + len) {
      // The part of this record that is here may already hold the whole message: parse from what arrived.
      parts.push(buf.subarray(at + 5));
      total += buf.length - at - 5;
      const joined = Buffer.concat(parts, total);
      if (wanted < 0 && joined.length >= 4) wanted = 4 + joined.readUIntBE(1, 3);
      return wanted >= 0 && joined.length >= wanted ? joined : 'need-more';
    }
    parts.push(buf.subarray(at + 5, at + 5 + len));
    total += len;
    at += 5 + len;
    const joined = parts.length === 1 ? parts[0]! : Buffer.concat(parts, total);
    if (wanted < 0 && joined.length >= 4) {
      if (joined[0] !== 0x01) return 'not-tls';
      wanted = 4 + joined.readUIntBE(1, 3);
      if (wanted > MAX_CLIENT_HELLO) return 'not-tls';
    }
    if (wanted >= 0 && joined.length >= wanted) return joined;
  }
}

/** Read the SNI host name and the ALPN protocols from the start of a connection's bytes. */
export function readClientHelloSni(buf: Buffer): SniResult {
  const hs = handshakeBytes(buf);
  if (hs === 'need-more') return buf.length > MAX_CLIENT_HELLO + 5 * 8 ? NOT_TLS : NEED_MORE;
  if (hs === 'not-tls') return NOT_TLS;
  if (hs[0] !== 0x01) return NOT_TLS;
  const end = 4 + hs.readUIntBE(1, 3);
  let p = 4 + 2 + 32; // client_version, random
  if (end > hs.length || p + 1 > end) return NOT_TLS;
  p += 1 + hs[p]!; // session_id
  if (p + 2 > end) return NOT_TLS;
  p += 2 + hs.readUInt16BE(p); // cipher_suites
  if (p + 1 > end) return NOT_TLS;
  p += 1 + hs[p]!; // compression_methods
  if (p === end) return { kind: 'sni', serverName: '', alpn: [] }; // no extensions at all
  if (p + 2 > end) return NOT_TLS;
  const extEnd = p + 2 + hs.readUInt16BE(p);
  p += 2;
  if (extEnd > end) return NOT_TLS;
  let serverName = '';
  const alpn: string[] = [];
  while (p + 4 <= extEnd) {
    const type = hs.readUInt16BE(p);
    const len = hs.readUInt16BE(p + 2);
    p += 4;
    if (p + len > extEnd) return NOT_TLS;
    if (type === 0 && len >= 2) {
      // server_name_list: (name_type 0 = host_name, length, name)+
      let q = p + 2;
      const listEnd = p + 2 + hs.readUInt16BE(p);
      while (q + 3 <= listEnd && listEnd <= p + len) {
        const nameType = hs[q]!;
        const nameLen = hs.readUInt16BE(q + 1);
        q += 3;
        if (q + nameLen > listEnd) return NOT_TLS;
        if (nameType === 0) { serverName = hs.toString('latin1', q, q + nameLen).toLowerCase(); break; }
        q += nameLen;
      }
    } else if (type === 16 && len >= 2) {
      // application_layer_protocol_negotiation: ProtocolNameList (length, (length8, name)+)
      const listEnd = p + 2 + hs.readUInt16BE(p);
      let q = p + 2;
      if (listEnd > p + len) return NOT_TLS;
      while (q + 1 <= listEnd) {
        const n = hs[q]!;
        q += 1;
        if (q + n > listEnd) return NOT_TLS;
        alpn.push(hs.toString('latin1', q, q + n));
        q += n;
      }
    }
    p += len;
  }
  return { kind: 'sni', serverName, alpn };
}
