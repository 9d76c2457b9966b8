import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  AccessLogFormatError,
  AccessLogger,
  ISTIO_JSON_FORMAT,
  compileAccessLogFormat,
  compileTextFormat,
} from '../../../src/telemetry/access-log.js';
import { REVIEWS_V1, record } from './records.js';

describe('access log formats', () => {
  it("renders Istio's default text format, with '-' for unset values", () => {
    const line = compileAccessLogFormat('text')(
      record({ requestHeaders: { 'x-request-id': 'req-1', 'user-agent': 'curl/8.0', 'x-envoy-original-path': '/orig' } }),
    );
    expect(line).toBe(
      '[2024-05-01T12:30:45.123Z] "GET /orig HTTP/1.1" 200 - via_upstream - "-" 0 295 3 2 "-" "curl/8.0" "req-1" ' +
        `"reviews:9080" "10.0.0.7:9080" ${REVIEWS_V1} - 127.0.0.1:15001 127.0.0.1:51234 - reviews.default.svc.cluster.local:9080/default\n`,
    );
  });

  it('logs flags, details and the attempt count of a failed request', () => {
    const fmt = compileTextFormat('%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %UPSTREAM_HOST% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%');
    const rec = record({ status: 504, flags: 'UT,URX', details: 'response_timeout', attempts: 3, upstreamHost: undefined, upstreamServiceTimeMs: undefined, responseHeaders: undefined });
    expect(fmt(rec)).toBe('504 UT,URX response_timeout 3 - -\n');
  });

  it('uses the :PATH fallback, truncates, strips the query and reads response headers', () => {
    const fmt = compileTextFormat('%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %REQ(:PATH):6% %REQ_WITHOUT_QUERY(:PATH)% %RESP(CONTENT-TYPE)% %REQ(USER-AGENT):4%');
    expect(fmt(record())).toBe('/reviews/1?x=1 /revie /reviews/1 application/json curl\n');
  });

  it('supports %% literals, START_TIME formats, ENVIRONMENT and address helpers', () => {
    const fmt = compileTextFormat('100%% %START_TIME(%Y/%m/%d %H:%M:%S.%3f %s)% %ENVIRONMENT(POD_NAME)% %ENVIRONMENT(NOPE)% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%', {
      env: { POD_NAME: 'pp-1' },
    });
    expect(fmt(record())).toBe('100% 2024/05/01 12:30:45.123 1714566645 pp-1 - 127.0.0.1\n');
  });

  it('escapes CR/LF, control and ANSI characters in logged header values', () => {
    const fmt = compileAccessLogFormat('text');
    const line = fmt(record({ requestHeaders: { 'user-agent': 'evil\r\n[2024] "GET /admin" 200\x1b[31mred\x9bX', 'x-request-id': 'a\tb' } }));
    expect(line.split('\n')).toHaveLength(2); // exactly one line, terminated
    expect(line).toContain('"evil\\r\\n[2024] "GET /admin" 200\\x1b[31mred\\x9bX"');
    expect(line).toContain('"a\\tb"');
    expect(line).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
  });

  it('a JSON line escapes DEL and C1 controls too (JSON.stringify leaves them) and still parses to the same value', () => {
    const ua = 'a\x7fb\x9b31mc\x85d\u2028e';
    const line = compileAccessLogFormat('json')(record({ requestHeaders: { 'user-agent': ua } }));
    expect(line).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    expect((JSON.parse(line) as { user_agent: string }).user_agent).toBe(ua);
  });

  it("renders Istio's JSON format with Istio's keys, numbers as numbers and null for unset", () => {
    const line = compileAccessLogFormat('json')(record({ requestHeaders: { 'user-agent': 'x\n\x1by' } }));
    expect(line.endsWith('}\n')).toBe(true);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    const obj = JSON.parse(line) as Record<string, unknown>;
    expect(Object.keys(obj)).toEqual(Object.keys(ISTIO_JSON_FORMAT));
    expect(obj).toMatchObject({
      start_time: '2024-05-01T12:30:45.123Z',
      method: 'GET',
      path: '/reviews/1?x=1',
      protocol: 'HTTP/1.1',
      response_code: 200,
      response_flags: '-',
      response_code_details: 'via_upstream',
      bytes_received: 0,
      bytes_sent: 295,
      duration: 3,
      upstream_service_time: 2,
      x_forwarded_for: null,
      user_agent: 'x\n\x1by',
      request_id: null,
      authority: 'reviews:9080',
      upstream_host: '10.0.0.7:9080',
      upstream_cluster: REVIEWS_V1,
      downstream_remote_address: '127.0.0.1:51234',
      route_name: 'reviews.default.svc.cluster.local:9080/default',
      upstream_transport_failure_reason: null,
    });
  });

  it('accepts a custom JSON format; mixed values become strings', () => {
    const fmt = compileAccessLogFormat('{"code":"%RESPONSE_CODE%","line":"%REQ(:METHOD)% %REQ(:PATH)%","tries":"%UPSTREAM_REQUEST_ATTEMPT_COUNT%","f":"%RESPONSE_FLAGS%"}');
    expect(JSON.parse(fmt(record({ attempts: 2, flags: 'URX' })))).toEqual({ code: 200, line: 'GET /reviews/1?x=1', tries: 2, f: 'URX' });
  });

  it('rejects unknown and malformed operators with a clear message', () => {
    expect(() => compileAccessLogFormat('%NOPE%')).toThrow(AccessLogFormatError);
    expect(() => compileAccessLogFormat('%NOPE%')).toThrow(/unknown access log operator %NOPE%/);
    expect(() => compileAccessLogFormat('%REQ%')).toThrow(/needs a header name/);
    expect(() => compileAccessLogFormat('50% off')).toThrow(/malformed operator.*%%/);
    expect(() => compileAccessLogFormat('%DURATION(x)%')).toThrow(/takes no argument/);
    expect(() => compileAccessLogFormat('%START_TIME(%Q)%')).toThrow(/unsupported specifier/);
    expect(() => compileAccessLogFormat('{"a": 1}')).toThrow(/string values/);
  });
});

/** A destination whose writes complete only when released, to simulate a slow pipe. */
class SlowSink extends Writable {
  chunks: string[] = [];
  pending: Array<() => void> = [];
  /** Once set, writes complete immediately (the destination caught up). */
  fast = false;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.chunks.push(chunk.toString());
    if (this.fast) cb();
    else this.pending.push(() => cb());
  }
  release(): void {
    const p = this.pending;
    this.pending = [];
    for (const f of p) f();
  }
}

describe('AccessLogger', () => {
  it('batches lines and writes them on flush', async () => {
    const sink = new SlowSink();
    const log = new AccessLogger(sink, '%RESPONSE_CODE%', { flushIntervalMs: 60_000 });
    log.log(record());
    log.log(record({ status: 503 }));
    expect(sink.chunks).toEqual([]); // nothing written synchronously
    const done = log.flush();
    expect(sink.chunks).toEqual(['200\n503\n']); // one write for the batch
    sink.release();
    await done;
    expect(log.writtenLines()).toBe(2);
    expect(log.droppedLines()).toBe(0);
  });

  it('drops and counts lines when a slow destination fills the bounded buffer, without blocking', async () => {
    const sink = new SlowSink();
    // Each line is 4 chars ('200\n'); room for 10 lines in flight + batch.
    const log = new AccessLogger(sink, '%RESPONSE_CODE%', { maxBufferBytes: 40, batchBytes: 8, flushIntervalMs: 60_000 });
    for (let i = 0; i < 100; i++) log.log(record());
    expect(log.droppedLines()).toBe(90);
    expect(sink.chunks.join('')).toBe('200\n200\n'); // only the first batch reached the sink so far
    sink.fast = true;
    sink.release();
    await log.flush();
    expect(log.writtenLines()).toBe(10);
    // Space is available again once the destination caught up.
    log.log(record());
    await log.flush();
    expect(log.writtenLines()).toBe(11);
    expect(log.droppedLines()).toBe(90);
  });

  it('survives a destination error (EPIPE) and counts the lost lines', async () => {
    const errors: string[] = [];
    const sink = new Writable({
      write(_c, _e, cb) {
        const err = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
        cb(err);
      },
    });
    const log = new AccessLogger(sink, 'text', { onError: (e) => errors.push(e.code ?? '') });
    log.log(record());
    await log.flush();
    await new Promise((r) => setImmediate(r));
    expect(errors).toEqual(['EPIPE']);
    expect(log.droppedLines()).toBe(1);
    log.log(record()); // stream targets are not reopened: dropped, no throw
    expect(log.droppedLines()).toBe(2);
  });
});
