// HTTP/1.1 → HTTP/2 by `Upgrade: h2c` (RFC 7540 §3.2) on the outbound port, through the real CLI: the request that
// asks for it is answered 101 and then as HTTP/2 stream 1, further requests on the connection are HTTP/2 streams, and
// an upgrade that must not be taken (a body: RFC 7540 §3.2 lets the server ignore it) is served as HTTP/1.1.
import { execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HpackDecoder, HpackEncoder } from '../../../src/http2/hpack.js';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { fakeUpstream, type FakeUpstream, type SeenRequest } from '../../support/fake-upstream.js';
import { FLAG, FRAME, frame, PREFACE, settingsFrame } from '../../support/h2-raw.js';

const HOST = 'web.h2c.test';
const run = promisify(execFile);


/** Reads an upgraded connection: the HTTP/1.1 head first, then HTTP/2 frames. */
class Upgraded {
  head = '';
  frames: Array<{ type: number; flags: number; id: number; payload: Buffer }> = [];
  closed = false;
  private buf = Buffer.alloc(0);
  private inH2 = false;
  constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      if (!this.inH2) {
        const end = this.buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        this.head = this.buf.subarray(0, end).toString('latin1');
        this.buf = this.buf.subarray(end + 4);
        this.inH2 = true;
      }
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        this.frames.push({ type: this.buf[3]!, flags: this.buf[4]!, id: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) });
        this.buf = this.buf.subarray(9 + len);
      }
    });
    sock.on('close', () => { this.closed = true; });
    sock.on('error', () => {});
  }

  async until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; head ${JSON.stringify(this.head)}, frames ${JSON.stringify(this.frames.map((f) => [f.type, f.flags, f.id]))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** A stream's response: the decoded first header block and the body. */
  response(id: number, dec: HpackDecoder): { headers: Record<string, string>; body: string } {
    const headers: Record<string, string> = {};
    let body = '';
    let first = true;
    for (const f of this.frames) {
      if (f.id !== id) continue;
      if (f.type === FRAME.HEADERS && first) {
        first = false;
        const flat = dec.decode(f.payload);
        for (let i = 0; i < flat.length; i += 2) headers[flat[i]!] = flat[i + 1]!;
      } else if (f.type === FRAME.DATA) {
        body += f.payload.toString();
      }
    }
    return { headers, body };
  }

  ended(id: number): boolean {
    return this.frames.some((f) => f.id === id && (f.type === FRAME.DATA || f.type === FRAME.HEADERS) && (f.flags & FLAG.END_STREAM) !== 0);
  }
}

/** base64url of a SETTINGS payload: one setting, INITIAL_WINDOW_SIZE. */
function http2Settings(window: number): string {
  const p = Buffer.alloc(6);
  p.writeUInt16BE(0x4, 0);
  p.writeUInt32BE(window, 2);
  return p.toString('base64url');
}

describe('h2c upgrade on the outbound port', () => {
  let upstream: FakeUpstream;
  let proxy: RunningProxy;
  const seen = (): SeenRequest[] => upstream.requests;

  beforeAll(async () => {
    // Answers every request with what it got: `METHOD /path <body length>`.
    upstream = await fakeUpstream().route('*', 200, (r) => `${r.method} ${r.url} ${r.body.length}`, { 'content-type': 'text/plain' }).start();
    const port = upstream.port;
    proxy = await startProxy({
      'web.yaml': `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: web, namespace: default }
spec:
  hosts: [${HOST}]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${port} } }]
`,
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  it('answers 101, then the request as HTTP/2 stream 1; the next request on the connection is stream 3', async () => {
    const sock = net.connect(proxy.info.outbound, '127.0.0.1');
    await new Promise<void>((r, j) => { sock.once('connect', r); sock.once('error', j); });
    const c = new Upgraded(sock);
    try {
      sock.write(`GET /first?x=1 HTTP/1.1\r\nHost: ${HOST}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: ${http2Settings(1 << 20)}\r\nX-Test: one\r\n\r\n`);
      await c.until(() => c.head !== '', 'the 101');
      expect(c.head).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
      expect(c.head.toLowerCase()).toContain('upgrade: h2c');
      // The client's preface and SETTINGS follow the 101 (RFC 7540 §3.5); the server's SETTINGS come first.
      sock.write(Buffer.concat([PREFACE, settingsFrame(), frame(FRAME.SETTINGS, FLAG.ACK, 0)]));
      await c.until(() => c.ended(1), 'the response on stream 1');
      expect(c.frames[0]!.type).toBe(FRAME.SETTINGS);
      const dec = new HpackDecoder();
      const r1 = c.response(1, dec);
      expect(r1.headers[':status']).toBe('200');
      expect(r1.body).toBe('GET /first?x=1 0');
      const first = seen().at(-1)!;
      expect(first.url).toBe('/first?x=1');
      expect(first.headers['x-test']).toBe('one');
      expect(first.headers.host).toBe(HOST);
      // The upgrade's own headers are the hop's, never the upstream's.
      expect(first.headers.upgrade).toBeUndefined();
      expect(first.headers['http2-settings']).toBeUndefined();
      expect(String(first.headers.connection ?? '')).not.toMatch(/upgrade|http2-settings/i);

      // A second request on the same connection, as an HTTP/2 stream with a body.
      const enc = new HpackEncoder();
      const block = enc.encode([':method', 'POST', ':scheme', 'http', ':path', '/second', ':authority', HOST, 'content-type', 'text/plain']);
      sock.write(Buffer.concat([frame(FRAME.HEADERS, FLAG.END_HEADERS, 3, block), frame(FRAME.DATA, FLAG.END_STREAM, 3, Buffer.from('hello'))]));
      await c.until(() => c.ended(3), 'the response on stream 3');
      const r3 = c.response(3, dec);
      expect(r3.headers[':status']).toBe('200');
      expect(r3.body).toBe('POST /second 5');
      expect(seen().at(-1)!.body).toBe('hello');
      expect(c.closed).toBe(false);
    } finally {
      sock.destroy();
    }
  });

  it('an h2c upgrade with a body is not taken: served as HTTP/1.1, the Upgrade not passed on', async () => {
    const sock = net.connect(proxy.info.outbound, '127.0.0.1');
    await new Promise<void>((r, j) => { sock.once('connect', r); sock.once('error', j); });
    let text = '';
    sock.on('data', (d: Buffer) => { text += d.toString('latin1'); });
    try {
      sock.write(`POST /with-body HTTP/1.1\r\nHost: ${HOST}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: ${http2Settings(65535)}\r\nContent-Length: 3\r\n\r\nabc`);
      const deadline = Date.now() + 5000;
      while (!text.includes('POST /with-body 3') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(text).toMatch(/^HTTP\/1\.1 200 /);
      expect(text).toContain('POST /with-body 3');
      expect(seen().at(-1)!.headers.upgrade).toBeUndefined();
    } finally {
      sock.destroy();
    }
  });

  it('curl --http2 (an h2c upgrade) gets its answer over HTTP/2', async () => {
    let version = '';
    try { version = (await run('curl', ['-V'])).stdout; } catch { /* no curl */ }
    if (!/HTTP2/.test(version)) {
      console.warn('skipped: no curl with HTTP/2 support on this machine');
      return;
    }
    const { stdout, stderr } = await run('curl', ['-sS', '-v', '--http2', '--max-time', '5', '-H', `Host: ${HOST}`, proxy.url('/curl')]);
    expect(stderr).toMatch(/< HTTP\/1\.1 101 Switching Protocols/);
    expect(stderr).toMatch(/< HTTP\/2 200/);
    expect(stdout).toBe('GET /curl 0');
  });
});
