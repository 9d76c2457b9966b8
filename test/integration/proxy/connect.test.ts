// HTTP CONNECT on the outbound port through the real CLI (`remora run --connect`): a tunnel to a registry service is
// balanced and weighted by its VirtualService tcp[] route, a tunnel to an address the registry does not know is a
// passthrough, a failed connect is answered 503 (502 under REGISTRY_ONLY), a malformed target 400, and the TCP
// metrics count the tunnel's bytes only (not the CONNECT head nor its answer). Without --connect: 405.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenTcp } from '../../support/capture-harness.js';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';

/** Open a CONNECT tunnel: the answer head, then `send` through it and what came back until `expect` bytes. */
async function tunnel(port: number, target: string, send?: string, expectBytes = 0): Promise<{ head: string; data: string; closed: boolean }> {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  let buf = '';
  let closed = false;
  sock.on('data', (d: Buffer) => { buf += d.toString('latin1'); });
  sock.on('close', () => { closed = true; });
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  const deadline = Date.now() + 5000;
  const headEnd = (): number => buf.indexOf('\r\n\r\n');
  while (headEnd() < 0 && !closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const end = headEnd();
  const head = end < 0 ? buf : buf.slice(0, end);
  if (end >= 0 && send !== undefined && head.startsWith('HTTP/1.1 200')) {
    sock.write(send);
    while (buf.length - end - 4 < expectBytes && !closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  } else {
    while (!closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  }
  const data = end < 0 ? '' : buf.slice(end + 4);
  sock.end();
  await new Promise((r) => setTimeout(r, 20));
  sock.destroy();
  return { head, data, closed };
}

function metric(stats: string, name: string, labels: RegExp): number {
  let sum = 0;
  for (const line of stats.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const lab = line.slice(name.length, line.lastIndexOf('}') + 1);
    if (labels.test(lab)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('HTTP CONNECT tunnels (remora run --connect)', () => {
  const servers: net.Server[] = [];
  let echoA = 0;
  let echoB = 0;
  /** Not in the registry (echoA and echoB are endpoints of db.connect.test: a CONNECT to them is that service's). */
  let echoC = 0;
  let deadPort = 0;
  let proxy: RunningProxy;
  let strict: RunningProxy;
  let plain: RunningProxy;

  beforeAll(async () => {
    // Echo servers that name themselves: "a:" / "b:" before what they read.
    const named = (name: string) => (c: net.Socket): void => { c.on('error', () => {}); c.on('data', (d: Buffer) => c.write(`${name}:${d.toString()}`)); c.on('end', () => c.end()); };
    echoA = await listenTcp(servers, named('a'));
    echoB = await listenTcp(servers, named('b'));
    echoC = await listenTcp(servers, named('c'));
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    deadPort = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const yaml = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: db, namespace: default }
spec:
  hosts: [db.connect.test]
  ports: [{ number: 5432, name: tcp-db, protocol: TCP }]
  resolution: STATIC
  endpoints:
  - { address: 127.0.0.1, ports: { tcp-db: ${echoA} }, labels: { version: a } }
  - { address: 127.0.0.1, ports: { tcp-db: ${echoB} }, labels: { version: b } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: db, namespace: default }
spec:
  host: db.connect.test
  subsets: [{ name: a, labels: { version: a } }, { name: b, labels: { version: b } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db, namespace: default }
spec:
  hosts: [db.connect.test]
  tcp:
  - match: [{ port: 5432 }]
    route:
    - { destination: { host: db.connect.test, subset: a }, weight: 75 }
    - { destination: { host: db.connect.test, subset: b }, weight: 25 }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: one, namespace: default }
spec:
  hosts: [one.connect.test]
  ports: [{ number: 7000, name: tcp-one, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tcp-one: ${echoA} } }]
`;
    proxy = await startProxy({ 'db.yaml': yaml }, ['--connect']);
    strict = await startProxy({ 'db.yaml': yaml }, ['--connect', '--outbound-traffic-policy', 'REGISTRY_ONLY']);
    plain = await startProxy({ 'db.yaml': yaml });
  });

  afterAll(async () => {
    for (const p of [proxy, strict, plain]) await p?.stop();
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  });

  it('a registry service: 200 once connected, then bytes both ways, split by the tcp[] route weights', async () => {
    const seen = { a: 0, b: 0 };
    for (let i = 0; i < 40; i++) {
      const r = await tunnel(proxy.info.outbound, 'db.connect.test:5432', 'ping', 6);
      expect(r.head).toBe('HTTP/1.1 200 Connection Established');
      expect(r.data).toMatch(/^[ab]:ping$/);
      seen[r.data[0] as 'a' | 'b']++;
    }
    // 75/25 over 40 tunnels: both get some, a clearly more.
    expect(seen.a).toBeGreaterThan(seen.b);
    expect(seen.b).toBeGreaterThan(0);
  });

  it('counts the tunnel bytes only, under istio_tcp_* for the service', async () => {
    const r = await tunnel(proxy.info.outbound, 'one.connect.test:7000', 'hello', 7);
    expect(r.data).toBe('a:hello');
    const labels = /destination_service="one\.connect\.test"/;
    await waitFor(async () => metric((await proxy.admin('/stats/prometheus')).body, 'istio_tcp_connections_closed_total', labels) === 1, 5000);
    const stats = (await proxy.admin('/stats/prometheus')).body;
    expect(metric(stats, 'istio_tcp_connections_opened_total', labels)).toBe(1);
    expect(metric(stats, 'istio_tcp_received_bytes_total', labels)).toBe(5);
    expect(metric(stats, 'istio_tcp_sent_bytes_total', labels)).toBe(7);
  });

  it('an address the registry does not know is a passthrough (ALLOW_ANY)', async () => {
    const r = await tunnel(proxy.info.outbound, `127.0.0.1:${echoC}`, 'x', 3);
    expect(r.head).toBe('HTTP/1.1 200 Connection Established');
    expect(r.data).toBe('c:x');
    // An endpoint address of a registry service is that service (as a captured connection to it would be).
    const ep = await tunnel(proxy.info.outbound, `127.0.0.1:${echoB}`, 'z', 3);
    expect(ep.data).toMatch(/^[ab]:z$/);
  });

  it('a refused connect is answered 503 and the connection closes; a malformed target 400', async () => {
    const r = await tunnel(proxy.info.outbound, `127.0.0.1:${deadPort}`);
    expect(r.head).toMatch(/^HTTP\/1\.1 503 /);
    expect(r.closed).toBe(true);
    const bad = await tunnel(proxy.info.outbound, 'no-port-here');
    expect(bad.head).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('REGISTRY_ONLY: an unknown destination is answered 502, a registry service still tunnels', async () => {
    const r = await tunnel(strict.info.outbound, `127.0.0.1:${echoC}`);
    expect(r.head).toMatch(/^HTTP\/1\.1 502 /);
    const ok = await tunnel(strict.info.outbound, 'one.connect.test:7000', 'y', 3);
    expect(ok.data).toBe('a:y');
  });

  it('without --connect a CONNECT is answered 405', async () => {
    const r = await tunnel(plain.info.outbound, 'one.connect.test:7000');
    expect(r.head).toMatch(/^HTTP\/1\.1 405 /);
  });
});
