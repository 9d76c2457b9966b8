// gRPC through the real CLI with real peers (@grpc/grpc-js client and servers; messages are raw bytes, no protobuf
// needed): the client speaks cleartext HTTP/2 with prior knowledge to the outbound port, Remora routes each call
// (per request, never per connection) and sends it upstream over HTTP/2 because the port is declared GRPC.
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { fakeUpstream, type FakeH2Upstream } from '../../support/fake-upstream.js';

const raw = { serialize: (b: Buffer): Buffer => b, deserialize: (b: Buffer): Buffer => b };
const SERVICE: grpc.ServiceDefinition = {
  Unary: { path: '/echo.Echo/Unary', requestStream: false, responseStream: false, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
  Flaky: { path: '/echo.Echo/Flaky', requestStream: false, responseStream: false, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
  Slow: { path: '/echo.Echo/Slow', requestStream: false, responseStream: false, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
  Count: { path: '/echo.Echo/Count', requestStream: false, responseStream: true, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
  Sum: { path: '/echo.Echo/Sum', requestStream: true, responseStream: false, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
  Chat: { path: '/echo.Echo/Chat', requestStream: true, responseStream: true, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
};
const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
type EchoClient = grpc.Client & Record<string, (...a: unknown[]) => unknown>;

/** One upstream: answers with its name; Flaky fails with UNAVAILABLE when `flaky`. */
async function startServer(name: string, flaky: boolean): Promise<{ port: number; server: grpc.Server; calls: Record<string, number> }> {
  const calls: Record<string, number> = {};
  const count = (m: string): void => { calls[m] = (calls[m] ?? 0) + 1; };
  const server = new grpc.Server();
  server.addService(SERVICE, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => { count('Unary'); cb(null, Buffer.from(`${name}:${call.request.toString()}`)); },
    Flaky: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      count('Flaky');
      if (flaky) cb({ code: grpc.status.UNAVAILABLE, details: `${name} is unavailable` });
      else cb(null, Buffer.from(name));
    },
    Slow: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => { count('Slow'); setTimeout(() => cb(null, Buffer.from('late')), 2000).unref(); },
    Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      count('Count');
      const n = Number(call.request.toString());
      let i = 0;
      const next = (): void => {
        while (i < n) {
          const ok = call.write(Buffer.from(`${name}#${i++}`));
          if (!ok) { call.once('drain', next); return; }
        }
        call.end();
      };
      next();
    },
    Sum: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      count('Sum');
      let bytes = 0;
      call.on('data', (b: Buffer) => { bytes += b.length; });
      call.on('end', () => cb(null, Buffer.from(String(bytes))));
    },
    Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      count('Chat');
      call.on('data', (b: Buffer) => call.write(Buffer.from(`${name}>${b.toString()}`)));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { port, server, calls };
}

function unary(c: EchoClient, method: string, msg: string, deadlineMs = 5000): Promise<{ value?: string; code?: number; details?: string }> {
  return new Promise((resolve) => {
    c[method]!(Buffer.from(msg), new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, v?: Buffer) => {
      resolve(err ? { code: err.code, details: err.details } : { value: v!.toString() });
    });
  });
}

describe('gRPC through Remora (HTTP/2 both ways)', () => {
  let a: Awaited<ReturnType<typeof startServer>>;
  let b: Awaited<ReturnType<typeof startServer>>;
  let proxy: RunningProxy;
  let client: EchoClient;
  let deadPort = 0;
  // An HTTP/2 upstream that takes calls and never answers, and (unlike grpc-js) ignores grpc-timeout: only Remora's
  // own deadline can end a call to it.
  let hang: FakeH2Upstream;

  beforeAll(async () => {
    a = await startServer('a', true);
    b = await startServer('b', false);
    hang = await fakeUpstream().id('hang').grpc().hang().start();
    const hangPort = hang.port;
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    deadPort = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    proxy = await startProxy({
      'grpc.yaml': `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo, namespace: default }
spec:
  hosts: [echo.grpc.test]
  ports: [{ number: 50051, name: grpc, protocol: GRPC }]
  resolution: STATIC
  endpoints:
  - { address: 127.0.0.1, ports: { grpc: ${a.port} }, labels: { version: a } }
  - { address: 127.0.0.1, ports: { grpc: ${b.port} }, labels: { version: b } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: echo, namespace: default }
spec:
  host: echo.grpc.test
  trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: echo, namespace: default }
spec:
  hosts: [echo.grpc.test]
  http:
  - match: [{ uri: { exact: /echo.Echo/Flaky } }]
    route: [{ destination: { host: echo.grpc.test } }]
    retries: { attempts: 2, retryOn: unavailable }
  - route: [{ destination: { host: echo.grpc.test } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: hang, namespace: default }
spec:
  hosts: [hang.grpc.test]
  ports: [{ number: 50051, name: grpc, protocol: GRPC }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { grpc: ${hangPort} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: down, namespace: default }
spec:
  hosts: [down.grpc.test]
  ports: [{ number: 50051, name: grpc, protocol: GRPC }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { grpc: ${deadPort} } }]
`,
    });
    // One client channel (one HTTP/2 connection) to the outbound port; :authority names the service.
    client = new Client(`127.0.0.1:${proxy.info.outbound}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'echo.grpc.test:50051' }) as unknown as EchoClient;
  }, 30_000);

  afterAll(async () => {
    client?.close();
    await proxy?.stop();
    a?.server.forceShutdown();
    b?.server.forceShutdown();
    await hang?.close();
  });

  it('balances unary calls per request over one client connection', async () => {
    const who = { a: 0, b: 0 };
    for (let i = 0; i < 100; i++) {
      const r = await unary(client, 'Unary', `m${i}`);
      expect(r.value).toMatch(new RegExp(`^[ab]:m${i}$`));
      who[r.value![0] as 'a' | 'b']++;
    }
    expect(who.a).toBeGreaterThanOrEqual(40);
    expect(who.b).toBeGreaterThanOrEqual(40);
  });

  it('streams server, client and both ways, in order and with flow control', async () => {
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.Count!(Buffer.from('2000'), new grpc.Metadata()) as grpc.ClientReadableStream<Buffer>;
      call.on('data', (m: Buffer) => got.push(m.toString()));
      call.on('error', reject);
      call.on('status', (st: grpc.StatusObject) => (st.code === 0 ? resolve() : reject(new Error(st.details))));
    });
    expect(got).toHaveLength(2000);
    expect(got.every((m, i) => m.endsWith(`#${i}`))).toBe(true);
    const sum = await new Promise<string>((resolve, reject) => {
      const call = client.Sum!(new grpc.Metadata(), (err: grpc.ServiceError | null, v?: Buffer) => (err ? reject(err) : resolve(v!.toString()))) as grpc.ClientWritableStream<Buffer>;
      for (let i = 0; i < 64; i++) call.write(Buffer.alloc(16 * 1024, i));
      call.end();
    });
    expect(sum).toBe(String(64 * 16 * 1024));
    const chat = await new Promise<string[]>((resolve, reject) => {
      const out: string[] = [];
      const call = client.Chat!(new grpc.Metadata()) as grpc.ClientDuplexStream<Buffer, Buffer>;
      call.on('data', (m: Buffer) => {
        out.push(m.toString());
        if (out.length < 10) call.write(Buffer.from(`hello ${out.length}`));
        else call.end();
      });
      call.on('error', reject);
      call.on('end', () => resolve(out));
      call.write(Buffer.from('hello 0'));
    });
    expect(chat).toHaveLength(10);
    expect(chat.every((m, i) => /^[ab]>hello \d+$/.test(m) && m.endsWith(`hello ${i}`))).toBe(true);
  });

  it('retries UNAVAILABLE on the other host (retryOn unavailable, a trailers-only response)', async () => {
    const before = a.calls.Flaky ?? 0;
    for (let i = 0; i < 10; i++) expect((await unary(client, 'Flaky', 'x')).value).toBe('b');
    expect((a.calls.Flaky ?? 0) - before).toBeGreaterThan(0); // a was tried and failed, the retry went to b
  });

  it('answers local errors as gRPC errors and honours grpc-timeout as the deadline', async () => {
    const down = new Client(`127.0.0.1:${proxy.info.outbound}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'down.grpc.test:50051' }) as unknown as EchoClient;
    const r = await unary(down, 'Unary', 'x');
    down.close();
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.details).toMatch(/upstream connect error|connection failure/);
    // A raw HTTP/2 call with grpc-timeout 300m and no deadline of the client's own, to an upstream that never answers
    // and ignores grpc-timeout: Remora ends it, 200 + grpc-status 4, flag UT.
    const session = http2.connect(`http://127.0.0.1:${proxy.info.outbound}`);
    const t0 = Date.now();
    const res = await new Promise<{ headers: http2.IncomingHttpHeaders; trailers?: http2.IncomingHttpHeaders }>((resolve) => {
      const s = session.request({ ':method': 'POST', ':path': '/echo.Echo/Slow', ':authority': 'hang.grpc.test:50051', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m' });
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders | undefined;
      s.on('response', (h) => (headers = h));
      s.on('trailers', (t) => (trailers = t));
      s.on('close', () => resolve({ headers, ...(trailers ? { trailers } : {}) }));
      s.resume();
      s.end(Buffer.from([0, 0, 0, 0, 1, 0x78])); // one gRPC message frame
    });
    const ms = Date.now() - t0;
    session.close();
    expect(res.headers[':status']).toBe(200);
    expect(res.headers['grpc-status'] ?? res.trailers?.['grpc-status']).toBe('4');
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(1500);
  });

  it('serves gRPC on the inbound port too, to the app over HTTP/2', async () => {
    const inbound = await startProxy({ 'empty.yaml': '' }, ['--app-port', String(b.port)]);
    try {
      const c = new Client(`127.0.0.1:${inbound.info.inbound}`, grpc.credentials.createInsecure()) as unknown as EchoClient;
      const r = await unary(c, 'Unary', 'in');
      c.close();
      expect(r.value).toBe('b:in');
      const st = (await inbound.admin('/stats/prometheus')).body;
      expect(st).toMatch(/istio_requests_total\{reporter="destination"[^}]*request_protocol="grpc",response_code="200",grpc_response_status="0"[^}]*\} 1/);
    } finally {
      await inbound.stop();
    }
  });

  it('records gRPC calls with their grpc_response_status and request_protocol', async () => {
    const stats = (await proxy.admin('/stats/prometheus')).body;
    // On a failure, the message shows every istio_requests_total line this proxy had.
    const lines = stats.split('\n').filter((l) => l.startsWith('istio_requests_total{')).join('\n');
    expect(stats, lines).toMatch(/istio_requests_total\{[^}]*destination_service="echo\.grpc\.test"[^}]*request_protocol="grpc",response_code="200",grpc_response_status="0"[^}]*\} [1-9]/);
    expect(stats, lines).toMatch(/istio_requests_total\{[^}]*request_protocol="grpc",response_code="200",grpc_response_status="14",response_flags="UF[^"]*"[^}]*\} [1-9]/);
    expect(stats, lines).toMatch(/istio_requests_total\{[^}]*destination_service="hang\.grpc\.test"[^}]*grpc_response_status="4",response_flags="UT"[^}]*\} 1/);
  });
});
