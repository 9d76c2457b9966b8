/**
 * Direct handle writes and handle-level read pause over real loopback sockets: order, backpressure and drain,
 * the fallback while connecting, and errors.
 */
import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import { onDirectDrain, pendingDirectWrites, startReading, stopReading, writeDirect } from '../../../src/http1/socket-io.js';

const cleanup: Array<() => void> = [];
afterEach(() => { for (const f of cleanup.splice(0)) f(); });

async function pair(): Promise<{ client: net.Socket; server: net.Socket }> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', () => r()));
  const server = await accepted;
  cleanup.push(() => { client.destroy(); server.destroy(); srv.close(); });
  return { client, server };
}

function collect(sock: net.Socket, bytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  return new Promise((resolve) => {
    sock.on('data', (c: Buffer) => { chunks.push(c); n += c.length; if (n >= bytes) resolve(Buffer.concat(chunks)); });
  });
}

describe('writeDirect', () => {
  it('small strings and buffers arrive in call order, and report no backpressure', async () => {
    const { client, server } = await pair();
    const got = collect(server, 11);
    expect(writeDirect(client, 'abc')).toBe(true);
    expect(writeDirect(client, Buffer.from('def'))).toBe(true);
    expect(writeDirect(client, 'ghijk')).toBe(true);
    expect((await got).toString()).toBe('abcdefghijk');
    expect(pendingDirectWrites(client)).toBe(0);
  });

  it('latin1 strings carry every byte value unchanged', async () => {
    const { client, server } = await pair();
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const got = collect(server, 256);
    writeDirect(client, all.toString('latin1'));
    expect((await got).equals(all)).toBe(true);
  });

  it('a write the kernel cannot take returns false, keeps order, and calls the drain function once it is flushed', async () => {
    const { client, server } = await pair();
    server.pause();
    const big = Buffer.alloc(32 * 1024 * 1024, 7);
    let drained = 0;
    onDirectDrain(client, () => { drained++; });
    expect(writeDirect(client, big)).toBe(false);
    expect(pendingDirectWrites(client)).toBeGreaterThan(0);
    // Queued behind the big buffer, not ahead of it.
    writeDirect(client, 'END');
    const got = collect(server, big.length + 3);
    server.resume();
    const buf = await got;
    expect(buf.length).toBe(big.length + 3);
    expect(buf.subarray(big.length).toString()).toBe('END');
    expect(buf[0]).toBe(7);
    await new Promise<void>((r) => setImmediate(r));
    expect(pendingDirectWrites(client)).toBe(0);
    expect(drained).toBe(1);
  });

  it('falls back to the Writable side while connecting, then writes direct, in order', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
    const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
    cleanup.push(() => { client.destroy(); srv.close(); });
    writeDirect(client, 'first,'); // still connecting: buffered by the Writable side
    await new Promise<void>((r) => client.once('connect', () => r()));
    writeDirect(client, 'second');
    const server = await accepted;
    cleanup.push(() => server.destroy());
    expect((await collect(server, 12)).toString()).toBe('first,second');
  });

  it('end() after direct writes delivers everything, then EOF', async () => {
    const { client, server } = await pair();
    writeDirect(client, 'x'.repeat(100_000));
    client.end();
    const chunks: Buffer[] = [];
    server.on('data', (c: Buffer) => chunks.push(c));
    await new Promise<void>((r) => server.once('end', () => r()));
    expect(Buffer.concat(chunks).length).toBe(100_000);
  });

  it('on a destroyed socket it does not throw and reports backpressure', async () => {
    const { client } = await pair();
    client.destroy();
    expect(writeDirect(client, 'late')).toBe(false);
  });
});

describe('stopReading / startReading', () => {
  it('pauses delivery at the handle and resumes it', async () => {
    const { client, server } = await pair();
    let got = '';
    server.on('data', (c: Buffer) => { got += c.toString(); });
    await new Promise<void>((r) => setImmediate(r));
    stopReading(server);
    client.write('held');
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toBe('');
    startReading(server);
    await new Promise<void>((r) => server.once('data', () => r()));
    expect(got).toBe('held');
  });
});
