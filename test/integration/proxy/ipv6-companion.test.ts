/**
 * The outbound listener's IPv6 companion ([::1] beside 127.0.0.1) through the real CLI: a connection it accepts is
 * the listener's own, so `--max-connections` counts both families together, a connection past it is closed at accept
 * whichever family it came on, and remora_listener_connections_overflow_total counts it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { connect, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { request } from 'undici';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { serviceEntry } from '../resilience/helpers.js';

const hasIPv6Loopback = Object.values(networkInterfaces()).flat().some((i) => i?.address === '::1');

let up: FakeUpstream;
let p: RunningProxy;


/** A keep-alive connection that has had one request answered (so the proxy holds it open), or 'closed'. */
async function openConnection(host: string, port: number): Promise<{ sock: Socket; status: string }> {
  const sock = connect({ host, port });
  sock.on('error', () => {});
  const status = await new Promise<string>((resolve) => {
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m && buf.includes('\r\n\r\n')) resolve(m[1]!);
    });
    sock.on('close', () => resolve('closed'));
    sock.on('connect', () => sock.write('GET / HTTP/1.1\r\nhost: app\r\n\r\n'));
  });
  return { sock, status };
}

async function overflow(): Promise<number> {
  const r = await request(`http://127.0.0.1:${p.info.stats}/stats/prometheus`);
  const m = /^remora_listener_connections_overflow_total\{listener="outbound"\} (\d+)$/m.exec(await r.body.text());
  return m ? Number(m[1]) : NaN;
}

describe.skipIf(!hasIPv6Loopback)('IPv6 companion of the outbound listener (skipped: no ::1 on this host)', () => {
  beforeAll(async () => {
    up = await fakeUpstream('app');
    p = await startProxy({ 'se.yaml': serviceEntry('app', [{ port: up.port }]) }, ['--max-connections', '2']);
  });
  afterAll(async () => {
    await p?.stop();
    await up?.close();
  });

  it('--max-connections 2 holds for IPv4 and IPv6 together; the overflow is counted for both', async () => {
    const open: Socket[] = [];
    /** Open a connection on `host`, keep it for the cleanup, and check what it got: '200' served, 'closed' at accept. */
    const expectConnection = async (host: string, status: string): Promise<Socket> => {
      const c = await openConnection(host, p.info.outbound);
      open.push(c.sock);
      expect(c.status, `${host}`).toBe(status);
      return c.sock;
    };
    try {
      const v6 = await expectConnection('::1', '200');
      await expectConnection('127.0.0.1', '200');
      // Two open: a third is closed at accept, on either family.
      await expectConnection('::1', 'closed');
      await expectConnection('127.0.0.1', 'closed');
      expect(await overflow()).toBe(2);
      // Closing the IPv6 connection frees its place for an IPv4 one.
      v6.destroy();
      let next = { sock: undefined as Socket | undefined, status: '' };
      await waitFor(async () => {
        next.sock?.destroy();
        next = await openConnection('127.0.0.1', p.info.outbound);
        return next.status === '200';
      }, 5000, 50);
      open.push(next.sock!);
    } finally {
      for (const s of open) s.destroy();
    }
  });
});
