// The test scaffolding itself, over real loopback sockets: every mode of the fake-upstream builder answers as
// scripted (HTTP/1, HTTP/2, gRPC with a real grpc-js client, TCP, WebSocket with a real ws client), and waitFor /
// waitForStable wait for state instead of sleeping.
import http2 from 'node:http2';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { fakeUpstream, type AnyUpstream } from '../../support/fake-upstream.js';
import { waitFor, waitForStable } from '../../support/wait-for.js';

const started: AnyUpstream[] = [];
afterEach(async () => { await Promise.all(started.splice(0).map((u) => u.close())); });
function keep<T extends AnyUpstream>(u: T): T { started.push(u); return u; }

function h2get(port: number, path: string, headers: http2.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string; headers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const c = http2.connect(`http://127.0.0.1:${port}`);
    c.on('error', reject);
    const st = c.request({ ':path': path, ...headers });
    let body = '';
    let h: http2.IncomingHttpHeaders = {};
    st.on('response', (r) => { h = r; });
    st.on('data', (d: Buffer) => { body += d.toString(); });
    st.on('end', () => { c.close(); resolve({ status: Number(h[':status']), body, headers: h }); });
    st.end();
  });
}

describe('fakeUpstream() builder', () => {
  it('http1: scripted failures first, then routes, else a JSON echo; every request recorded', async () => {
    const u = keep(await fakeUpstream().id('a').http1().route('/ok', 200, 'ok').route('/teapot*', 418, 'short and stout').failTimes(2, 503).start());
    const get = async (p: string): Promise<{ status: number; body: string }> => {
      const r = await request(`${u.url()}${p}`);
      return { status: r.statusCode, body: await r.body.text() };
    };
    expect((await get('/ok')).status).toBe(503);
    expect((await get('/ok')).status).toBe(503);
    expect(await get('/ok')).toEqual({ status: 200, body: 'ok' });
    expect(await get('/teapot/earl-grey')).toEqual({ status: 418, body: 'short and stout' });
    const echo = JSON.parse((await get('/other?x=1')).body);
    expect(echo).toMatchObject({ id: 'a', method: 'GET', url: '/other?x=1' });
    expect(u.requests.map((r) => r.url)).toEqual(['/ok', '/ok', '/ok', '/teapot/earl-grey', '/other?x=1']);
  });

  it('http1: latency delays the answer; hang never answers', async () => {
    const slow = keep(await fakeUpstream().latency(150).start());
    const t0 = Date.now();
    await (await request(slow.url())).body.text();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    const stuck = keep(await fakeUpstream().hang().start());
    const ac = new AbortController();
    const p = request(stuck.url(), { signal: ac.signal }).catch((e: Error) => e.name);
    await waitFor(() => stuck.requests.length === 1, { what: 'the request to arrive' });
    ac.abort();
    expect(await p).toBe('AbortError');
  });

  it('http1: a route body made from the request, a route of its own latency, a given port on another address', async () => {
    const u = keep(await fakeUpstream().route('/slow', 200, 'late', {}, { latencyMs: 150 }).route('*', 200, (r) => `${r.method} ${r.url}`).start());
    expect(await (await request(`${u.url()}/a?b=1`)).body.text()).toBe('GET /a?b=1');
    const t0 = Date.now();
    expect(await (await request(`${u.url()}/slow`)).body.text()).toBe('late');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    const twin = keep(await fakeUpstream().on('127.0.0.2').port(u.port).route('*', 200, 'twin').start());
    expect(twin.port).toBe(u.port);
    expect(await (await request(`http://127.0.0.2:${u.port}/`)).body.text()).toBe('twin');
  });

  it('http2: the same script over cleartext HTTP/2', async () => {
    const u = keep(await fakeUpstream().id('h2').http2().route('/r', 201, 'made').failTimes(1, 500).start());
    expect((await h2get(u.port, '/r')).status).toBe(500);
    const r = await h2get(u.port, '/r');
    expect(r).toMatchObject({ status: 201, body: 'made' });
    expect(r.headers['x-upstream-id']).toBe('h2');
    expect(JSON.parse((await h2get(u.port, '/echo', { 'x-test': '1' })).body)).toMatchObject({ id: 'h2', url: '/echo', headers: { 'x-test': '1' } });
    expect(u.requests).toHaveLength(3);
  });

  it('grpc: calls echo their message; failTimes answers a grpc-status', async () => {
    const u = keep(await fakeUpstream().id('g').grpc().failTimes(1, grpc.status.UNAVAILABLE).start());
    const raw = { serialize: (b: Buffer): Buffer => b, deserialize: (b: Buffer): Buffer => b };
    const Client = grpc.makeGenericClientConstructor({ Echo: { path: '/t.T/Echo', requestStream: false, responseStream: false, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize } }, 'T');
    const c = new Client(`127.0.0.1:${u.port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Echo: (m: Buffer, cb: (e: grpc.ServiceError | null, v?: Buffer) => void) => void };
    const call = (m: string): Promise<{ code: number; value?: string }> => new Promise((resolve) => c.Echo(Buffer.from(m), (e, v) => resolve(e ? { code: e.code } : { code: 0, value: v!.toString() })));
    try {
      expect(await call('one')).toEqual({ code: grpc.status.UNAVAILABLE });
      expect(await call('two')).toEqual({ code: 0, value: 'two' });
      expect(u.requests.map((r) => r.url)).toEqual(['/t.T/Echo', '/t.T/Echo']);
    } finally {
      c.close();
    }
  });

  it('tcp: echo, a banner first, half-close passed back', async () => {
    const u = keep(await fakeUpstream().tcp().banner('HELLO\n').echo().start());
    const s = net.connect(u.port, '127.0.0.1');
    let got = '';
    s.on('data', (d: Buffer) => { got += d.toString(); });
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.end('ping');
    await closed;
    expect(got).toBe('HELLO\nping');
    expect(u.bytesReceived).toBe(4);
    expect(u.connections).toBe(1);
  });

  it('websocket: messages come back; the handshake is recorded', async () => {
    const u = keep(await fakeUpstream().id('w').websocket().start());
    const ws = new WebSocket(`${u.url()}/chat`, { headers: { 'x-who': 'me' } });
    const reply = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => ws.send('hi'));
      ws.on('message', (d) => resolve((d as Buffer).toString()));
      ws.on('error', reject);
    });
    ws.close();
    expect(reply).toBe('hi');
    expect(u.messages).toEqual(['hi']);
    expect(u.requests[0]).toMatchObject({ url: '/chat', headers: { 'x-who': 'me' } });
  });
});

describe('waitFor', () => {
  it('resolves with the first truthy value, rejects with what was awaited', async () => {
    let n = 0;
    const t = setInterval(() => { n++; }, 10);
    try {
      expect(await waitFor(() => (n >= 3 ? n : 0), { timeoutMs: 2000 })).toBeGreaterThanOrEqual(3);
    } finally {
      clearInterval(t);
    }
    await expect(waitFor(() => false, { timeoutMs: 50, what: 'nothing' })).rejects.toThrow('nothing not met within 50 ms');
  });

  it('waitForStable returns once a value stops changing', async () => {
    let n = 0;
    const t = setInterval(() => { if (n < 5) n++; }, 10);
    try {
      expect(await waitForStable(() => n, { stableForMs: 100, timeoutMs: 3000 })).toBe(5);
    } finally {
      clearInterval(t);
    }
  });
});
