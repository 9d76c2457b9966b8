// The stream timeouts are policy, not HTTP/1's alone: through the real CLI with `--stream-idle-timeout 1s` and
// `--request-headers-timeout 1s`, raw HTTP/2 frames show a silent stream answered 408 (unanswered) or reset (answer
// under way), a header block that never ends closing its connection with GOAWAY, and the route timeout (the request
// timeout) ending an HTTP/2 stream with 504 as it ends an HTTP/1 request, while a well-behaved client is served.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { FLAG, FRAME, frame, headerBlock, RawH2, requestHeaders } from '../../support/h2-raw.js';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { waitFor } from '../../support/wait-for.js';
import { serviceEntry } from '../resilience/helpers.js';

let up: FakeUpstream;
let proxy: RunningProxy;
const conns: RawH2[] = [];

beforeAll(async () => {
  up = await fakeUpstream().id('up').route('/ok', 200, 'ok').start();
  // /stall: the answer starts (headers and 5 bytes), then nothing more; /hang: never answered.
  up.behave((req, res) => {
    if (req.url === '/stall') { res.writeHead(200, { 'content-length': '100' }); res.write('hello'); return 'handled'; }
    if (req.url === '/hang') return 'handled';
    return undefined;
  });
  const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: slow, namespace: default}
spec:
  hosts: [slow]
  http:
  - timeout: 500ms
    route: [{destination: {host: svc}}]
`;
  proxy = await startProxy({ 'mesh.yaml': [serviceEntry('svc', [{ port: up.port }]), vs].join('---\n') }, ['--stream-idle-timeout', '1s', '--request-headers-timeout', '1s', '--access-log', 'stdout']);
});

afterAll(async () => {
  for (const c of conns) c.destroy();
  await proxy?.stop();
  await up?.close();
});

async function connect(): Promise<RawH2> {
  const c = await RawH2.connect(proxy.info.outbound);
  conns.push(c);
  return c;
}

async function metric(name: string): Promise<number> {
  const m = new RegExp(`^${name}\\{listener="outbound"\\} (\\S+)$`, 'm').exec((await proxy.admin('/stats/prometheus')).body);
  return m === null ? 0 : Number(m[1]);
}

const ended = (c: RawH2, id: number): boolean => c.streamFrames(id).some((f) => f.type === FRAME.RST_STREAM || ((f.type === FRAME.DATA || f.type === FRAME.HEADERS) && (f.flags & FLAG.END_STREAM) !== 0));

describe('HTTP/2 streams get the stream idle timeout', () => {
  it('a POST whose body stops: 408 on the stream after ~1 s of silence, recorded as SI; the connection serves on', async () => {
    const before = await metric('remora_http2_stream_idle_timeouts_total');
    const c = await connect();
    const t0 = Date.now();
    c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, requestHeaders('svc', '/upload', 'POST', [['content-length', '8192']])));
    c.write(frame(FRAME.DATA, 0, 1, Buffer.from('0123456789')));
    await waitFor(() => ended(c, 1), { timeoutMs: 5000, what: 'stream 1 to end' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(c.statuses(1)).toEqual([408]);
    expect(await metric('remora_http2_stream_idle_timeouts_total')).toBe(before + 1);
    await waitFor(() => / 408 SI /.test(proxy.stdout), { what: 'the access-log line' });
    // The connection itself is fine: the next stream is served.
    c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, requestHeaders('svc', '/ok')));
    await waitFor(() => ended(c, 3), { what: 'stream 3' });
    expect(c.statuses(3)).toEqual([200]);
    expect(c.closed).toBe(false);
  });

  it('a response that stops half-way: RST_STREAM after ~1 s of silence', async () => {
    const c = await connect();
    c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestHeaders('svc', '/stall')));
    await waitFor(() => c.statuses(1).length === 1, { what: 'the response headers' });
    expect(c.statuses(1)).toEqual([200]);
    await waitFor(() => c.streamFrames(1).some((f) => f.type === FRAME.RST_STREAM), { timeoutMs: 5000, what: 'RST_STREAM' });
    expect(c.streamFrames(1).some((f) => (f.flags & FLAG.END_STREAM) !== 0)).toBe(false);
  });

  it('the route timeout (the request timeout) ends an HTTP/2 stream with 504, as it does an HTTP/1 request', async () => {
    const c = await connect();
    c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestHeaders('slow', '/hang')));
    await waitFor(() => ended(c, 1), { timeoutMs: 5000, what: 'stream 1 to end' });
    expect(c.statuses(1)).toEqual([504]);
  });
});

describe('HTTP/1 requests, for comparison: the same policy, the same record', () => {
  it('a POST whose body stops: 408 + close after ~1 s, recorded as 408 SI (was: 0 DC)', async () => {
    const s = net.connect(proxy.info.outbound, '127.0.0.1');
    let text = '';
    let closed = false;
    s.on('data', (d: Buffer) => { text += d.toString('latin1'); });
    s.on('error', () => {});
    s.on('close', () => { closed = true; });
    s.write('POST /h1-upload HTTP/1.1\r\nhost: svc\r\ncontent-length: 8192\r\n\r\n0123456789');
    await waitFor(() => closed, { timeoutMs: 5000, what: 'the connection to close' });
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    await waitFor(() => /"POST \/h1-upload HTTP\/1\.1" 408 SI /.test(proxy.stdout), { what: 'the access-log line' });
  });
});

describe('HTTP/2 header blocks get the request-headers timeout', () => {
  it('HEADERS without END_HEADERS and no CONTINUATION: GOAWAY and the connection closes after ~1 s', async () => {
    const before = await metric('remora_http2_headers_timeouts_total');
    const c = await connect();
    const t0 = Date.now();
    const block = requestHeaders('svc', '/ok');
    c.write(frame(FRAME.HEADERS, FLAG.END_STREAM, 1, block.subarray(0, 10)));
    await waitFor(() => c.closed, { timeoutMs: 5000, what: 'the connection to close' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(c.goawayCode).toBe(0);
    expect(await metric('remora_http2_headers_timeouts_total')).toBe(before + 1);
  });

  it('a HEADERS frame cut short between reads: the same', async () => {
    const c = await connect();
    const f = frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, headerBlock([[':method', 'GET'], [':scheme', 'http'], [':path', '/ok'], [':authority', 'svc']]));
    c.write(f.subarray(0, 12));
    await waitFor(() => c.closed, { timeoutMs: 5000, what: 'the connection to close' });
    expect(c.goawayCode).toBe(0);
  });

  it('a well-behaved HTTP/2 client is served throughout', async () => {
    const c = await connect();
    for (let i = 0; i < 5; i++) {
      const id = 1 + 2 * i;
      c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, requestHeaders('svc', '/ok')));
      await waitFor(() => ended(c, id), { what: `stream ${id}` });
      expect(c.statuses(id)).toEqual([200]);
    }
  });
});
