// Upgrade tunnels (WebSocket and any other 101) through the real CLI against peers that vanish (RELIABILITY.md §4:
// "every new protocol path gets the same treatment: abrupt resets, half-closes"): clients and upstreams that reset,
// drop or close at random moments leave no tunnel open (remora_tunnels_active back to 0, every upstream socket
// closed), and a raw Upgrade tunnel carries a half-close: the client's FIN reaches the upstream, whose answer after
// it still reaches the client.
import net from 'node:net';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import WebSocket, { WebSocketServer } from 'ws';
import { startProxy, waitFor, type RunningProxy } from '../support/proxy-harness.js';
import { serviceEntry } from '../integration/resilience/helpers.js';

let proxy: RunningProxy;
let wsServer: http.Server;
let rawServer: net.Server;
const upstreamSockets = new Set<net.Socket>();

beforeAll(async () => {
  // WebSocket echo; a message "die" makes the upstream drop the connection without a close frame, "rst" resets it.
  wsServer = http.createServer();
  const wss = new WebSocketServer({ server: wsServer });
  wsServer.on('connection', (s: net.Socket) => { upstreamSockets.add(s); s.once('close', () => upstreamSockets.delete(s)); });
  wss.on('connection', (ws) => {
    ws.on('error', () => {});
    ws.on('message', (m, binary) => {
      const text = binary ? '' : m.toString();
      const sock = (ws as unknown as { _socket: net.Socket })._socket;
      if (text === 'die') sock.destroy();
      else if (text === 'rst') sock.resetAndDestroy();
      else ws.send(m, { binary });
    });
  });
  await new Promise<void>((r) => wsServer.listen(0, '127.0.0.1', r));
  // A raw Upgrade server: 101, then reads to the client's FIN and answers with the sha256 of what it read, then ends.
  rawServer = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    let head = Buffer.alloc(0);
    const hash = createHash('sha256');
    let n = 0;
    let upgraded = false;
    s.on('data', (d: Buffer) => {
      if (upgraded) { n += d.length; hash.update(d); return; }
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      upgraded = true;
      s.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: sum\r\n\r\n');
      const rest = head.subarray(end + 4);
      n += rest.length;
      hash.update(rest);
    });
    s.on('end', () => s.end(`${n} ${hash.digest('hex')}`));
  });
  await new Promise<void>((r) => rawServer.listen(0, '127.0.0.1', r));
  proxy = await startProxy({
    'se.yaml': serviceEntry('chat', [{ port: (wsServer.address() as net.AddressInfo).port }]) + '---\n' + serviceEntry('sum', [{ port: (rawServer.address() as net.AddressInfo).port }]),
  });
});

afterAll(async () => {
  await proxy?.stop();
  wsServer?.closeAllConnections();
  wsServer?.close();
  rawServer?.close();
});

async function tunnelsActive(): Promise<number> {
  const body = (await proxy.admin('/stats/prometheus')).body;
  let sum = 0;
  for (const m of body.matchAll(/^remora_tunnels_active\{[^}]*\} (\S+)$/gm)) sum += Number(m[1]);
  return sum;
}

async function tunnelsTotal(): Promise<number> {
  const body = (await proxy.admin('/stats/prometheus')).body;
  let sum = 0;
  for (const m of body.matchAll(/^remora_tunnels_total\{[^}]*\} (\S+)$/gm)) sum += Number(m[1]);
  return sum;
}

describe('WebSocket tunnels that end abruptly', () => {
  it('150 runs of random endings on either side (client close/terminate/reset, upstream drop/reset): nothing stays open', async () => {
    const before = await tunnelsTotal();
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 4 }),
        fc.constantFrom('close', 'terminate', 'reset', 'upstream-die', 'upstream-rst'),
        async (messages, ending) => {
          runs++;
          const ws = new WebSocket(`ws://127.0.0.1:${proxy.info.outbound}/`, { headers: { host: 'chat.default.svc.cluster.local' } });
          ws.on('error', () => {});
          await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('unexpected-response', () => reject(new Error('no 101'))); });
          for (let i = 0; i < messages; i++) {
            ws.send(`m${i}`);
            await new Promise<void>((r) => ws.once('message', () => r()));
          }
          const closed = new Promise<void>((r) => ws.once('close', () => r()));
          const sock = (ws as unknown as { _socket: net.Socket })._socket;
          if (ending === 'close') ws.close(1000);
          else if (ending === 'terminate') ws.terminate();
          else if (ending === 'reset') sock.resetAndDestroy();
          else ws.send(ending === 'upstream-die' ? 'die' : 'rst');
          await closed;
        },
      ),
      { numRuns: 150 },
    );
    await waitFor(async () => (await tunnelsActive()) === 0 && upstreamSockets.size === 0, 5000);
    expect((await tunnelsTotal()) - before).toBe(runs);
    expect(proxy.exitCode).toBeNull();
    expect(proxy.stderr).not.toMatch(/uncaught|unhandled/i);
  });
});

describe('a raw Upgrade tunnel half-closes', () => {
  it('the client sends 2 MB and its FIN; the upstream answers after reading to the end; the answer arrives', async () => {
    const body = Buffer.alloc(2 << 20);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    const sock = net.connect({ port: proxy.info.outbound, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let sawEnd = false;
    let error: string | undefined;
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('end', () => { sawEnd = true; });
    sock.on('error', (e: NodeJS.ErrnoException) => { error = e.code; });
    sock.write('GET / HTTP/1.1\r\nHost: sum.default.svc.cluster.local\r\nConnection: Upgrade\r\nUpgrade: sum\r\n\r\n');
    await waitFor(() => Buffer.concat(chunks).includes('\r\n\r\n'), 5000);
    sock.end(body);
    await new Promise((r) => sock.once('close', r));
    const text = Buffer.concat(chunks).toString('latin1');
    expect(text.startsWith('HTTP/1.1 101')).toBe(true);
    expect(text.slice(text.indexOf('\r\n\r\n') + 4)).toBe(`${body.length} ${createHash('sha256').update(body).digest('hex')}`);
    expect(sawEnd).toBe(true);
    expect(error).toBeUndefined();
    await waitFor(async () => (await tunnelsActive()) === 0, 3000);
  });
});
