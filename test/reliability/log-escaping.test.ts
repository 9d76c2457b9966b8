/**
 * RELIABILITY.md §4 row 23 through the real CLI: request headers carrying control bytes or ANSI escapes, sent over
 * HTTP/1.1 and HTTP/2, against the access log in Istio's text and JSON formats — the log never holds a raw control
 * byte (C0, DEL, C1), one request is always exactly one line, and a JSON line parses back to the exact value sent.
 * HTTP/1's parser refuses the worst bytes itself (CR, LF, NUL, ESC, DEL in a value: 400, nothing logged) and lets
 * obs-text through (0x80-0xff, among them the one-byte CSI 0x9b, C1); HTTP/2 (nghttp2) serves the request but drops
 * a field whose value holds a C0 control or DEL (logged as absent). What reaches the log — C1, tab, obs-text — is
 * where the escaping must hold: a JSON line used to carry a raw U+009B (JSON.stringify leaves C1 alone).
 *
 * And header values in config: CR, LF or NUL in a VirtualService header operation (route and destination level),
 * a redirect, a rewrite or a DestinationRule cookie are rejected at load with `file:line: Kind/ns/name: field:
 * reason` by `remora validate` and `remora run`, and a running proxy keeps serving its last good config.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { CLI, configDir, startProxy, waitFor, type RunningProxy } from '../support/proxy-harness.js';
import { RawClient, cleanup } from '../integration/http1/raw.js';
import { FLAG, FRAME, RawH2, frame, requestHeaders } from '../support/h2-raw.js';
import { serviceEntry } from '../integration/resilience/helpers.js';

const run = promisify(execFile);
let up: FakeUpstream;
const dirs: string[] = [];
const proxies: RunningProxy[] = [];

beforeAll(async () => { up = await fakeUpstream('up'); });
afterAll(async () => {
  await cleanup();
  for (const p of proxies) await p.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await up.close();
});

/** Values that end up in logged fields: ANSI colour, a one-byte CSI (C1), a fake log line, a tab, obs-text. */
const H2_VALUES = ['evil\x1b[31mred\x1b[0m', 'csi\x9b2J', 'del\x7fx', 'bell\x07\x08', 'ok\ttab', 'caf\xe9'];
const H1_OK = ['csi\x9b2J', 'ok\ttab', 'caf\xe9'];
const H1_REFUSED = ['evil\x1b[31mred', 'del\x7fx', 'nul\x00x', 'cr\rx', 'vt\x0bx'];

/** Raw bytes that are no control character: newline only as the line terminator. */
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

async function withLog(format: string): Promise<{ p: RunningProxy; log: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'remora-log-'));
  dirs.push(dir);
  const log = join(dir, 'access.log');
  const p = await startProxy({ 'se.yaml': serviceEntry('up', [{ port: up.port }]) }, ['--access-log', log, '--access-log-format', format]);
  proxies.push(p);
  return { p, log };
}

async function h1(p: RunningProxy, ua: string): Promise<number> {
  const c = await RawClient.connect(p.info.outbound);
  c.send(Buffer.from(`GET /h1 HTTP/1.1\r\nHost: up\r\nUser-Agent: ${ua}\r\nx-request-id: rid-${ua}\r\nConnection: close\r\n\r\n`, 'latin1'));
  const [r] = await c.responses(1);
  return r!.status;
}

async function h2(p: RunningProxy, ua: string): Promise<number> {
  const c = await RawH2.connect(p.info.outbound);
  c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestHeaders('up', '/h2', 'GET', [['user-agent', ua], ['x-request-id', `rid-${ua}`]])));
  await c.until(() => c.closed || c.streamFrames(1).some((f) => f.type === FRAME.HEADERS || f.type === FRAME.RST_STREAM), 3000, 'a response or a reset');
  const h = c.streamFrames(1).find((f) => f.type === FRAME.HEADERS);
  c.destroy();
  // Static-table index 8 is `:status 200`; anything else (reset, other status) counts as not served.
  return h !== undefined && h.payload[0] === 0x88 ? 200 : -1;
}

/** The log file once it holds `n` lines (the writer is asynchronous). */
async function lines(log: string, n: number): Promise<string[]> {
  let text = '';
  await waitFor(() => existsSync(log) && (text = readFileSync(log, 'utf8')).split('\n').length - 1 >= n, 5000);
  await new Promise((r) => setTimeout(r, 200)); // and no more arrive
  text = readFileSync(log, 'utf8');
  return text.split('\n').slice(0, -1);
}

describe('access log: control bytes in logged headers are escaped, one request is one line', () => {
  for (const format of ['text', 'json'] as const) {
    it(`${format} format, HTTP/1.1 and HTTP/2`, async () => {
      const { p, log } = await withLog(format);
      const statuses: Array<[string, string, number]> = [];
      for (const v of H1_OK) statuses.push(['h1', v, await h1(p, v)]);
      for (const v of H1_REFUSED) statuses.push(['h1', v, await h1(p, v)]);
      for (const v of H2_VALUES) statuses.push(['h2', v, await h2(p, v)]);
      // HTTP/1's parser refuses CTLs but tab in a value (400, the request never reaches the proxy path); HTTP/2 delivers them all.
      expect(statuses).toEqual([
        ...H1_OK.map((v) => ['h1', v, 200]),
        ...H1_REFUSED.map((v) => ['h1', v, 400]),
        ...H2_VALUES.map((v) => ['h2', v, 200]),
      ]);
      const served = H1_OK.length + H2_VALUES.length;
      const got = await lines(log, served);
      expect(got.length).toBe(served);
      expect(got.filter((l) => CONTROL.test(l))).toEqual([]);
      // What the proxy received: HTTP/1 delivers these values whole; nghttp2 drops a field with a C0 control or DEL.
      const received = [...H1_OK, ...H2_VALUES.map((v) => (/[\x00-\x08\x0a-\x1f\x7f]/.test(v) ? null : v))];
      expect(received.filter((v) => v !== null && /[\x80-\x9f\t]/.test(v)).length).toBe(4);
      if (format === 'json') {
        const objs = got.map((l) => JSON.parse(l) as { user_agent: string | null; request_id: string | null });
        expect(objs.map((o) => o.user_agent)).toEqual(received);
        expect(objs.map((o) => o.request_id)).toEqual(received.map((v) => (v === null ? null : `rid-${v}`)));
      } else {
        // Every line carries its escaped value in the user-agent field (or "-"), in order.
        const esc = (v: string | null): string => (v === null ? '-' : v.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => (c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)));
        expect(got.map((l, i) => l.includes(`"${esc(received[i]!)}" "${received[i] === null ? '-' : `rid-${esc(received[i]!)}`}"`))).toEqual(received.map(() => true));
      }
    });
  }
});

describe('header values in config: CR, LF, NUL rejected at load', () => {
  const vs = (set: string, add: string, dest: string, redirect: string): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: up, namespace: default}
spec:
  hosts: [up.default.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /moved}}]
    redirect: {uri: "${redirect}"}
  - headers:
      request:
        set: {x-set: "${set}"}
      response:
        add: {x-add: "${add}"}
    route:
    - destination: {host: up.default.svc.cluster.local}
      headers:
        request:
          set: {x-dest: "${dest}"}
`;
  const GOOD = vs('one', 'two', 'three', '/new');
  const BAD = vs('a\\r\\nInjected: 1', 'b\\0c', 'd\\ne', '/x\\r\\nSet-Cookie: s=1');
  const BAD_FIELDS = [
    /vs\.yaml:11: VirtualService\/default\/up: spec\.http\[1\]\.headers\.request\.set\.x-set: header value must not contain control characters/,
    /vs\.yaml:13: VirtualService\/default\/up: spec\.http\[1\]\.headers\.response\.add\.x-add: header value must not contain control characters/,
    /vs\.yaml:18: VirtualService\/default\/up: spec\.http\[1\]\.route\[0\]\.headers\.request\.set\.x-dest: header value must not contain control characters/,
    /vs\.yaml:8: VirtualService\/default\/up: spec\.http\[0\]\.redirect\.uri: redirect uri \(sent in Location\) must not contain control characters/,
  ];
  const DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: up, namespace: default}
spec:
  host: up.default.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: "s\\r\\nSet-Cookie: x=1", ttl: 0s}
`;

  it('remora validate and remora run refuse the file, naming each field with file:line', async () => {
    const dir = configDir({ 'se.yaml': serviceEntry('up', [{ port: up.port }]), 'vs.yaml': BAD, 'dr.yaml': DR });
    dirs.push(dir);
    const v = await run(process.execPath, [CLI, 'validate', '--config', dir]).then(() => ({ code: 0, stdout: '', stderr: '' }), (e: { code: number; stdout: string; stderr: string }) => e);
    const vOut = v.stdout + v.stderr;
    expect(v.code).toBe(1);
    for (const re of BAD_FIELDS) expect(vOut).toMatch(re);
    expect(vOut).toMatch(/dr\.yaml:9: DestinationRule\/default\/up: spec\.trafficPolicy\.loadBalancer\.consistentHash\.httpCookie\.name: httpCookie name \(sent in Set-Cookie\) must not contain control characters/);
    const r = await startProxy(dir, []).then(async (p) => { await p.stop(); return { code: 0, stderr: '' }; }, (e: { code: number; stderr: string }) => e);
    expect(r.code).toBe(1);
    for (const re of BAD_FIELDS) expect(r.stderr).toMatch(re);
  });

  it('a running proxy rejects the change whole and keeps serving the last good headers', async () => {
    const p = await startProxy({ 'se.yaml': serviceEntry('up', [{ port: up.port }]), 'vs.yaml': GOOD });
    proxies.push(p);
    const check = async (): Promise<[number, unknown, unknown, unknown]> => {
      const r = await p.get('/', { host: 'up' });
      return [r.status, r.json().headers['x-set'], r.json().headers['x-dest'], r.headers['x-add']];
    };
    expect(await check()).toEqual([200, 'one', 'three', 'two']);
    const version = JSON.parse((await p.admin('/config_dump')).body).version;
    p.writeConfig('vs.yaml', BAD);
    await waitFor(async () => JSON.parse((await p.admin('/config_dump')).body).lastError !== null, 3000);
    const dump = JSON.parse((await p.admin('/config_dump')).body);
    expect(dump.version).toBe(version);
    const errors = (dump.lastError.errors as string[]).join('\n');
    for (const re of BAD_FIELDS) expect(errors).toMatch(re);
    expect(await check()).toEqual([200, 'one', 'three', 'two']);
    expect((await p.admin('/ready')).status).toBe(200);
    const failures = /^remora_config_reload_failures_total (\d+)$/m.exec((await p.admin('/stats/prometheus')).body);
    expect(Number(failures?.[1])).toBe(1);
  });
});
