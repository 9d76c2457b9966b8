/**
 * Http1Server over real loopback sockets, driven byte by byte by a raw client: framing, keep-alive, pipelining,
 * HTTP/1.0, bodies and backpressure, the protective limits (400/431/408, idle timeout) and drain.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { Http1Server, type Http1Request, type Http1Response, type Http1ServerOptions, type RequestHandler } from '../../../src/http1/server.js';
import { RawClient, cleanup, header, headerCount, poll, settle, until } from './raw.js';
import { startReading } from '../../../src/http1/socket-io.js';

const servers: Http1Server[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
  await cleanup();
});

async function serve(handler: RequestHandler, opts: Http1ServerOptions = {}): Promise<{ server: Http1Server; port: number }> {
  const server = new Http1Server(handler, { headersTimeoutMs: 200, keepAliveTimeoutMs: 1000, ...opts });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** A handler that answers `url` with a fixed-length body. */
const echoUrl: RequestHandler = (req, res) => {
  req.resume();
  res.writeHead(200, ['Content-Length', String(req.url.length), 'X-Method', req.method]);
  res.end(req.url);
};

/** Requests the handler received, with their responses, for the test to answer in any order. */
function collector(): { handler: RequestHandler; got: Array<{ req: Http1Request; res: Http1Response }>; emitter: NodeJS.EventEmitter } {
  const got: Array<{ req: Http1Request; res: Http1Response }> = [];
  const emitter = new EventEmitter();
  return { got, emitter, handler: (req, res) => { got.push({ req, res }); emitter.emit('req'); } };
}

function readAll(r: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  r.on('data', (c: Buffer) => parts.push(c));
  return new Promise((resolve, reject) => {
    r.on('end', () => resolve(Buffer.concat(parts)));
    r.on('error', reject);
  });
}

/** The server stops reading at the libuv handle (its parser consumes the handle, so the Readable side never pauses). */
function readingStopped(sock: import('node:net').Socket): boolean {
  return (sock as unknown as { _handle: { reading?: boolean } | null })._handle?.reading === false;
}

describe('keep-alive and framing', () => {
  it('serves sequential requests on one connection; Content-Length kept, Date added, no Connection header', async () => {
    const seen: Array<{ method: string; url: string; v: string; raw: string[] }> = [];
    const { port } = await serve((req, res) => {
      seen.push({ method: req.method, url: req.url, v: req.httpVersion, raw: req.rawHeaders });
      echoUrl(req, res);
    });
    const c = await RawClient.connect(port);
    c.send('GET /one?x=1 HTTP/1.1\r\nHost: a\r\nX-Case: MiXed\r\n\r\n');
    const [r1] = await c.responses(1);
    c.send('DELETE /two HTTP/1.1\r\nHost: a\r\n\r\n');
    const rs = await c.responses(2);
    expect(r1!.status).toBe(200);
    expect(r1!.body.toString()).toBe('/one?x=1');
    expect(header(r1!, 'content-length')).toBe('8');
    expect(header(r1!, 'date')).toMatch(/^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/);
    expect(header(r1!, 'connection')).toBeUndefined();
    expect(header(r1!, 'transfer-encoding')).toBeUndefined();
    expect(rs[1]!.body.toString()).toBe('/two');
    expect(header(rs[1]!, 'x-method')).toBe('DELETE');
    expect(seen[0]).toEqual({ method: 'GET', url: '/one?x=1', v: '1.1', raw: ['Host', 'a', 'X-Case', 'MiXed'] });
    expect(c.closed).toBe(false);
  });

  it('without Content-Length an HTTP/1.1 response is chunked, with trailers after the last chunk', async () => {
    const { port } = await serve((req, res) => {
      res.writeHead(200, ['Content-Type', 'text/plain', 'Transfer-Encoding', 'gzip-is-ignored']);
      res.write('hello ');
      res.write(Buffer.alloc(5000, 'x')); // over the 2 KiB join threshold: written as its own buffer
      res.write('');
      res.addTrailers({ 'X-Checksum': 'abc', 'Bad\r\nName': 'dropped' });
      res.end('!');
      expect(res.chunkedEncoding).toBe(true);
      void req;
    });
    const c = await RawClient.connect(port);
    c.send('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    const [r] = await c.responses(1);
    expect(r!.chunked).toBe(true);
    expect(headerCount(r!, 'transfer-encoding')).toBe(1);
    expect(r!.body.toString()).toBe(`hello ${'x'.repeat(5000)}!`);
    expect(r!.trailers).toEqual([['X-Checksum', 'abc']]);
    expect(c.closed).toBe(false);
  });

  it('end() alone on a chunked response writes the zero chunk; end(string) joins head and body in one response', async () => {
    let n = 0;
    const { port } = await serve((_req, res) => {
      n++;
      res.writeHead(201, ['X-N', String(n)]);
      if (n === 1) res.end();
      else res.end('é'); // two UTF-8 bytes: the chunk size counts bytes
    });
    const c = await RawClient.connect(port);
    c.send('GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n');
    const rs = await c.responses(2);
    expect(rs[0]!.status).toBe(201);
    expect(rs[0]!.body.length).toBe(0);
    expect(rs[1]!.raw).toContain('\r\n2\r\n');
    expect(rs[1]!.body.toString('utf8')).toBe('é');
  });

  it('string bodies are UTF-8 on the wire, matching a Content-Length from Buffer.byteLength', async () => {
    const text = `héllo wörld ✓ ${'ü'.repeat(3000)}`; // also over the 2 KiB join threshold
    const { port } = await serve((req, res) => {
      if (req.url === '/fixed') {
        res.writeHead(200, ['Content-Length', String(Buffer.byteLength(text))]);
        res.end(text);
      } else {
        res.writeHead(200, []);
        res.write('ß');
        res.end(text);
      }
    });
    const c = await RawClient.connect(port);
    c.send('GET /fixed HTTP/1.1\r\n\r\nGET /chunked HTTP/1.1\r\n\r\nGET /fixed HTTP/1.1\r\n\r\n');
    const rs = await c.responses(3);
    expect(rs[0]!.body.toString('utf8')).toBe(text);
    expect(rs[1]!.body.toString('utf8')).toBe(`ß${text}`);
    expect(rs[2]!.body.toString('utf8')).toBe(text);
  });

  it('HEAD, 204 and 304 carry no body even when the handler writes one; the connection stays in sync', async () => {
    const { port } = await serve((req, res) => {
      const status = req.url === '/204' ? 204 : req.url === '/304' ? 304 : 200;
      res.writeHead(status, req.method === 'HEAD' ? ['Content-Length', '11'] : []);
      res.write('not sent');
      res.end('nor this');
    });
    const c = await RawClient.connect(port);
    c.send('HEAD /h HTTP/1.1\r\n\r\nGET /204 HTTP/1.1\r\n\r\nGET /304 HTTP/1.1\r\n\r\nGET /last HTTP/1.1\r\n\r\n');
    const rs = await c.responses(4, { head: [true] });
    expect(rs.map((r) => r.status)).toEqual([200, 204, 304, 200]);
    expect(header(rs[0]!, 'content-length')).toBe('11');
    expect(rs[0]!.raw.endsWith('\r\n\r\n')).toBe(true);
    expect(c.text.split('not sent').length - 1).toBe(1); // only the last (GET) response carries a body
    expect(rs.slice(0, 3).map((r) => r.body.length)).toEqual([0, 0, 0]);
    expect(header(rs[1]!, 'transfer-encoding')).toBeUndefined();
    expect(rs[3]!.body.toString()).toContain('not sent');
  });

  it('a Connection: close request gets Connection: close and the server closes after the response', async () => {
    const { port } = await serve(echoUrl);
    const c = await RawClient.connect(port);
    c.send('GET /x HTTP/1.1\r\nConnection: close\r\n\r\n');
    const [r] = await c.responses(1);
    expect(header(r!, 'connection')).toBe('close');
    await c.waitClosed();
  });

  it('a handler-set Connection: close is written once and closes the connection', async () => {
    const { port } = await serve((_req, res) => {
      res.writeHead(200, ['Connection', 'keep-alive, close', 'Content-Length', '0']);
      res.end();
    });
    const c = await RawClient.connect(port);
    c.send('GET / HTTP/1.1\r\n\r\n');
    const [r] = await c.responses(1);
    expect(headerCount(r!, 'connection')).toBe(1);
    expect(header(r!, 'connection')).toBe('close');
    await c.waitClosed();
  });
});

describe('HTTP/1.0', () => {
  it('without keep-alive: Connection: close and closed after the response', async () => {
    const { port } = await serve(echoUrl);
    const c = await RawClient.connect(port);
    c.send('GET /old HTTP/1.0\r\n\r\n');
    const [r] = await c.responses(1);
    expect(r!.body.toString()).toBe('/old');
    expect(header(r!, 'connection')).toBe('close');
    await c.waitClosed();
  });

  it('Connection: keep-alive with a Content-Length response: Connection: keep-alive and the connection is reused', async () => {
    const versions: string[] = [];
    const { port } = await serve((req, res) => { versions.push(req.httpVersion); echoUrl(req, res); });
    const c = await RawClient.connect(port);
    c.send('GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    await c.responses(1);
    c.send('GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const rs = await c.responses(2);
    expect(rs.map((r) => header(r, 'connection'))).toEqual(['keep-alive', 'keep-alive']);
    expect(versions).toEqual(['1.0', '1.0']);
    expect(c.closed).toBe(false);
  });

  it('keep-alive asked but no Content-Length: close-delimited body, never chunked', async () => {
    const { port } = await serve((_req, res) => {
      res.writeHead(200, []);
      res.write('part1,');
      res.end('part2');
    });
    const c = await RawClient.connect(port);
    c.send('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    await c.waitClosed();
    const [r] = await c.responses(1);
    expect(header(r!, 'connection')).toBe('close');
    expect(header(r!, 'transfer-encoding')).toBeUndefined();
    expect(r!.body.toString()).toBe('part1,part2');
  });
});

describe('pipelining', () => {
  it('responses leave in request order even when the handler answers out of order', async () => {
    const col = collector();
    const { port } = await serve(col.handler);
    const c = await RawClient.connect(port);
    c.send('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n');
    await until(col.emitter, 'req', () => col.got.length === 3);
    const [a, b, d] = col.got;
    d!.res.writeHead(200, ['Content-Length', '1']);
    d!.res.end('3');
    b!.res.writeHead(200, []); // chunked, held while /1 is unanswered
    b!.res.write('2a');
    await settle(); // nothing may leave before the first response
    expect(c.received.length).toBe(0);
    a!.res.writeHead(200, ['Content-Length', '1']);
    a!.res.end('1');
    await c.waitText((s) => s.includes('2a'));
    expect(c.text.indexOf('\r\n\r\n1')).toBeLessThan(c.text.indexOf('2a'));
    b!.res.end('2b');
    const rs = await c.responses(3);
    expect(rs.map((r) => r.body.toString())).toEqual(['1', '2a2b', '3']);
    expect(c.closed).toBe(false);
  });

  it('a response held behind an unfinished one stops its writer at 64 KiB and gets drain when it reaches the front', async () => {
    const col = collector();
    const { port } = await serve(col.handler);
    const c = await RawClient.connect(port);
    c.send('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n');
    await until(col.emitter, 'req', () => col.got.length === 2);
    const [a, b] = col.got;
    b!.res.writeHead(200, ['Content-Length', String(100 * 1024)]);
    let drains = 0;
    b!.res.on('drain', () => { drains++; });
    const chunk = Buffer.alloc(10 * 1024, 98);
    const oks: boolean[] = [];
    for (let i = 0; i < 10; i++) oks.push(b!.res.write(chunk));
    // 10 KiB per write: the 7th crosses 64 KiB of held output (the head counts too).
    expect(oks.indexOf(false)).toBeGreaterThan(4);
    expect(oks.slice(0, oks.indexOf(false)).every((x) => x)).toBe(true);
    expect(drains).toBe(0);
    a!.res.writeHead(200, ['Content-Length', '1']);
    a!.res.end('1');
    await poll(() => drains === 1, 2000, 'drain on the released response');
    b!.res.end();
    const rs = await c.responses(2);
    expect(rs[0]!.body.toString()).toBe('1');
    expect(rs[1]!.body.length).toBe(100 * 1024);
  });

  it('a held response that closes the connection drops the requests behind it (their close fires)', async () => {
    const col = collector();
    const { port } = await serve(col.handler);
    const c = await RawClient.connect(port);
    c.send('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n');
    await until(col.emitter, 'req', () => col.got.length === 3);
    const closes: string[] = [];
    for (const g of col.got) g.res.on('close', () => closes.push(`${g.req.url}:${g.res.finished ? 'finished' : 'destroyed'}`));
    col.got[1]!.res.writeHead(200, ['Connection', 'close', 'Content-Length', '1']);
    col.got[1]!.res.end('2');
    col.got[0]!.res.writeHead(200, ['Content-Length', '1']);
    col.got[0]!.res.end('1');
    await c.waitClosed();
    const rs = await c.responses(2);
    expect(rs.map((r) => r.body.toString())).toEqual(['1', '2']);
    await until(c.sock, 'close', () => closes.length === 3);
    expect(closes.sort()).toEqual(['/1:finished', '/2:finished', '/3:destroyed']);
  });

  it('stops reading past maxPipelined requests in flight and resumes as they are answered', async () => {
    const col = collector();
    const { port } = await serve(col.handler, { maxPipelined: 2 });
    const c = await RawClient.connect(port);
    c.send('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\nGET /4 HTTP/1.1\r\n\r\n');
    await until(col.emitter, 'req', () => col.got.length >= 3);
    // The third request went over the limit: reading is stopped at the handle (the parser reads it directly).
    expect(readingStopped(col.got[0]!.req.socket)).toBe(true);
    let answered = 0;
    const answer = (): void => {
      while (answered < col.got.length) {
        const g = col.got[answered++]!;
        g.res.writeHead(200, ['Content-Length', '0']);
        g.res.end();
      }
    };
    col.emitter.on('req', answer);
    answer();
    const rs = await c.responses(4);
    expect(rs).toHaveLength(4);
    expect(col.got.map((g) => g.req.url)).toEqual(['/1', '/2', '/3', '/4']);
  });
});

describe('request bodies', () => {
  it('a chunked request body arrives in order across pieces; complete is set at the end', async () => {
    let req: Http1Request | undefined;
    let body: Promise<Buffer> | undefined;
    const { port } = await serve((r, res) => {
      req = r;
      body = readAll(r.body!).then((b) => { res.writeHead(200, ['Content-Length', String(b.length)]); res.end(b); return b; });
    });
    const c = await RawClient.connect(port);
    c.send('POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel');
    await poll(() => req !== undefined);
    c.send('lo\r\n');
    c.send('6\r\n world\r\n0\r\n\r\n');
    const [r] = await c.responses(1);
    expect(r!.body.toString()).toBe('hello world');
    expect((await body!).toString()).toBe('hello world');
    expect(req!.complete).toBe(true);
  });

  it('Content-Length: 0 has no body stream; a Content-Length body is delivered exactly', async () => {
    const bodies: Record<string, string | null> = {};
    const { port } = await serve((req, res) => {
      if (req.body === null) { bodies[req.url] = null; echoUrl(req, res); return; }
      void readAll(req.body).then((b) => { bodies[req.url] = b.toString(); echoUrl(req, res); });
    });
    const c = await RawClient.connect(port);
    c.send('POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\n\r\n');
    const rs = await c.responses(3);
    expect(rs.map((r) => r.body.toString())).toEqual(['/a', '/b', '/c']);
    expect(bodies).toEqual({ '/a': null, '/b': 'abc', '/c': null });
  });

  it('backpressure: an unread body pauses the socket; reading it resumes and delivers every byte', async () => {
    let req: Http1Request | undefined;
    const { port } = await serve((r) => { req = r; });
    const c = await RawClient.connect(port);
    const size = 4 * 1024 * 1024;
    c.send(`POST / HTTP/1.1\r\nContent-Length: ${size}\r\n\r\n`);
    const payload = Buffer.alloc(size, 7);
    c.sock.write(payload);
    await poll(() => req !== undefined && readingStopped(req.socket), 2000, 'the server to pause reading');
    expect(req!.body!.readableLength).toBeLessThan(size);
    const got = await readAll(req!.body!);
    expect(got.length).toBe(size);
    expect(got.every((b) => b === 7)).toBe(true);
    expect(req!.complete).toBe(true);
  });

  it('Expect: 100-continue is the handler\'s to answer: sendContinue writes 100 Continue once, before the body is sent', async () => {
    let expected: boolean | undefined;
    const { port } = await serve((req, res) => {
      expected = req.expectContinue;
      // The proxy relays its upstream's 100 this way; a second call, or one after the final head, writes nothing.
      res.sendContinue();
      res.sendContinue();
      void readAll(req.body!).then((b) => { res.writeHead(200, ['Content-Length', String(b.length)]); res.end(b); res.sendContinue(); });
    });
    const c = await RawClient.connect(port);
    c.send('PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n');
    await c.waitText((s) => s.includes('\r\n\r\n'));
    expect(c.text).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    expect(expected).toBe(true);
    c.send('data');
    const [r] = await c.responses(1);
    expect(r!.status).toBe(200);
    expect(r!.body.toString()).toBe('data');
  });

  it('an HTTP/1.0 expectation is ignored and removed (no 1xx to an HTTP/1.0 client, RFC 9110)', async () => {
    let seen: { expected: boolean; raw: string[] } | undefined;
    const { port } = await serve((req, res) => {
      seen = { expected: req.expectContinue, raw: req.rawHeaders.slice() };
      res.sendContinue();
      void readAll(req.body!).then((b) => { res.writeHead(200, ['Content-Length', String(b.length)]); res.end(b); });
    });
    const c = await RawClient.connect(port);
    c.send('PUT /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata');
    const [r] = await c.responses(1);
    expect(r!.status).toBe(200);
    expect(c.text).not.toContain('100 Continue');
    expect(seen).toEqual({ expected: false, raw: ['Content-Length', '4'] });
  });

  it('a client that closes mid-body errors the body stream, and the connection closes (close fires once, destroyed)', async () => {
    let res: Http1Response | undefined;
    let bodyErr: Error | undefined;
    let closes = 0;
    const { port } = await serve((req, r) => {
      res = r;
      r.on('close', () => closes++);
      req.body!.on('error', (e) => { bodyErr = e; });
      req.body!.resume();
    });
    const c = await RawClient.connect(port);
    c.send('POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial');
    await poll(() => res !== undefined);
    await settle(); // 'partial' is in
    c.sock.destroy();
    await poll(() => closes > 0 && bodyErr !== undefined);
    await settle();
    expect(closes).toBe(1);
    expect(res!.destroyed).toBe(true);
    expect(bodyErr).toBeInstanceOf(Error);
  });
});

describe('headers', () => {
  it('more than 32 header lines (delivered in pieces by the parser) and a long URL arrive whole; the next request is unaffected', async () => {
    const got: Array<{ url: string; raw: string[] }> = [];
    const { port } = await serve((req, res) => { got.push({ url: req.url, raw: req.rawHeaders }); echoUrl(req, res); });
    const c = await RawClient.connect(port);
    const names = Array.from({ length: 70 }, (_, i) => `X-H${i}`);
    const url = `/${'u'.repeat(3000)}?q=1`;
    c.send(`GET ${url} HTTP/1.1\r\n${names.map((n, i) => `${n}: v${i}\r\n`).join('')}\r\n`);
    c.send('GET /next HTTP/1.1\r\nA: 1\r\n\r\n');
    await c.responses(2);
    expect(got[0]!.url).toBe(url);
    expect(got[0]!.raw).toEqual(names.flatMap((n, i) => [n, `v${i}`]));
    expect(got[1]).toEqual({ url: '/next', raw: ['A', '1'] });
  });

  it('request trailers do not leak into the next request on the connection', async () => {
    const got: Array<{ url: string; raw: string[] }> = [];
    const { port } = await serve((req, res) => {
      got.push({ url: req.url, raw: req.rawHeaders });
      if (req.body !== null) void readAll(req.body).then(() => echoUrl(req, res));
      else echoUrl(req, res);
    });
    const c = await RawClient.connect(port);
    c.send('POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n');
    await c.responses(1);
    c.send('GET /after HTTP/1.1\r\nB: 2\r\n\r\n');
    await c.responses(2);
    expect(got[1]).toEqual({ url: '/after', raw: ['B', '2'] });
  });

  it('writeHead refuses header injection (CR/LF in a value, bad name) and the handler can still answer', async () => {
    const errors: string[] = [];
    const { port } = await serve((_req, res) => {
      for (const h of [['X-A', 'ok\r\nSet-Cookie: evil'], ['Bad Name', 'v'], ['X-B', 'nul\u0000']]) {
        try { res.writeHead(200, h); } catch (e) { errors.push((e as { code?: string }).code ?? 'none'); }
      }
      expect(res.headersSent).toBe(false);
      res.writeHead(502, ['Content-Length', '0', 'X-Tab', 'a\tb', 'X-Latin1', 'caf\u00e9']);
      res.end();
    });
    const c = await RawClient.connect(port);
    c.send('GET / HTTP/1.1\r\n\r\n');
    const [r] = await c.responses(1);
    expect(errors).toEqual(['ERR_INVALID_HTTP_TOKEN', 'ERR_INVALID_HTTP_TOKEN', 'ERR_INVALID_HTTP_TOKEN']);
    expect(r!.status).toBe(502);
    expect(c.text).not.toContain('evil');
    expect(header(r!, 'x-tab')).toBe('a\tb');
    expect(header(r!, 'x-latin1')).toBe('caf\u00e9');
  });

  it('writeHead twice throws; an unknown status gets reason "Unknown"', async () => {
    let second: unknown;
    const { port } = await serve((_req, res) => {
      res.writeHead(299, ['Content-Length', '0']);
      try { res.writeHead(200, []); } catch (e) { second = e; }
      res.end();
    });
    const c = await RawClient.connect(port);
    c.send('GET / HTTP/1.1\r\n\r\n');
    await c.responses(1);
    expect(c.text.startsWith('HTTP/1.1 299 Unknown\r\n')).toBe(true);
    expect(second).toBeInstanceOf(Error);
  });
});

describe('protective limits', () => {
  it('a malformed request line gets 400 and the connection closes', async () => {
    let calls = 0;
    const { port } = await serve(() => { calls++; });
    const c = await RawClient.connect(port);
    c.send('GARBAGE\r\n\r\n');
    const [r] = await c.responses(1);
    expect(r!.status).toBe(400);
    await c.waitClosed();
    expect(calls).toBe(0);
  });

  it('an invalid Content-Length (two different values) gets 400', async () => {
    const { port } = await serve(echoUrl);
    const c = await RawClient.connect(port);
    c.send('POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab');
    const [r] = await c.responses(1);
    expect(r!.status).toBe(400);
    await c.waitClosed();
  });

  it('a head over maxHeaderSize gets 431', async () => {
    const { port } = await serve(echoUrl, { maxHeaderSize: 1024 });
    const c = await RawClient.connect(port);
    c.send(`GET / HTTP/1.1\r\nX-Big: ${'b'.repeat(2000)}\r\n\r\n`);
    const [r] = await c.responses(1);
    expect(r!.status).toBe(431);
    await c.waitClosed();
  });

  it('slowloris: a head not complete within headersTimeoutMs gets 408 and a close', async () => {
    const { port } = await serve(echoUrl, { headersTimeoutMs: 200 });
    const c = await RawClient.connect(port);
    const t0 = Date.now();
    c.send('GET / HTTP/1.1\r\nX-Slow: ');
    const [r] = await c.responses(1, { ms: 2000 });
    expect(r!.status).toBe(408);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    await c.waitClosed();
  });

  it('the head timer restarts per request on a keep-alive connection', async () => {
    const { port } = await serve(echoUrl, { headersTimeoutMs: 200 });
    const c = await RawClient.connect(port);
    c.send('GET /a HTTP/1.1\r\n\r\n');
    await c.responses(1);
    await new Promise((r) => setTimeout(r, 250)); // idle longer than headersTimeoutMs: idle time is not head time
    c.send('GET /b HTTP/1.1\r\n\r\n');
    const rs = await c.responses(2);
    expect(rs.map((r) => r.status)).toEqual([200, 200]);
  });

  it('an idle keep-alive connection is closed after keepAliveTimeoutMs', async () => {
    const { port } = await serve(echoUrl, { keepAliveTimeoutMs: 100 });
    const c = await RawClient.connect(port);
    c.send('GET / HTTP/1.1\r\n\r\n');
    await c.responses(1);
    const t0 = Date.now();
    await c.waitClosed(2000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(80);
  });

  it('a request in flight longer than keepAliveTimeoutMs is not cut; the idle timer applies after its response', async () => {
    let res: Http1Response | undefined;
    const { port } = await serve((_req, r) => { res = r; }, { keepAliveTimeoutMs: 100 });
    const c = await RawClient.connect(port);
    c.send('GET / HTTP/1.1\r\n\r\n');
    await new Promise((r) => setTimeout(r, 300));
    expect(c.closed).toBe(false);
    res!.writeHead(200, ['Content-Length', '2']);
    res!.end('ok');
    await c.responses(1);
    await c.waitClosed(2000);
  });
});

describe('CONNECT and Upgrade', () => {
  it('CONNECT is refused with 405 and the connection closes', async () => {
    let calls = 0;
    const { port } = await serve(() => { calls++; });
    const c = await RawClient.connect(port);
    c.send('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    const [r] = await c.responses(1);
    expect(r!.status).toBe(405);
    expect(header(r!, 'connection')).toBe('close');
    await c.waitClosed();
    expect(calls).toBe(0);
  });

  it('an Upgrade request answered with a plain response: flagged req.upgrade, and the connection closes after it (bytes after it dropped)', async () => {
    const urls: string[] = [];
    const flags: boolean[] = [];
    const { port } = await serve((req, res) => { urls.push(req.url); flags.push(req.upgrade); echoUrl(req, res); });
    const c = await RawClient.connect(port);
    c.send('GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello');
    await c.waitClosed();
    const [r] = await c.responses(1);
    expect(r!.status).toBe(200);
    expect(r!.body.toString()).toBe('/ws');
    expect(header(r!, 'connection')).toBe('close');
    expect(urls).toEqual(['/ws']);
    expect(flags).toEqual([true]);
  });

  it('the refusal comes later (as from an upstream): the client still gets it, its FIN is read and the socket closes', async () => {
    const col = collector();
    const { server, port } = await serve(col.handler);
    const c = await RawClient.connect(port, { allowHalfOpen: true });
    c.send('GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframes');
    await until(col.emitter, 'req', () => col.got.length === 1);
    await settle();
    c.send('more frames the proxy never parses');
    const { res } = col.got[0]!;
    res.writeHead(403, ['Content-Length', '2']);
    res.end('no');
    const [r] = await c.responses(1);
    expect(r!.status).toBe(403);
    expect(header(r!, 'connection')).toBe('close');
    await until(c.sock, 'end', () => c.ended);
    c.sock.end();
    await c.waitClosed();
    await poll(() => (server as unknown as { conns: Set<unknown> }).conns.size === 0);
  });

  it('switchProtocols: the 101 head as given, then the socket with the bytes that came after the request head', async () => {
    const col = collector();
    const { port } = await serve(col.handler);
    const c = await RawClient.connect(port);
    c.send('GET /chat HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: echo\r\n\r\nearly;');
    await until(col.emitter, 'req', () => col.got.length === 1);
    const { req, res } = col.got[0]!;
    expect(req.upgrade).toBe(true);
    let closed = 0;
    res.on('close', () => closed++);
    await settle();
    const { socket, head } = res.switchProtocols(['Upgrade', 'echo', 'Connection', 'Upgrade']);
    expect(Buffer.concat(head).toString()).toBe('early;');
    expect(() => res.switchProtocols([])).toThrow();
    // The caller owns the bytes now: echo them back, the held ones first.
    socket.write(Buffer.concat([Buffer.from('<'), ...head]));
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('end', () => socket.end()); // a half-open socket is the caller's to close too
    startReading(socket);
    c.send('later');
    await poll(() => c.text.endsWith('later')).catch((e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(c.text)}`); });
    expect(c.text).toBe('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n<early;later');
    // Nothing of HTTP is left on the connection: no idle sweep, no parse of the bytes, 'close' only at the socket's close.
    await new Promise((r) => setTimeout(r, 1200));
    expect(c.closed).toBe(false);
    expect(closed).toBe(0);
    c.sock.destroy();
    await poll(() => closed === 1);
  });

  it('an upgrade with a body, on HTTP/1.0, or behind a pipelined request is a plain request (req.upgrade false)', async () => {
    const flags: boolean[] = [];
    // '/first' is answered later, so the upgrade behind it arrives with a response still in flight.
    const { port } = await serve((req, res) => { flags.push(req.upgrade); if (req.url === '/first') setTimeout(() => echoUrl(req, res), 50); else echoUrl(req, res); });
    for (const raw of [
      'POST /b HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 2\r\n\r\nhi',
      'GET /h10 HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
      'GET /first HTTP/1.1\r\n\r\nGET /piped HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
    ]) {
      const c = await RawClient.connect(port);
      c.send(raw);
      await c.waitClosed();
    }
    expect(flags).toEqual([false, false, false, false]);
  });

  it('switchProtocols from inside the handler call works: a read is parsed whole before its requests are handled', async () => {
    let head: Buffer[] | undefined;
    const { port } = await serve((_req, res) => {
      const sw = res.switchProtocols(['Connection', 'Upgrade', 'Upgrade', 'websocket']);
      head = sw.head;
      sw.socket.end('tunnel');
    });
    const c = await RawClient.connect(port);
    c.send('GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nafter-head');
    await c.waitClosed();
    expect(c.text).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\ntunnel$/);
    expect(Buffer.concat(head ?? []).toString()).toBe('after-head');
  });
});

describe('response lifecycle', () => {
  it("'close' fires once after the response is written", async () => {
    let closes = 0;
    let finishedAtClose: boolean | undefined;
    const { port } = await serve((req, res) => {
      res.on('close', () => { closes++; finishedAtClose = res.finished; });
      res.once('close', () => closes++);
      echoUrl(req, res);
    });
    const c = await RawClient.connect(port);
    c.send('GET / HTTP/1.1\r\n\r\n');
    await c.responses(1);
    await new Promise((r) => setImmediate(r));
    c.sock.destroy();
    await settle();
    expect(closes).toBe(2); // two listeners, one event
    expect(finishedAtClose).toBe(true);
  });

  it("'close' fires once, with destroyed set, when the client resets before the response", async () => {
    let res: Http1Response | undefined;
    let closes = 0;
    const { port } = await serve((_req, r) => { res = r; r.on('close', () => closes++); });
    const c = await RawClient.connect(port);
    c.send('GET / HTTP/1.1\r\n\r\n');
    await poll(() => res !== undefined);
    c.sock.resetAndDestroy();
    await poll(() => closes > 0);
    await settle();
    expect(closes).toBe(1);
    expect(res!.destroyed).toBe(true);
    expect(res!.write('late')).toBe(false);
    res!.end('late'); // a no-op, not a throw
    expect(closes).toBe(1);
  });

  it("write() returns false when the client does not read, and 'drain' follows once it does", async () => {
    let res: Http1Response | undefined;
    const { port } = await serve((_req, r) => { res = r; r.writeHead(200, []); });
    const c = await RawClient.connect(port);
    c.sock.pause();
    c.send('GET / HTTP/1.1\r\n\r\n');
    await poll(() => res !== undefined);
    const chunk = Buffer.alloc(256 * 1024, 1);
    let writes = 0;
    while (res!.write(chunk)) if (++writes > 4096) throw new Error('never saw backpressure');
    let drained = false;
    res!.once('drain', () => { drained = true; });
    c.sock.resume();
    await until(c.sock, 'data', () => drained, 5000);
    res!.end();
    const [r] = await c.responses(1, { ms: 5000 });
    expect(r!.body.length).toBe((writes + 1) * chunk.length);
  });

  it('a handler that throws: handlerError is emitted and the connection is destroyed', async () => {
    const { server, port } = await serve(() => { throw new Error('boom'); });
    const errs: unknown[] = [];
    server.on('handlerError', (e) => errs.push(e));
    const c = await RawClient.connect(port);
    c.send('GET / HTTP/1.1\r\n\r\n');
    await c.waitClosed();
    expect((errs[0] as Error).message).toBe('boom');
  });

  it('res.destroy() closes the connection mid-response', async () => {
    const { port } = await serve((_req, res) => {
      res.writeHead(200, ['Content-Length', '100']);
      res.write('part');
      setImmediate(() => res.destroy());
    });
    const c = await RawClient.connect(port);
    c.send('GET / HTTP/1.1\r\n\r\n');
    await c.waitClosed();
    expect(c.text).toContain('part');
  });
});

describe('half-close and drain', () => {
  it('a client that sends its request and FIN before the answer has gone away: the response closes (the proxy abandons the work, as Envoy and nginx do) and so does the connection', async () => {
    const col = collector();
    const { port } = await serve(col.handler);
    const c = await RawClient.connect(port, { allowHalfOpen: true });
    c.send('GET /a HTTP/1.1\r\n\r\n');
    c.sock.end();
    await until(col.emitter, 'req', () => col.got.length === 1);
    const res = col.got[0]!.res;
    let closed = false;
    res.on('close', () => { closed = true; });
    await c.waitClosed();
    await poll(() => closed, 3000, 'the response closed');
    expect(res.destroyed).toBe(true);
    // A late answer from the handler is ignored, not an error.
    res.writeHead(200, ['Content-Length', '2']);
    res.end('ok');
    expect(c.received.length).toBe(0);
  });

  it('a client that sends its request and FIN after the answer was written gets the whole answer, then the close', async () => {
    const col = collector();
    const { port } = await serve(col.handler);
    const c = await RawClient.connect(port, { allowHalfOpen: true });
    c.send('GET /a HTTP/1.1\r\n\r\n');
    await until(col.emitter, 'req', () => col.got.length === 1);
    col.got[0]!.res.writeHead(200, ['Content-Length', '2']);
    col.got[0]!.res.end('ok');
    const [r] = await c.responses(1);
    c.sock.end();
    await c.waitClosed();
    expect(r!.body.toString()).toBe('ok');
  });

  it('closeIdleConnections: idle connections close at once, busy ones answer with Connection: close and then close', async () => {
    const col = collector();
    const { server, port } = await serve(col.handler);
    const idle = await RawClient.connect(port);
    const busy = await RawClient.connect(port);
    idle.send('GET /i HTTP/1.1\r\n\r\n');
    await until(col.emitter, 'req', () => col.got.length === 1);
    col.got[0]!.res.writeHead(200, ['Content-Length', '0']);
    col.got[0]!.res.end();
    await idle.responses(1);
    busy.send('GET /b HTTP/1.1\r\n\r\n');
    await until(col.emitter, 'req', () => col.got.length === 2);
    server.closeIdleConnections();
    await idle.waitClosed();
    expect(busy.closed).toBe(false);
    col.got[1]!.res.writeHead(200, ['Content-Length', '0']);
    col.got[1]!.res.end();
    const [r] = await busy.responses(1);
    expect(header(r!, 'connection')).toBe('close');
    await busy.waitClosed();
  });

  it('closeIdleConnections: a response whose head already left ends the connection after it (no Connection: close possible)', async () => {
    const col = collector();
    const { server, port } = await serve(col.handler);
    const c = await RawClient.connect(port);
    c.send('GET / HTTP/1.1\r\n\r\n');
    await until(col.emitter, 'req', () => col.got.length === 1);
    col.got[0]!.res.writeHead(200, []);
    col.got[0]!.res.write('a');
    await c.waitText((s) => s.includes('\r\n\r\n'));
    server.closeIdleConnections();
    col.got[0]!.res.end('b');
    await c.waitClosed();
    const [r] = await c.responses(1);
    expect(r!.body.toString()).toBe('ab');
  });

  it('closeIdleConnections: a request whose head was arriving is still answered (with Connection: close)', async () => {
    const { server, port } = await serve(echoUrl);
    const c = await RawClient.connect(port);
    c.send('GET /late HTTP/1.1\r\nHost: a\r\n');
    await settle();
    server.closeIdleConnections();
    c.send('\r\n');
    const [r] = await c.responses(1, { ms: 1000 });
    expect(r!.body.toString()).toBe('/late');
    expect(header(r!, 'connection')).toBe('close');
    await c.waitClosed();
  });
});

describe('many connections', () => {
  it('100 concurrent keep-alive clients, 5 requests each, all answered', async () => {
    const { port } = await serve(echoUrl);
    const clients = await Promise.all(Array.from({ length: 100 }, () => RawClient.connect(port)));
    for (let round = 1; round <= 5; round++) {
      for (const [i, c] of clients.entries()) c.send(`GET /c${i}/r${round} HTTP/1.1\r\n\r\n`);
      await Promise.all(clients.map((c) => c.responses(round)));
    }
    for (const [i, c] of clients.entries()) {
      const rs = await c.responses(5);
      expect(rs.map((r) => r.body.toString())).toEqual([1, 2, 3, 4, 5].map((n) => `/c${i}/r${n}`));
    }
  });
});

describe('stream idle timeout (Envoy stream_idle_timeout)', () => {
  it('a slow POST that stops sending its body: 408 + close; the handler\'s response closes and its body errors', async () => {
    const col = collector();
    const { server, port } = await serve(col.handler, { streamIdleTimeoutMs: 300, headersTimeoutMs: 5000 });
    const c = await RawClient.connect(port);
    c.send('POST /up HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc');
    await until(col.emitter, 'req', () => col.got.length === 1);
    const { req, res } = col.got[0]!;
    let bodyError = false;
    req.body!.on('error', () => { bodyError = true; });
    req.body!.resume();
    const t0 = Date.now();
    await c.waitClosed();
    const [r] = await c.responses(1);
    expect(r!.status).toBe(408);
    expect(header(r!, 'connection')).toBe('close');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expect(res.finished).toBe(true);
    expect(bodyError).toBe(true);
    expect(server.stats.streamIdleTimeouts).toBe(1);
  });

  it('a handler (an upstream) that says nothing: 408; one that answers in time is not cut', async () => {
    const col = collector();
    const { port } = await serve(col.handler, { streamIdleTimeoutMs: 300 });
    const c = await RawClient.connect(port);
    c.send('GET /silent HTTP/1.1\r\n\r\n');
    await c.waitClosed();
    expect((await c.responses(1))[0]!.status).toBe(408);
    const ok = await RawClient.connect(port);
    ok.send('GET /fast HTTP/1.1\r\n\r\n');
    await until(col.emitter, 'req', () => col.got.length === 2);
    setTimeout(() => { col.got[1]!.res.writeHead(200, ['Content-Length', '2']); col.got[1]!.res.end('ok'); }, 100);
    expect((await ok.responses(1))[0]!.status).toBe(200);
  });

  it('a body that keeps trickling in is progress: not cut while bytes move, however slowly', async () => {
    let received = 0;
    const { port } = await serve((req, res) => {
      req.body!.on('data', (d: Buffer) => { received += d.length; });
      req.body!.on('end', () => { res.writeHead(200, ['Content-Length', '2']); res.end('ok'); });
    }, { streamIdleTimeoutMs: 300, headersTimeoutMs: 5000 });
    const c = await RawClient.connect(port);
    c.send('POST /trickle HTTP/1.1\r\nContent-Length: 10\r\n\r\n');
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 120));
      c.send('x');
    }
    const [r] = await c.responses(1);
    expect(r!.status).toBe(200);
    expect(received).toBe(10);
  });

  it('a client that stops reading a large response: the connection is reset once nothing moves', async () => {
    let closed = false;
    const { port } = await serve((_req, res) => {
      res.on('close', () => { closed = true; });
      res.writeHead(200, ['Content-Length', String(64 << 20)]);
      const chunk = Buffer.alloc(1 << 20, 0x61);
      const pump = (): void => {
        while (!closed && res.write(chunk)) { /* until backpressure */ }
        if (!closed) res.once('drain', pump);
      };
      pump();
    }, { streamIdleTimeoutMs: 300 });
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => {});
    await new Promise((r) => sock.once('connect', r));
    sock.write('GET /big HTTP/1.1\r\n\r\n');
    sock.pause(); // never reads
    await poll(() => closed, 5000, 'the response closed');
    sock.destroy();
  });
});
