// Protocol decisions for captured connections: declared protocol beats sniffing, server-first ports never wait,
// and the first bytes classify as HTTP/1, the HTTP/2 preface, a TLS ClientHello, or anything else (TCP).
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { connectionProtocol, declaredProtocol, SERVER_FIRST_PORTS, sniff, SNIFF_MAX_BYTES } from '../../../src/net/protocol.js';

describe('declared protocol', () => {
  it('serves HTTP ports as HTTP and opaque protocols as TCP; the rest is sniffed', () => {
    for (const p of ['http', 'http2', 'grpc', 'grpc-web']) expect(declaredProtocol(p)).toBe('http'); // HTTP/1 or h2 by preface
    for (const p of ['tcp', 'mongo', 'mysql', 'redis']) expect(declaredProtocol(p)).toBe('tcp');
    // TLS is passed through too, after its ClientHello is read for the server name.
    for (const p of ['tls', 'https']) expect(declaredProtocol(p)).toBe('tls');
    for (const p of ['', undefined, 'something-else']) expect(declaredProtocol(p)).toBe('sniff');
  });

  it('takes server-first ports as TCP at once unless a protocol is declared', () => {
    for (const port of [25, 587, 3306, 5432, 6379, 11211]) {
      expect(SERVER_FIRST_PORTS.has(port)).toBe(true);
      expect(connectionProtocol(undefined, port)).toBe('tcp');
    }
    expect(connectionProtocol('http', 3306)).toBe('http'); // explicit wins
    expect(connectionProtocol(undefined, 8080)).toBe('sniff');
    expect(connectionProtocol('tcp', 8080)).toBe('tcp');
  });
});

describe('sniff', () => {
  const b = (s: string | number[]): Buffer => (typeof s === 'string' ? Buffer.from(s, 'latin1') : Buffer.from(s));

  it('recognises request lines, byte by byte', () => {
    for (const line of ['GET / HTTP/1.1\r\n', 'POST /x HTTP/1.1\r\n', 'OPTIONS * HTTP/1.1\r\n', 'PATCH /a HTTP/1.0\r\n', 'CONNECT h:443 HTTP/1.1\r\n']) {
      const method = line.slice(0, line.indexOf(' ') + 1);
      for (let i = 1; i < method.length; i++) expect(sniff(b(line.slice(0, i))), line.slice(0, i)).toBe('need-more');
      expect(sniff(b(line))).toBe('http1');
    }
  });

  it('recognises the HTTP/2 preface only once whole, and a TLS ClientHello', () => {
    const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
    for (let i = 1; i < preface.length; i++) expect(sniff(b(preface.slice(0, i)))).toBe('need-more');
    expect(sniff(b(preface))).toBe('h2');
    expect(SNIFF_MAX_BYTES).toBe(preface.length);
    const hello = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    for (let i = 1; i < 6; i++) expect(sniff(b(hello.slice(0, i)))).toBe('need-more');
    expect(sniff(b(hello))).toBe('tls');
    expect(sniff(b([0x16, 0x03, 0x03, 0x00, 0x10, 0x02]))).toBe('tcp'); // a ServerHello is no client's first bytes
  });

  it('takes binary protocols and lower-case or unknown words as TCP at once', () => {
    expect(sniff(b('*1\r\n$4\r\nPING\r\n'))).toBe('tcp'); // Redis
    expect(sniff(b([0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f]))).toBe('tcp'); // PostgreSQL SSLRequest
    expect(sniff(b('get / HTTP/1.1\r\n'))).toBe('tcp'); // methods are case-sensitive
    expect(sniff(b('GETX / HTTP/1.1\r\n'))).toBe('tcp');
    expect(sniff(b('HELO relay\r\n'))).toBe('tcp');
  });

  it('answers every prefix of any input with a decision or need-more, and a decision never changes as bytes are added', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
      let decided: string | undefined;
      for (let i = 1; i <= bytes.length; i++) {
        const s = sniff(Buffer.from(bytes.subarray(0, i)));
        if (decided !== undefined) expect(s).toBe(decided);
        else if (s !== 'need-more') decided = s;
      }
      if (bytes.length >= SNIFF_MAX_BYTES) expect(decided).toBeDefined();
    }), { numRuns: 2000 });
  });
});
