// The generator's wire format: request serialization and the incremental response parser
// (content-length, chunked, close-delimited, split chunks, upstream-service-time, errors).
import { describe, it, expect } from 'vitest';
import { formatRequest, ParseError, ResponseParser, type ParsedResponse } from '../../../src/bench/http1.js';

function parse(chunks: string[], expectNoBody = false): ParsedResponse[] {
  const out: ParsedResponse[] = [];
  const p = new ResponseParser((r) => out.push({ ...r }));
  p.expectNoBody = expectNoBody;
  for (const c of chunks) p.push(Buffer.from(c, 'latin1'));
  return out;
}

describe('formatRequest', () => {
  it('writes the request line, host, headers and a content-length for the body', () => {
    const b = formatRequest({ method: 'POST', path: '/a?b=1', host: 'svc:80', headers: [['X-A', '1']], body: Buffer.from('hi') });
    expect(b.toString()).toBe('POST /a?b=1 HTTP/1.1\r\nhost: svc:80\r\nX-A: 1\r\ncontent-length: 2\r\n\r\nhi');
  });
  it('lets a Host header override the authority and omits content-length on bodiless GET', () => {
    const b = formatRequest({ method: 'GET', path: '/', host: '127.0.0.1:1', headers: [['Host', 'reviews:9080']], body: undefined });
    expect(b.toString()).toBe('GET / HTTP/1.1\r\nhost: reviews:9080\r\n\r\n');
  });
});

describe('ResponseParser', () => {
  it('parses back-to-back content-length responses split at every byte', () => {
    const wire = 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Envoy-Upstream-Service-Time: 7\r\n\r\nabcHTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n';
    const out = parse(wire.split(''));
    expect(out).toEqual([
      { status: 200, upstreamMs: 7, close: false, bodyBytes: 3 },
      { status: 503, upstreamMs: -1, close: false, bodyBytes: 0 },
    ]);
  });

  it('parses chunked bodies with extensions and trailers', () => {
    const wire = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nx-trailer: 1\r\n\r\n';
    expect(parse([wire])).toEqual([{ status: 200, upstreamMs: -1, close: false, bodyBytes: 6 }]);
    expect(parse(wire.match(/.{1,3}/gs)!)).toHaveLength(1);
  });

  it('skips 100 Continue and honours connection: close, 204 and HEAD', () => {
    expect(parse(['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n'])).toEqual([{ status: 204, upstreamMs: -1, close: true, bodyBytes: 0 }]);
    expect(parse(['HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n'], true)).toEqual([{ status: 200, upstreamMs: -1, close: false, bodyBytes: 0 }]);
  });

  it('treats a body without framing as close-delimited', () => {
    const out: ParsedResponse[] = [];
    const p = new ResponseParser((r) => out.push({ ...r }));
    p.push(Buffer.from('HTTP/1.0 200 OK\r\n\r\nsome'));
    p.push(Buffer.from('thing'));
    expect(out).toEqual([]);
    expect(p.end()).toBe(true);
    expect(out).toEqual([{ status: 200, upstreamMs: -1, close: true, bodyBytes: 9 }]);
  });

  it('reads fractional upstream-service-time', () => {
    expect(parse(['HTTP/1.1 200 OK\r\nx-envoy-upstream-service-time: 0.25\r\ncontent-length: 0\r\n\r\n'])[0]!.upstreamMs).toBe(0.25);
  });

  it('rejects garbage', () => {
    expect(() => parse(['SSH-2.0-OpenSSH\r\n\r\n'])).toThrow(ParseError);
    expect(() => parse(['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n'])).toThrow(ParseError);
  });
});
