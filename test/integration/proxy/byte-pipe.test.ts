/**
 * The byte pipe (src/proxy/byte-pipe.ts) that carries TCP, CONNECT and upgraded connections, driven in process over
 * loopback sockets where its backpressure, half-close, reset passing and idle timeout can be watched directly. The
 * same behaviours through the CLI, for each of its three users, are in test/reliability/pipe-abrupt.test.ts.
 */
import { describe, it, expect } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { waitFor } from '../../support/proxy-harness.js';
import { BytePipe, type PipeOwner } from '../../../src/proxy/byte-pipe.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('BytePipe over loopback sockets (in process)', () => {
  /** client ⇄ [a | BytePipe | u] ⇄ server: the pipe's two sockets are accepted/dialled here like the proxy's. */
  async function tunnelPair(idleMs = 0): Promise<{
    client: net.Socket; server: net.Socket; a: net.Socket; u: net.Socket; tunnel: BytePipe; closed: Promise<BytePipe>; cleanup: () => Promise<void>;
  }> {
    const front = net.createServer({ allowHalfOpen: true });
    const back = net.createServer({ allowHalfOpen: true });
    await Promise.all([front, back].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
    const aP = new Promise<net.Socket>((r) => front.once('connection', r));
    const sP = new Promise<net.Socket>((r) => back.once('connection', r));
    const client = net.connect({ port: (front.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
    const u = net.connect({ port: (back.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
    const [a, server] = await Promise.all([aP, sP, new Promise((r) => u.once('connect', r))]) as [net.Socket, net.Socket, unknown];
    for (const s of [client, server]) s.on('error', () => {});
    let done!: (t: BytePipe) => void;
    const closed = new Promise<BytePipe>((r) => { done = r; });
    const owner: PipeOwner = { pipeClosed: (t) => done(t) };
    const tunnel = new BytePipe(a, u, idleMs, owner);
    return {
      client, server, a, u, tunnel, closed,
      cleanup: async () => {
        for (const s of [client, server, a, u]) s.destroy();
        await Promise.all([front, back].map((s) => new Promise<void>((r) => s.close(() => r()))));
      },
    };
  }

  it('pauses the side whose peer does not take its bytes, holds little itself, and loses nothing', async () => {
    const t = await tunnelPair();
    try {
      t.server.pause(); // the upstream reads nothing for now
      let paused = false;
      t.a.on('pause', () => { paused = true; });
      t.tunnel.start([Buffer.from('head-from-client:')], [Buffer.from('head-from-upstream:')]);
      const data = randomBytes(64 * 1024 * 1024);
      let sent = 0;
      const writeSome = (): void => {
        while (sent < data.length) {
          const n = Math.min(1024 * 1024, data.length - sent);
          const ok = t.client.write(data.subarray(sent, sent + n));
          sent += n;
          if (!ok) { t.client.once('drain', writeSome); return; }
        }
        t.client.end();
      };
      writeSome();
      await waitFor(() => paused, 10_000);
      // Paused because the upstream's write returned false: the tunnel holds at most about one read beyond the
      // socket's high-water mark, not the megabytes the client is still trying to send.
      expect(t.u.writableLength).toBeLessThan(512 * 1024);
      expect(sent).toBeLessThan(data.length);
      // Let the upstream read: everything arrives, in order, then the client's FIN.
      const got: Buffer[] = [];
      t.server.on('data', (d: Buffer) => got.push(d));
      const ended = new Promise<void>((r) => t.server.once('end', () => r()));
      t.server.resume();
      await ended;
      const all = Buffer.concat(got);
      expect(all.subarray(0, 17).toString()).toBe('head-from-client:');
      expect(sha(all.subarray(17))).toBe(sha(data));
      // Half-close: the other direction still works after the client's FIN.
      const back: Buffer[] = [];
      t.client.on('data', (d: Buffer) => back.push(d));
      const clientEnded = new Promise<void>((r) => t.client.once('end', () => r()));
      t.server.end('bye');
      const tun = await t.closed;
      await clientEnded;
      expect(Buffer.concat(back).toString()).toBe('head-from-upstream:bye');
      expect(tun.bytesUp).toBe(17 + data.length);
      expect(tun.bytesDown).toBe('head-from-upstream:bye'.length);
      expect(tun.end).toBe('closed');
    } finally {
      await t.cleanup();
    }
  }, 60_000);

  it('a reset on one side is passed on as a reset to the other', async () => {
    const t = await tunnelPair();
    try {
      t.tunnel.start(undefined, undefined);
      const clientError = new Promise<string | undefined>((r) => t.client.once('error', (e: NodeJS.ErrnoException) => r(e.code)));
      t.server.resetAndDestroy();
      const tun = await t.closed;
      expect(await clientError).toBe('ECONNRESET');
      expect(tun.end).toBe('upstream_error');
    } finally {
      await t.cleanup();
    }
  });

  it('the idle timeout counts bytes either way', async () => {
    const t = await tunnelPair(300);
    try {
      t.tunnel.start(undefined, undefined);
      const t0 = Date.now();
      for (let i = 0; i < 4; i++) {
        t.server.write('x');
        await new Promise((r) => setTimeout(r, 150));
      }
      const tun = await t.closed;
      // The last byte moved at ~450 ms: closed 300 ms after it, not 300 ms after the start.
      expect(Date.now() - t0).toBeGreaterThanOrEqual(700);
      expect(tun.end).toBe('idle_timeout');
      expect(tun.bytesDown).toBe(4);
    } finally {
      await t.cleanup();
    }
  });
});
