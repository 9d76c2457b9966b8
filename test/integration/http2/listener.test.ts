// The HTTP/2 side of a listener over real sockets: a connection handed over with its preface already read, streams
// as request/response pairs shaped like HTTP/1's (flat headers, :authority as host, bodies), trailers, flow control
// (a large response to a slow reader), a reset response, and GOAWAY on drain.
import http2 from 'node:http2';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Http2Listener, type Http2Request, type Http2Response } from '../../../src/http2/server.js';

describe('Http2Listener', () => {
  let server: net.Server;
  let listener: Http2Listener;
  let port = 0;
  const seen: Http2Request[] = [];

  beforeAll(async () => {
    listener = new Http2Listener((req: Http2Request, res: Http2Response) => {
      seen.push(req);
      if (req.url === '/reset') { res.writeHead(200, ['content-type', 'text/plain']); res.write('partial'); setTimeout(() => res.destroy(), 10); return; }
      if (req.url === '/big') {
        const chunk = Buffer.alloc(64 * 1024, 0x62);
        let sent = 0;
        res.writeHead(200, ['content-type', 'application/octet-stream', 'Connection', 'keep-alive']);
        const pump = (): void => {
          while (sent < 8 * 1024 * 1024) {
            sent += chunk.length;
            if (!res.write(chunk)) { res.once('drain', pump); return; }
          }
          res.end();
        };
        pump();
        return;
      }
      const hash = createHash('sha256');
      let n = 0;
      if (req.body === null) {
        res.writeHead(200, ['content-type', 'text/plain', 'x-method', req.method, 'x-host', String(req.headers.host)]);
        res.addTrailers({ 'grpc-status': '0', 'grpc-message': 'fine' });
        res.end(`hello ${req.url}`);
        return;
      }
      req.body.on('data', (c: Buffer) => { hash.update(c); n += c.length; });
      req.body.on('end', () => {
        res.writeHead(200, ['x-bytes', String(n)]);
        res.end(hash.digest('hex'));
      });
    });
    // The listener's side of sniffing: the first bytes are read, then handed over with the socket.
    server = net.createServer((sock) => sock.once('data', (d: Buffer) => listener.serveSocket(sock, d, { address: '10.96.0.1', port: 80 })));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });

  afterAll(() => {
    listener.closeAllConnections();
    server.close();
  });

  const request = (client: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<{ headers: http2.IncomingHttpHeaders; body: Buffer; trailers?: http2.IncomingHttpHeaders; error?: string }> =>
    new Promise((resolve) => {
      const s = client.request(headers, { endStream: body === undefined });
      const chunks: Buffer[] = [];
      let rh: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders | undefined;
      s.on('response', (h) => (rh = h));
      s.on('trailers', (t) => (trailers = t));
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => resolve({ headers: rh, body: Buffer.concat(chunks), ...(trailers ? { trailers } : {}) }));
      s.on('error', (e: NodeJS.ErrnoException) => resolve({ headers: rh, body: Buffer.concat(chunks), error: e.code }));
      if (body !== undefined) s.end(body);
    });

  it('serves streams with HTTP/1-shaped requests, trailers and the original destination', async () => {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    const r = await request(client, { ':path': '/a?b=1', ':authority': 'reviews:9080', 'x-custom': 'v' });
    expect(r.headers[':status']).toBe(200);
    expect(r.headers['x-method']).toBe('GET');
    expect(r.headers['x-host']).toBe('reviews:9080');
    expect(r.body.toString()).toBe('hello /a?b=1');
    expect(r.trailers).toMatchObject({ 'grpc-status': '0', 'grpc-message': 'fine' });
    const req = seen.at(-1)!;
    expect(req.rawHeaders.slice(0, 2)).toEqual(['host', 'reviews:9080']);
    expect(req.headers['x-custom']).toBe('v');
    expect(req.httpVersion).toBe('2.0');
    expect(req.originalDst).toEqual({ address: '10.96.0.1', port: 80 });
    expect(req.remoteAddress).toBe('127.0.0.1');
    client.close();
  });

  it('streams request and response bodies with flow control', async () => {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    const up = Buffer.alloc(2 * 1024 * 1024 + 3, 0x33);
    const r = await request(client, { ':method': 'POST', ':path': '/up' }, up);
    expect(r.headers['x-bytes']).toBe(String(up.length));
    expect(r.body.toString()).toBe(createHash('sha256').update(up).digest('hex'));
    const big = await request(client, { ':path': '/big' });
    expect(big.body.length).toBe(8 * 1024 * 1024);
    expect(big.headers.connection).toBeUndefined(); // connection-specific headers are not sent on HTTP/2
    client.close();
  });

  it('resets a stream whose response cannot finish, and says GOAWAY on drain', async () => {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    const r = await request(client, { ':path': '/reset' });
    expect(r.error).toBe('ERR_HTTP2_STREAM_ERROR');
    expect(r.body.toString()).toBe('partial');
    const goaway = new Promise<void>((resolve) => client.once('goaway', () => resolve()));
    listener.closeIdleConnections();
    await goaway;
  });
});
