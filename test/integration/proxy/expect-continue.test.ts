// `Expect: 100-continue` is answered once, by Remora, as Envoy does by default (proxy_100_continue off): the client
// gets `100 Continue` from the proxy at once and the upstream never sees `Expect`; a response that leaves before the
// request body has all arrived closes the HTTP/1 connection (Envoy's HCM: `Connection: close`), so a client such as
// curl stops uploading instead of sending the rest of a body no one reads. On both listeners, HTTP/1.1 and HTTP/2.
// Through the real CLI with a recording upstream.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { RecordingUpstream } from '../../support/recording-upstream.js';
import { waitFor } from '../../support/wait-for.js';
import { serviceEntry } from '../resilience/helpers.js';

let rec: RecordingUpstream;
let refusing: http.Server;
let refusedBytes = 0;
let proxy: RunningProxy;

beforeAll(async () => {
  rec = await new RecordingUpstream().start();
  // Answers 413 as soon as a head arrives, without reading the body (as an upload endpoint with a size limit does).
  refusing = http.createServer((req, res) => {
    req.on('data', (d: Buffer) => { refusedBytes += d.length; });
    res.writeHead(413, { 'content-length': '0' });
    res.end();
  });
  await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', r));
  const refusingPort = (refusing.address() as net.AddressInfo).port;
  proxy = await startProxy({
    'mesh.yaml': [serviceEntry('svc', [{ port: rec.port }]), serviceEntry('small', [{ port: refusingPort }])].join('---\n'),
  }, ['--app-port', String(rec.port)]);
});

afterAll(async () => {
  await proxy?.stop();
  await rec?.stop();
  refusing?.closeAllConnections();
  refusing?.close();
});

/** A raw HTTP/1.1 exchange: head, wait for `100 Continue`, then the body; everything the proxy sent back. */
async function uploadWithExpect(port: number, host: string, body: string): Promise<{ text: string; continues: number }> {
  const s = net.connect(port, '127.0.0.1');
  let text = '';
  s.on('data', (d: Buffer) => { text += d.toString('latin1'); });
  s.on('error', () => {});
  s.write(`POST /upload HTTP/1.1\r\nhost: ${host}\r\ncontent-length: ${body.length}\r\nexpect: 100-continue\r\n\r\n`);
  await waitFor(() => text.includes('\r\n\r\n'), { what: 'an answer to the head' });
  expect(text).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\n$/);
  s.write(body);
  await waitFor(() => complete(text.slice(text.indexOf('\r\n\r\n') + 4)), { what: 'the final response' });
  s.destroy();
  return { text, continues: text.split('100 Continue').length - 1 };
}

/** A whole response with a Content-Length at the start of `t`. */
function complete(t: string): boolean {
  const end = t.indexOf('\r\n\r\n');
  const m = /content-length: (\d+)/i.exec(t.slice(0, end));
  return end >= 0 && m !== null && t.length >= end + 4 + Number(m[1]);
}

function expectHeader(req: { headers: Array<[string, string]> }): string | undefined {
  return req.headers.find(([k]) => k.toLowerCase() === 'expect')?.[1];
}

describe('Expect: 100-continue is answered by Remora and not forwarded', () => {
  for (const listener of ['outbound', 'inbound'] as const) {
    it(`${listener}: one 100 Continue from the proxy, the body forwarded, no Expect upstream`, async () => {
      rec.reset();
      const port = listener === 'outbound' ? proxy.info.outbound : proxy.info.inbound;
      const { text, continues } = await uploadWithExpect(port, 'svc', 'hello');
      expect(continues).toBe(1);
      expect(text).toMatch(/\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
      expect(rec.requests).toHaveLength(1);
      expect(rec.requests[0]!.body.toString()).toBe('hello');
      expect(expectHeader(rec.requests[0]!)).toBeUndefined();
    });
  }

  it('HTTP/2: the proxy sends a 100 HEADERS frame and strips expect', async () => {
    rec.reset();
    const c = http2.connect(`http://127.0.0.1:${proxy.info.outbound}`);
    try {
      const st = c.request({ ':method': 'POST', ':path': '/h2', ':authority': 'svc', expect: '100-continue' }, { endStream: false });
      let continued = false;
      let status = 0;
      st.on('continue', () => { continued = true; st.end('over h2'); });
      st.on('response', (h) => { status = Number(h[':status']); });
      st.on('error', () => {});
      st.resume();
      await waitFor(() => continued, { timeoutMs: 3000, what: 'a 100 HEADERS frame' });
      await waitFor(() => status !== 0, { what: 'the response' });
      expect(status).toBe(200);
      await waitFor(() => rec.requests.length === 1);
      expect(rec.requests[0]!.body.toString()).toBe('over h2');
      expect(expectHeader(rec.requests[0]!)).toBeUndefined();
    } finally {
      c.close();
    }
  });
});

describe('a response before the whole request body closes the HTTP/1 connection', () => {
  it('an upstream 413 to a 5 MB upload after 100 Continue comes with Connection: close, and the proxy closes', async () => {
    refusedBytes = 0;
    const s = net.connect(proxy.info.outbound, '127.0.0.1');
    let text = '';
    let closed = false;
    s.on('data', (d: Buffer) => { text += d.toString('latin1'); });
    s.on('error', () => {});
    s.on('close', () => { closed = true; });
    s.write(`POST /big HTTP/1.1\r\nhost: small\r\ncontent-length: ${5 << 20}\r\nexpect: 100-continue\r\n\r\n`);
    await waitFor(() => text.startsWith('HTTP/1.1 100 Continue\r\n\r\n'), { what: '100 Continue' });
    // A client that honours the answer: it sends the first 64 KiB and then only reads (curl stops sending once a
    // final response says the connection closes).
    s.write(Buffer.alloc(64 << 10, 0x61));
    await waitFor(() => text.includes('413'), { what: 'the 413' });
    const head = text.slice(text.indexOf('HTTP/1.1 413'));
    expect(head.toLowerCase()).toContain('connection: close');
    await waitFor(() => closed, { timeoutMs: 5000, what: 'the proxy to close the connection' });
    expect(refusedBytes).toBeLessThan(5 << 20);
  });

  it('a local reply (503 UF: the upstream refuses the connection) to an Expect upload also closes', async () => {
    const s = net.connect(proxy.info.outbound, '127.0.0.1');
    let text = '';
    let closed = false;
    s.on('data', (d: Buffer) => { text += d.toString('latin1'); });
    s.on('error', () => {});
    s.on('close', () => { closed = true; });
    s.write('POST / HTTP/1.1\r\nhost: 127.0.0.1:1\r\ncontent-length: 100000\r\nexpect: 100-continue\r\n\r\n');
    await waitFor(() => /HTTP\/1\.1 [2-5]\d\d /.test(text.replace('HTTP/1.1 100 Continue', '')), { what: 'the final answer' });
    expect(text.startsWith('HTTP/1.1 100 Continue\r\n\r\n')).toBe(true);
    expect(text.slice(25).toLowerCase()).toContain('connection: close');
    await waitFor(() => closed, { timeoutMs: 5000, what: 'the proxy to close the connection' });
  });
});
