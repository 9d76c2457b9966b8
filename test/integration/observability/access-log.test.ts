/**
 * Access logs written by `remora run --access-log PATH` in Istio's default text format, Istio's JSON format and a
 * custom Envoy format string: each line carries the response flags, the request id and the upstream cluster.
 */
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { serviceEntry, stopGracefully } from './support.js';

const CLUSTER = 'outbound|9080||reviews.default.svc.cluster.local';
const DEAD = 'outbound|80||dead.default.svc.cluster.local';

let up: FakeUpstream;
let dir: string;
const proxies: RunningProxy[] = [];

beforeAll(async () => {
  up = await fakeUpstream('reviews');
  dir = mkdtempSync(join(tmpdir(), 'remora-alog-'));
});

afterAll(async () => {
  for (const p of proxies) await p.stop();
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

const mesh = (): string =>
  [
    serviceEntry('reviews', 9080, [{ port: up.port }]),
    // Port 1 on loopback refuses connections: 503 with UF (connection failure).
    serviceEntry('dead', 80, [{ port: 1 }]),
  ].join('---\n');

/** Start a proxy logging to a fresh file, send one good and one failing request, and return the file's lines. */
async function logLines(name: string, format: string[]): Promise<{ lines: string[]; proxy: RunningProxy }> {
  const path = join(dir, `${name}.log`);
  const proxy = await startProxy({ 'mesh.yaml': mesh() }, ['--access-log', path, ...format]);
  proxies.push(proxy);
  expect((await proxy.get('/reviews/1?x=1', { host: 'reviews:9080', 'x-request-id': `${name}-ok`, 'user-agent': 'obs-test/1' })).status).toBe(200);
  expect((await proxy.get('/down', { host: 'dead', 'x-request-id': `${name}-fail` })).status).toBe(503);
  // Lines are batched and flushed within 100 ms; no sleep beyond that.
  await waitFor(() => existsSync(path) && readFileSync(path, 'utf8').split('\n').filter(Boolean).length >= 2, 5000);
  return { lines: readFileSync(path, 'utf8').split('\n').filter(Boolean), proxy };
}

describe('access logs through the CLI', () => {
  it('text: Istio default format with flags, request id and upstream cluster', async () => {
    const { lines, proxy } = await logLines('text', []);
    expect(lines).toHaveLength(2);
    const ok = lines.find((l) => l.includes('"text-ok"'))!;
    // %DOWNSTREAM_REMOTE_ADDRESS% is ip:port, as Envoy prints it.
    // [START_TIME] "METHOD PATH PROTOCOL" CODE FLAGS DETAILS TERMINATION "FAILURE" RX TX DURATION UPSTREAM_TIME "XFF" "UA" "ID" "AUTHORITY" "UPSTREAM_HOST" CLUSTER …
    const m = /^\[(\S+)\] "GET \/reviews\/1\?x=1 HTTP\/1\.1" 200 - via_upstream - "-" 0 (\d+) (\d+) (\d+|-) "-" "obs-test\/1" "text-ok" "reviews:9080" "127\.0\.0\.1:(\d+)" (\S+) - 127\.0\.0\.1:(\d+) 127\.0\.0\.1:\d+ - (\S+)$/.exec(ok);
    expect(m, ok).not.toBeNull();
    expect(Date.parse(m![1]!)).not.toBeNaN();
    expect(Number(m![2])).toBeGreaterThan(0);
    expect(Number(m![5])).toBe(up.port);
    expect(m![6]).toBe(CLUSTER);
    expect(Number(m![7])).toBe(proxy.info.outbound);
    const fail = lines.find((l) => l.includes('"text-fail"'))!;
    expect(fail).toMatch(/"GET \/down HTTP\/1\.1" 503 (UF|UF,URX) \S+/);
    expect(fail).toContain(` ${DEAD} `);
    expect(fail).toContain('"127.0.0.1:1"');
  });

  it('json: one object per line with Istio keys, numbers as numbers', async () => {
    const { lines } = await logLines('json', ['--access-log-format', 'json']);
    const objs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const ok = objs.find((o) => o.request_id === 'json-ok')!;
    expect(ok).toMatchObject({
      method: 'GET',
      path: '/reviews/1?x=1',
      protocol: 'HTTP/1.1',
      response_code: 200,
      response_flags: '-',
      response_code_details: 'via_upstream',
      authority: 'reviews:9080',
      upstream_host: `127.0.0.1:${up.port}`,
      upstream_cluster: CLUSTER,
      user_agent: 'obs-test/1',
      bytes_received: 0,
    });
    expect(typeof ok.duration).toBe('number');
    expect(typeof ok.bytes_sent).toBe('number');
    expect(Date.parse(String(ok.start_time))).not.toBeNaN();
    const fail = objs.find((o) => o.request_id === 'json-fail')!;
    expect(fail.response_code).toBe(503);
    expect(String(fail.response_flags)).toMatch(/^UF(,URX)?$/);
    expect(fail.upstream_cluster).toBe(DEAD);
  });

  it('custom format: %RESPONSE_FLAGS% %UPSTREAM_CLUSTER% and friends', async () => {
    const fmt = '%RESPONSE_FLAGS% %UPSTREAM_CLUSTER% %REQ(X-REQUEST-ID)% %RESPONSE_CODE% %UPSTREAM_REQUEST_ATTEMPT_COUNT%';
    const { lines, proxy } = await logLines('custom', ['--access-log-format', fmt]);
    expect(lines).toContain(`- ${CLUSTER} custom-ok 200 1`);
    const fail = lines.find((l) => l.includes(' custom-fail '))!;
    // Istio's default retry policy retries connect failures twice: 3 attempts, then UF,URX.
    const m = /^(\S+) (\S+) custom-fail 503 (\d+)$/.exec(fail);
    expect(m, fail).not.toBeNull();
    expect(m![1]).toContain('UF');
    expect(m![2]).toBe(DEAD);
    expect(Number(m![3])).toBeGreaterThanOrEqual(1);
    // A graceful stop flushes and exits 0 even with lines just written.
    await proxy.get('/last', { host: 'reviews:9080', 'x-request-id': 'custom-last' });
    expect(await stopGracefully(proxy)).toBe(0);
    expect(readFileSync(join(dir, 'custom.log'), 'utf8')).toContain(`- ${CLUSTER} custom-last 200 1\n`);
  });
});
