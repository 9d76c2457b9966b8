/**
 * Issue #14, RELIABILITY.md §4 row 1: the AWS http-desync-guardian corpus (test/fixtures/http-desync-guardian, Apache
 * 2.0; README there for provenance) replayed against the real proxy. Each case is sent on a fresh connection with a
 * body fitting its framing headers and a valid request pipelined behind it; a recording upstream with its own strict
 * parser (test/support/recording-upstream.ts) checks whatever reaches it.
 * - Severe and Ambiguous: rejected (4xx/5xx, Connection: close, closed by the proxy, zero bytes upstream, nothing
 *   after it served), or forwarded re-framed so that the upstream's strict parser finds nothing ambiguous.
 * - Compliant and Acceptable: forwarded, unambiguous upstream, the pipelined request served too.
 * Where the tier allows either, the outcome Remora gives today is pinned per case (EXPECTED_FORWARDED below), so a
 * change of behaviour shows up as a test failure to look at.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { startProxy, REPO, type RunningProxy } from '../support/proxy-harness.js';
import { RecordingUpstream } from '../support/recording-upstream.js';
import { serviceEntry } from '../integration/resilience/helpers.js';
import { RawClient, cleanup, header, parseResponses, settle, until } from '../integration/http1/raw.js';

const DIR = join(REPO, 'test/fixtures/http-desync-guardian');
const HOST = 'rec.default.svc.cluster.local';
const NEXT = `GET /pipelined-after-case HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;

interface Case {
  file: string;
  name: string;
  uri: string;
  method: string;
  version: string;
  headers: Array<{ name: string; value: unknown }>;
  tier: 'Severe' | 'Ambiguous' | 'Acceptable' | 'Compliant';
}

function loadCases(): Case[] {
  const out: Case[] = [];
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort()) {
    const docs = parse(readFileSync(join(DIR, file), 'utf8')) as Array<{ name: string; uri: string; method: string; version: string; headers?: Array<{ name: string; value: unknown }>; expected: { tier: Case['tier'] } }>;
    for (const d of docs) out.push({ file, name: d.name, uri: String(d.uri ?? ''), method: String(d.method), version: String(d.version ?? ''), headers: d.headers ?? [], tier: d.expected.tier });
  }
  return out;
}

/**
 * The case as bytes (`\xff` in the YAML is the byte 0xff): its request line and headers, a Host naming the
 * recording upstream's service when the case has none, and a body for its framing — the last chunk when a
 * Transfer-Encoding mentions chunked, else as many bytes as a single plain Content-Length says.
 */
function bytesOf(c: Case): Buffer {
  let s = `${c.method} ${c.uri}${c.version === '' ? '' : ` ${c.version}`}\r\n`;
  const hasHost = c.headers.some((h) => String(h.name).toLowerCase() === 'host');
  if (!hasHost) s += `Host: ${HOST}\r\n`;
  for (const h of c.headers) s += `${String(h.name)}:${String(h.value ?? '').startsWith(' ') ? '' : ' '}${String(h.value ?? '')}\r\n`;
  s += '\r\n';
  const te = c.headers.filter((h) => /transfer.?encoding/i.test(String(h.name))).map((h) => String(h.value)).join(',');
  const cl = c.headers.filter((h) => String(h.name).toLowerCase() === 'content-length').map((h) => String(h.value).trim());
  if (/chunked/i.test(te)) s += '0\r\n\r\n';
  else if (cl.length === 1 && /^\d{1,7}$/.test(cl[0]!)) s += 'x'.repeat(Number(cl[0]));
  return wire(s);
}

/** Characters up to U+00FF as one byte each (the YAML's `\xNN`), anything above as its UTF-8 bytes (as a client sends it). */
function wire(s: string): Buffer {
  const out: Buffer[] = [];
  let run = '';
  for (const ch of s) {
    if (ch.codePointAt(0)! <= 0xff) { run += ch; continue; }
    out.push(Buffer.from(run, 'latin1'), Buffer.from(ch, 'utf8'));
    run = '';
  }
  out.push(Buffer.from(run, 'latin1'));
  return Buffer.concat(out);
}

interface Outcome {
  kind: 'rejected' | 'forwarded' | 'hung';
  status: number;
  closeHeader: boolean;
  finByProxy: boolean;
  responses: number;
  upstreamBytes: number;
  upstreamRequests: string[];
  violations: string[];
  text: string;
}

let up: RecordingUpstream;
let proxy: RunningProxy;

beforeAll(async () => {
  up = await new RecordingUpstream().start();
  // REGISTRY_ONLY: a case naming another Host gets a local 502, never a connection out of the machine.
  proxy = await startProxy({ 'se.yaml': serviceEntry('rec', [{ port: up.port }]) }, ['--outbound-traffic-policy', 'REGISTRY_ONLY']);
});

afterAll(async () => {
  await cleanup();
  await proxy?.stop();
  await up?.stop();
});

async function replay(c: Case): Promise<Outcome> {
  up.reset();
  const cl = await RawClient.connect(proxy.info.outbound, { allowHalfOpen: true });
  cl.send(Buffer.concat([bytesOf(c), Buffer.from(NEXT, 'latin1')]));
  const head = [c.method === 'HEAD', false];
  // Done when the proxy closed its side, or both requests were answered.
  await until(cl.sock, ['data', 'end', 'close'], () => cl.ended || cl.closed || parseResponses(cl.received, head, false).length >= 2, 2500, 'the proxy to answer').catch(() => undefined);
  await settle(40);
  const rs = parseResponses(cl.received, head, cl.ended || cl.closed);
  cl.sock.destroy();
  const first = rs[0];
  const upstreamRequests = up.requests.map((r) => `${r.method} ${r.target}`);
  const forwarded = up.requests.some((r) => r.target !== '/pipelined-after-case') || up.violations.length > 0;
  const kind = first === undefined ? 'hung' : forwarded ? 'forwarded' : first.status >= 400 ? 'rejected' : 'forwarded';
  return {
    kind,
    status: first?.status ?? 0,
    closeHeader: first !== undefined && header(first, 'connection')?.toLowerCase() === 'close',
    finByProxy: cl.ended,
    responses: rs.length,
    upstreamBytes: up.bytes,
    upstreamRequests,
    violations: [...up.violations],
    text: cl.text.slice(0, 160),
  };
}

const CASES = loadCases();

/**
 * The cases Remora forwards (every other one is rejected). Severe: none. Ambiguous: GET/HEAD carrying a body (framed
 * by a valid Content-Length or chunked: forwarded re-framed, as Envoy and nginx forward them). Compliant cases it
 * rejects, by decision: a Transfer-Encoding other than `chunked` alone (`gzip, chunked`, `identity, chunked`,
 * parameters, two TE fields) gets 501 as in Envoy and nginx; raw non-ASCII in the URI and an empty URI get llhttp's
 * 400. Acceptable cases it rejects: control bytes in header names or values, HTTP/0.9 (505), HTTP/1.2, extra spaces
 * in the version, raw spaces in the URI (llhttp's 400).
 */
const FORWARDED = new Set([
  'acceptable.yaml: Get with a body and Content-Length:0',
  'ambiguous.yaml: Get with a body and Content-Length',
  'ambiguous.yaml: Get with a body and Transfer-Encoding',
  'ambiguous.yaml: Head with a body and Content-Length',
  'ambiguous.yaml: Head with a body and Transfer-Encoding',
  'more-compliant-tests.yaml: Correct CL OK',
  'more-compliant-tests.yaml: HTTP Version.1.1 OK',
  'more-compliant-tests.yaml: Has a CL in PUT OK',
  'more-compliant-tests.yaml: Has a TE in PUT OK',
  'more-compliant-tests.yaml: Large Size OK',
  'more-compliant-tests.yaml: Very many headers',
  'real-life-test-cases.yaml: Has a CL in GET',
  'real-life-test-cases.yaml: Has a TE in GET',
  'rfc-compliant.yaml: Compliant URL',
  'rfc-compliant.yaml: No headers',
  'rfc-compliant.yaml: Valid Content-Length',
  'rfc-compliant.yaml: Valid Transfer-Encoding (chunked) + custom header (non-ascii)',
  'rfc-compliant.yaml: Valid Transfer-Encoding (chunked)',
  'rfc-compliant.yaml: Valid custom header with digits in name',
  'rfc-compliant.yaml: Valid custom header with dot in name',
  'rfc-compliant.yaml: Valid custom header with tchar in name and obs-text',
  'rfc-compliant.yaml: Valid custom header with underscore in name',
  'uri-specific-test-cases.yaml: %09 in URI is OK',
  'uri-specific-test-cases.yaml: %0A in URI is OK',
  'uri-specific-test-cases.yaml: %0D in URI is OK',
  'uri-specific-test-cases.yaml: %20 in URI is OK',
]);

const tally = new Map<string, number>();

describe('http-desync-guardian corpus', () => {
  afterAll(() => {
    console.log(`desync corpus: ${[...tally].sort().map(([k, n]) => `${k} ${n}`).join(', ')}`);
  });

  it('the corpus is there and complete', () => {
    expect(CASES.length).toBe(158);
    expect(CASES.filter((c) => c.tier === 'Severe').length).toBe(58);
  });

  it.each(CASES.map((c) => [`${c.file}: ${c.tier}: ${c.name}`, c] as const))('%s', async (_label, c) => {
    const o = await replay(c);
    const key = `${c.tier} ${o.kind}`;
    tally.set(key, (tally.get(key) ?? 0) + 1);
    const expected = c.tier === 'Severe' ? 'rejected' : FORWARDED.has(`${c.file}: ${c.name}`) ? 'forwarded' : 'rejected';
    expect(o.kind, `${o.text} upstream ${JSON.stringify(o.upstreamRequests)} ${JSON.stringify(o.violations)}`).toBe(expected);
    // Whatever reached the upstream, its strict parser read it one way only.
    expect(o.violations).toEqual([]);
    if (o.kind === 'rejected') {
      expect(o.status).toBeGreaterThanOrEqual(400);
      expect(o.closeHeader, o.text).toBe(true);
      expect(o.finByProxy, 'closed by the proxy').toBe(true);
      expect(o.responses, 'the pipelined request was not served').toBe(1);
      expect(o.upstreamBytes, 'nothing reached the upstream').toBe(0);
    } else {
      expect(o.status).toBe(200);
      // The case itself arrived as one request, and the pipelined one behind it too, each answered.
      expect(o.upstreamRequests.filter((r) => !r.endsWith(' /pipelined-after-case'))).toHaveLength(1);
      expect(o.upstreamRequests).toContain('GET /pipelined-after-case');
      expect(o.responses).toBe(2);
    }
  });
});
