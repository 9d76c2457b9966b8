// `Expect: 100-continue` is answered once, by the upstream: Remora forwards the expectation and relays the upstream's
// `100 Continue` (Envoy's proxy_100_continue), never sending one of its own, so a client whose upload the upstream
// refuses sends nothing (curl: 0 bytes, as direct; it uploaded 5.5 MB through Remora before). A response that leaves
// before the request body has all arrived closes the HTTP/1 connection (Envoy's HCM: `Connection: close`). On both
// listeners, HTTP/1.1 and HTTP/2, through the real CLI.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { waitFor } from '../../support/wait-for.js';
import { serviceEntry } from '../resilience/helpers.js';

/** An upstream that decides what to do with an expectation; every request's headers and body bytes recorded. */
class ExpectingUpstream {
  readonly server: http.Server;
  readonly seen: Array<{ url: string; expect: string | undefined; body: string }> = [];
  bodyBytes = 0;
  port = 0;
  constructor(onExpect: (req: IncomingMessage, res: ServerResponse, up: ExpectingUpstream) => void) {
    this.server = http.createServer((req, res) => this.finish(req, res));
    // With a 'checkContinue' listener node:http sends no 100 by itself: the handler decides.
    this.server.on('checkContinue', (req, res) => onExpect(req, res, this));
  }
  /** Read the whole body, then answer 200 with it. */
  finish(req: IncomingMessage, res: ServerResponse): void {
    let body = '';
    req.on('data', (d: Buffer) => { body += d.toString(); this.bodyBytes += d.length; });
    req.on('end', () => {
      this.seen.push({ url: req.url ?? '', expect: req.headers.expect, body });
      res.writeHead(200, { 'content-length': String(body.length) });
      res.end(body);
    });
  }
  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }
  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }
}

// Says 100 Continue, then reads the body.
const willing = new ExpectingUpstream((req, res, up) => { res.writeContinue(); up.finish(req, res); });
// Refuses at once with 413, without a 100.
const refusing = new ExpectingUpstream((req, res, up) => {
  up.seen.push({ url: req.url ?? '', expect: req.headers.expect, body: '' });
  req.on('data', (d: Buffer) => { up.bodyBytes += d.length; });
  res.writeHead(413, { 'content-length': '0' });
  res.end();
});
// Never says 100 (an upstream that ignores Expect): reads the body whenever it comes.
const silent = new ExpectingUpstream((req, res, up) => up.finish(req, res));
// Says 100, reads the first chunk, then refuses with 413.
const late = new ExpectingUpstream((req, res, up) => {
  res.writeContinue();
  req.once('data', (d: Buffer) => { up.bodyBytes += d.length; res.writeHead(413, { 'content-length': '0' }); res.end(); });
});

let proxy: RunningProxy;
let closedPort = 0;

beforeAll(async () => {
  await Promise.all([willing.start(), refusing.start(), silent.start(), late.start()]);
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  closedPort = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  proxy = await startProxy({
    'mesh.yaml': [
      serviceEntry('willing', [{ port: willing.port }]),
      serviceEntry('refusing', [{ port: refusing.port }]),
      serviceEntry('silent', [{ port: silent.port }]),
      serviceEntry('late', [{ port: late.port }]),
      serviceEntry('gone', [{ port: closedPort }]),
    ].join('---\n'),
  }, ['--app-port', String(willing.port)]);
});

afterAll(async () => {
  await proxy?.stop();
  for (const u of [willing, refusing, silent, late]) u.close();
});

/** A raw HTTP/1.1 connection: what the proxy sent, whether it closed. */
function raw(port: number): { s: net.Socket; text: () => string; closed: () => boolean } {
  const s = net.connect(port, '127.0.0.1');
  let text = '';
  let closed = false;
  s.on('data', (d: Buffer) => { text += d.toString('latin1'); });
  s.on('error', () => {});
  s.on('close', () => { closed = true; });
  return { s, text: () => text, closed: () => closed };
}

/** A whole response with a Content-Length at the start of `t`. */
function complete(t: string): boolean {
  const end = t.indexOf('\r\n\r\n');
  const m = /content-length: (\d+)/i.exec(t.slice(0, end));
  return end >= 0 && m !== null && t.length >= end + 4 + Number(m[1]);
}

describe("Expect: 100-continue is forwarded and the upstream's answer relayed", () => {
  for (const listener of ['outbound', 'inbound'] as const) {
    it(`${listener}: the upstream's 100 Continue reaches the client once, then the body goes through`, async () => {
      const n0 = willing.seen.length;
      const c = raw(listener === 'outbound' ? proxy.info.outbound : proxy.info.inbound);
      c.s.write('POST /upload HTTP/1.1\r\nhost: willing\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n');
      await waitFor(() => c.text().includes('\r\n\r\n'), { what: 'an answer to the head' });
      expect(c.text()).toBe('HTTP/1.1 100 Continue\r\n\r\n');
      c.s.write('hello');
      await waitFor(() => complete(c.text().slice(25)), { what: 'the final response' });
      c.s.destroy();
      expect(c.text().split('100 Continue').length - 1).toBe(1);
      expect(c.text().slice(25)).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nhello$/);
      expect(willing.seen.slice(n0)).toEqual([{ url: '/upload', expect: '100-continue', body: 'hello' }]);
    });
  }

  it('an upstream that refuses with 413: no 100 reaches the client, which sends nothing (was: 100 at once from Remora)', async () => {
    const b0 = refusing.bodyBytes;
    const c = raw(proxy.info.outbound);
    c.s.write(`PUT /big HTTP/1.1\r\nhost: refusing\r\ncontent-length: ${5 << 20}\r\nexpect: 100-continue\r\n\r\n`);
    await waitFor(() => c.text().includes('\r\n\r\n'), { what: 'an answer to the head' });
    expect(c.text()).toMatch(/^HTTP\/1\.1 413 /);
    expect(c.text().toLowerCase()).toContain('connection: close');
    await waitFor(() => c.closed(), { what: 'the proxy to close the connection' });
    expect(refusing.bodyBytes).toBe(b0);
  });

  it('curl -T of 5.5 MB to an upstream that refuses: 0 bytes uploaded, as direct (was: all 5.5 MB)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-expect-'));
    try {
      const file = join(dir, 'big.bin');
      writeFileSync(file, Buffer.alloc(5_500_000));
      const curl = (url: string, host?: string): Promise<string> => new Promise((resolve, reject) => {
        execFile('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_upload}', '-T', file, ...(host ? ['-H', `Host: ${host}`] : []), url], { timeout: 15_000 }, (err, out) => (err ? reject(err) : resolve(out)));
      });
      expect(await curl(`http://127.0.0.1:${refusing.port}/direct`)).toBe('413 0');
      expect(await curl(`http://127.0.0.1:${proxy.info.outbound}/proxied`, 'refusing')).toBe('413 0');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an upstream that never says 100: nor does Remora; the body sent anyway is served', async () => {
    const c = raw(proxy.info.outbound);
    c.s.write('POST /quiet HTTP/1.1\r\nhost: silent\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n');
    // What a client does after its expect timeout (curl: 1 s): sends the body without a 100.
    await new Promise((r) => setTimeout(r, 300));
    expect(c.text()).toBe('');
    c.s.write('quiet');
    await waitFor(() => complete(c.text()), { what: 'the response' });
    c.s.destroy();
    expect(c.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nquiet$/);
  });

  it('a local reply (503 UF: the upstream refuses the connection): no 100, Connection: close', async () => {
    const c = raw(proxy.info.outbound);
    c.s.write('POST / HTTP/1.1\r\nhost: gone\r\ncontent-length: 100000\r\nexpect: 100-continue\r\n\r\n');
    await waitFor(() => c.text().includes('\r\n\r\n'), { what: 'the answer' });
    expect(c.text()).toMatch(/^HTTP\/1\.1 503 /);
    expect(c.text().toLowerCase()).toContain('connection: close');
    await waitFor(() => c.closed(), { what: 'the proxy to close the connection' });
  });

  it('HTTP/2: the upstream 100 is relayed as a :status 100 header block; expect reaches the upstream', async () => {
    const n0 = willing.seen.length;
    const session = http2.connect(`http://127.0.0.1:${proxy.info.outbound}`);
    try {
      const st = session.request({ ':method': 'POST', ':path': '/h2', ':authority': 'willing', expect: '100-continue' }, { endStream: false });
      let continued = false;
      let status = 0;
      st.on('continue', () => { continued = true; st.end('over h2'); });
      st.on('response', (h) => { status = Number(h[':status']); });
      st.on('error', () => {});
      st.resume();
      await waitFor(() => continued, { timeoutMs: 3000, what: 'a 100 header block' });
      await waitFor(() => status !== 0, { what: 'the response' });
      expect(status).toBe(200);
      await waitFor(() => willing.seen.length === n0 + 1, { what: 'the upstream' });
      expect(willing.seen[n0]).toEqual({ url: '/h2', expect: '100-continue', body: 'over h2' });
    } finally {
      session.close();
    }
  });

  it('HTTP/2 to an upstream that refuses: the 413 with no 100 before it', async () => {
    const session = http2.connect(`http://127.0.0.1:${proxy.info.outbound}`);
    try {
      const st = session.request({ ':method': 'PUT', ':path': '/h2big', ':authority': 'refusing', expect: '100-continue' }, { endStream: false });
      let continued = false;
      let status = 0;
      st.on('continue', () => { continued = true; });
      st.on('response', (h) => { status = Number(h[':status']); });
      st.on('error', () => {});
      st.resume();
      await waitFor(() => status !== 0, { what: 'the response' });
      expect(status).toBe(413);
      expect(continued).toBe(false);
    } finally {
      session.close();
    }
  });
});

describe('a response before the whole request body closes the HTTP/1 connection', () => {
  it('an upstream 413 after 100 and a first chunk comes with Connection: close, and the proxy closes', async () => {
    const c = raw(proxy.info.outbound);
    c.s.write(`POST /big HTTP/1.1\r\nhost: late\r\ncontent-length: ${5 << 20}\r\nexpect: 100-continue\r\n\r\n`);
    await waitFor(() => c.text() === 'HTTP/1.1 100 Continue\r\n\r\n', { what: 'the relayed 100 Continue' });
    // A client that honours the answer: it sends the first 64 KiB and then only reads (curl stops sending once a
    // final response says the connection closes).
    c.s.write(Buffer.alloc(64 << 10, 0x61));
    await waitFor(() => c.text().includes('413'), { what: 'the 413' });
    expect(c.text().slice(c.text().indexOf('HTTP/1.1 413')).toLowerCase()).toContain('connection: close');
    await waitFor(() => c.closed(), { what: 'the proxy to close the connection' });
  });
});
