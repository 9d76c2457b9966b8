// The benchmark upstream: sized bodies, keep-alive with pipelined and chunked requests, counters.
import { describe, it, expect, afterAll } from 'vitest';
import net from 'node:net';
import http from 'node:http';
import { startUpstream } from '../../../bench/upstream.js';
import { runLoad } from '../../../src/bench/generator.js';

const up = await startUpstream([0, 0]);
afterAll(() => up.close());

function rawExchange(port: number, data: string, expectResponses: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(data));
    let got = '';
    s.on('data', (d) => {
      got += d.toString('latin1');
      if ((got.match(/HTTP\/1\.1 200/g) ?? []).length >= expectResponses && /\r\n\r\n[a{][^]*$/.test(got)) {
        // Wait a moment for the last body, then close.
        setTimeout(() => { s.destroy(); resolve(got); }, 50);
      }
    });
    s.on('error', reject);
  });
}

describe('bench upstream', () => {
  it('answers 98 bytes by default and N bytes for /bytes/N', async () => {
    const r = await runLoad(`http://127.0.0.1:${up.ports[0]}/bytes/1024`, { rate: 100, durationMs: 200, warmupMs: 0, connections: 2 });
    expect(r.completed).toBeGreaterThan(10);
    expect(r.responseBytes).toBe(1024 * r.completed);
    const d = await runLoad(`http://127.0.0.1:${up.ports[0]}/`, { rate: 100, durationMs: 200, warmupMs: 0, connections: 2 });
    expect(d.responseBytes).toBe(98 * d.completed);
  });

  it('skips content-length and chunked request bodies on a pipelined connection', async () => {
    const wire =
      'POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello' +
      'POST /v1/traces HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' +
      'GET /bytes/3 HTTP/1.1\r\nhost: x\r\n\r\n';
    const got = await rawExchange(up.ports[1]!, wire, 3);
    expect(got.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(3);
    expect(got.endsWith('\r\n\r\naaa')).toBe(true);
  });

  it('counts requests per port and OTLP posts', async () => {
    const counts = await new Promise<{ ports: Record<string, number>; tracePosts: number }>((resolve, reject) =>
      http.get(`http://127.0.0.1:${up.ports[0]}/__counts`, (res) => {
        let b = '';
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve(JSON.parse(b)));
      }).on('error', reject),
    );
    expect(counts.ports[String(up.ports[0])]).toBeGreaterThan(20);
    expect(counts.ports[String(up.ports[1])]).toBe(2);
    expect(counts.tracePosts).toBe(1);
  });
});
