// The TCP proxy (captured non-HTTP connections) against peers that half-close and reset (RELIABILITY.md §4: "every
// new protocol path gets the same treatment: abrupt resets, half-closes"), over real loopback sockets with the real
// capture hook, TCP proxy and cluster manager (original destinations from a stand-in reader, as in
// test/integration/capture/tcp-proxy.test.ts). Every connection ends within a bound, the TCP proxy's active count
// returns to zero, and each end is logged once.
import net from 'node:net';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { listenTcp, startCapture, type CaptureHarness } from '../support/capture-harness.js';
import { waitFor } from '../support/proxy-harness.js';

const servers: net.Server[] = [];
let h: CaptureHarness;
let upstreamClosed = 0;
let upstreamAlive = 0;

function vip(n: number): { address: string; port: number; family: 4 } {
  return { address: `10.96.0.${n}`, port: 7000, family: 4 };
}

function se(name: string, n: number, port: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.test]
  addresses: [10.96.0.${n}]
  ports: [{ number: 7000, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tcp: ${port} } }]
`;
}

/** Open a connection the proxy takes as TCP to service VIP n. */
function connect(n: number): net.Socket {
  h.reader.queue.push(vip(n));
  return net.connect({ port: h.port, host: '127.0.0.1', allowHalfOpen: true });
}

function activeTcp(): number {
  return h.tcp.active.size;
}

beforeAll(async () => {
  const track = (c: net.Socket): void => { upstreamAlive++; c.once('close', () => { upstreamAlive--; upstreamClosed++; }); };
  // Reads until the client's FIN, then answers with the byte count and sha256 of what it got, then ends.
  const digest = await listenTcp(servers, (c) => {
    track(c);
    const hash = createHash('sha256');
    let n = 0;
    c.on('data', (d: Buffer) => { n += d.length; hash.update(d); });
    c.on('end', () => c.end(`${n} ${hash.digest('hex')}`));
  });
  // Says goodbye and sends its FIN first, then keeps reading: what the client sends after is echoed in the log.
  const finFirst = await listenTcp(servers, (c) => {
    track(c);
    c.end('bye\n');
    const got: Buffer[] = [];
    c.on('data', (d: Buffer) => got.push(d));
    c.on('end', () => { finFirstGot.push(Buffer.concat(got).toString()); });
  });
  // Sends some bytes, then resets the connection.
  const resetter = await listenTcp(servers, (c) => {
    track(c);
    c.write('partial');
    setTimeout(() => c.resetAndDestroy(), 30);
  });
  // Echo: for the client-side abort runs.
  const echo = await listenTcp(servers, (c) => { track(c); c.pipe(c); });
  h = await startCapture([se('digest', 1, digest), se('finfirst', 2, finFirst), se('resetter', 3, resetter), se('echo', 4, echo)].join('---\n'), (_req, res) => { res.writeHead(200, []); res.end(); });
});
const finFirstGot: string[] = [];

afterAll(async () => {
  await h?.close();
  for (const s of servers) s.close();
});

function collect(sock: net.Socket): Promise<{ data: string; ended: boolean; error?: string }> {
  const chunks: Buffer[] = [];
  const out: { data: string; ended: boolean; error?: string } = { data: '', ended: false };
  sock.on('data', (d: Buffer) => chunks.push(d));
  sock.on('end', () => { out.ended = true; });
  sock.on('error', (e: NodeJS.ErrnoException) => { out.error = e.code ?? e.message; });
  return new Promise((resolve) => sock.once('close', () => { out.data = Buffer.concat(chunks).toString(); resolve(out); }));
}

describe('TCP proxy: half-close', () => {
  it('client sends 4 MB then FIN; the server answers after reading to the end, and the answer arrives (the FIN is not a close)', async () => {
    const body = Buffer.alloc(4 << 20);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const sock = connect(1);
    const done = collect(sock);
    sock.end(body);
    const r = await done;
    expect(r.error).toBeUndefined();
    expect(r.ended).toBe(true);
    expect(r.data).toBe(`${body.length} ${createHash('sha256').update(body).digest('hex')}`);
    await waitFor(() => activeTcp() === 0, 3000);
  });

  it('server sends its FIN first; the client still gets to send, and the server reads it', async () => {
    const sock = connect(2);
    const done = collect(sock);
    await new Promise<void>((r) => sock.once('end', () => r()));
    sock.end('late words');
    const r = await done;
    expect(r.data).toBe('bye\n');
    await waitFor(() => finFirstGot.includes('late words'), 3000);
    await waitFor(() => activeTcp() === 0, 3000);
  });
});

describe('TCP proxy: resets', () => {
  it('an upstream reset mid-stream reaches the client as a reset (ECONNRESET), after the bytes before it', async () => {
    const sock = connect(3);
    const r = await collect(sock);
    expect(r.data).toBe('partial');
    expect(r.error).toBe('ECONNRESET');
    await waitFor(() => activeTcp() === 0, 3000);
    const rec = h.logged.at(-1)!;
    expect(rec.details).toMatch(/upstream_reset/);
  });

  it('clients that reset or close at random moments (fast-check, 200 runs): the upstream side is closed every time, nothing stays open', async () => {
    const before = upstreamClosed;
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 20 }), fc.boolean(), async (writes, delayMs, reset) => {
        runs++;
        const sock = connect(4);
        sock.on('error', () => {});
        await new Promise<void>((r) => sock.once('connect', () => r()));
        for (let i = 0; i < writes; i++) sock.write(Buffer.alloc(1000 * (i + 1), 0x41));
        await new Promise((r) => setTimeout(r, delayMs));
        if (reset) sock.resetAndDestroy(); else sock.destroy();
        await new Promise((r) => sock.once('close', r));
      }),
      { numRuns: 200 },
    );
    await waitFor(() => activeTcp() === 0 && upstreamAlive === 0, 5000);
    // Every client connection reached an upstream connection that is now closed.
    expect(upstreamClosed - before).toBe(runs);
  });
});
