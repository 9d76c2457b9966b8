// Shadow requests (src/proxy/mirror.ts) without sockets: a fake cluster runtime and pool show what a shadow asks of
// the core — admission, an endpoint, outlier reports, the mirror cluster's counters — and when its body makes it go.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AdmitResult, AttemptOutcome, ClusterRuntime, Endpoint } from '../../../src/model.js';
import { shadowHeaders, Shadows, type MirrorEnv } from '../../../src/proxy/mirror.js';
import type { UpstreamHandler, UpstreamRequest } from '../../../src/upstream/h1-pool.js';

const EP = { key: '127.0.0.1:9', address: '127.0.0.1', port: 9, weight: 1, labels: {} } as unknown as Endpoint;

function fakes(opts: { admit?: AdmitResult; healthy?: boolean } = {}) {
  const sent: Array<{ req: UpstreamRequest; h: UpstreamHandler; clientH2: boolean }> = [];
  const reports: AttemptOutcome[] = [];
  let active = 0;
  const counters = { upstream_rq_total: 0, upstream_rq_pending_overflow: 0, upstream_rq_timeout: 0, upstream_cx_connect_fail: 0, upstream_rq_rx_reset: 0, upstream_cx_protocol_error: 0, upstream_cx_destroy_remote_with_active_rq: 0, codes: [] as number[], response(s: number) { this.codes.push(s); } };
  const rt = {
    def: { name: 'outbound|80||mirror.default.svc.cluster.local' },
    admit: () => { if ((opts.admit ?? 'ok') === 'ok') active++; return opts.admit ?? 'ok'; },
    release: () => { active--; },
    pick: () => (opts.healthy === false ? undefined : EP),
    attemptStarted: () => {},
    attemptFinished: (_ep: Endpoint, o: AttemptOutcome) => { reports.push(o); },
  } as unknown as ClusterRuntime;
  const env: MirrorEnv = {
    clusters: { httpPool: (_d: unknown, _e: unknown, clientH2: boolean) => ({ dispatch: (req: UpstreamRequest, h: UpstreamHandler) => { sent.push({ req, h, clientH2 }); h.onConnect(() => { h.onError(Object.assign(new Error('aborted'), { code: 'UND_ERR_ABORTED' })); }); } }) } as never,
    observer: { record: () => {}, counters: () => counters as never, connectionOpened: () => { throw new Error('not L4'); }, connectionClosed: () => {} },
    now: () => 1000,
    rand: () => 0,
    mirrorBodyBytes: 10,
    retryBufferBytes: 65536,
  };
  const shadows = (clientH2 = false, timeoutMs = 10_000): Shadows => new Shadows(env, [{ rt, headers: ['Host', 'svc-shadow'] }], 'POST', '/p', clientH2, timeoutMs);
  return { env, sent, reports, counters, shadows, active: () => active };
}

afterEach(() => { vi.useRealTimers(); });

describe('shadowHeaders', () => {
  it('appends -shadow to the Host name, keeping the port, on a copy', () => {
    const h = ['Host', 'reviews:9080', 'x-a', '1'];
    expect(shadowHeaders(h, 'reviews:9080')).toEqual(['Host', 'reviews-shadow:9080', 'x-a', '1']);
    expect(shadowHeaders(['host', 'r'], 'r')).toEqual(['host', 'r-shadow']);
    expect(shadowHeaders(['host', '[::1]:80'], '[::1]:80')).toEqual(['host', '[::1]-shadow:80']);
    // The shadow sends its body at once: the client's Expect is the primary's to answer.
    expect(shadowHeaders(['Host', 'r', 'Expect', '100-continue', 'x-b', '2'], 'r')).toEqual(['Host', 'r-shadow', 'x-b', '2']);
    expect(h[1]).toBe('reviews:9080');
  });
});

describe('Shadows', () => {
  it('a bodiless request: one shadow through the pool, counted, admitted until its answer, the answer reported', () => {
    const f = fakes();
    expect(f.shadows(true).send(null)).toBe(true);
    expect(f.sent).toHaveLength(1);
    expect(f.sent[0]!.req).toMatchObject({ method: 'POST', path: '/p', body: null, headers: ['Host', 'svc-shadow'] });
    expect(f.sent[0]!.clientH2).toBe(true);
    expect(f.counters.upstream_rq_total).toBe(1);
    expect(f.active()).toBe(1);
    const h = f.sent[0]!.h;
    expect(h.onHeaders(503, [], () => {})).toBe(true);
    expect(h.onData(Buffer.from('dropped'))).toBe(true);
    h.onComplete(null);
    expect(f.reports).toEqual([{ kind: 'response', status: 503 }]);
    expect(f.counters.codes).toEqual([503]);
    expect(f.active()).toBe(0);
  });

  it('over the circuit breaker: not sent, counted as pending overflow', () => {
    const f = fakes({ admit: 'rq_overflow' });
    f.shadows().send(null);
    expect(f.sent).toHaveLength(0);
    expect(f.counters.upstream_rq_pending_overflow).toBe(1);
    expect(f.active()).toBe(0);
  });

  it('no healthy mirror endpoint: not sent, the admission slot returned', () => {
    const f = fakes({ healthy: false });
    f.shadows().send(null);
    expect(f.sent).toHaveLength(0);
    expect(f.active()).toBe(0);
  });

  it('a connect failure is reported as such and counted', () => {
    const f = fakes();
    f.shadows().send(null);
    f.sent[0]!.h.onError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
    expect(f.reports).toEqual([{ kind: 'connect-failure' }]);
    expect(f.counters.upstream_cx_connect_fail).toBe(1);
    expect(f.active()).toBe(0);
  });

  it('its timeout aborts it, reported as a timeout and counted once', () => {
    vi.useFakeTimers();
    const f = fakes();
    f.shadows(false, 300).send(null);
    vi.advanceTimersByTime(299);
    expect(f.counters.upstream_rq_timeout).toBe(0);
    vi.advanceTimersByTime(1);
    expect(f.counters.upstream_rq_timeout).toBe(1);
    expect(f.reports).toEqual([{ kind: 'timeout' }]);
    expect(f.counters.upstream_rq_rx_reset).toBe(0); // the abort is the proxy's own doing
    expect(f.active()).toBe(0);
  });

  it('a whole body within the bound goes along; over it, nothing is sent', () => {
    const f = fakes();
    expect(f.shadows().send(Buffer.from('0123456789'))).toBe(true);
    expect((f.sent[0]!.req.body as Buffer).toString()).toBe('0123456789');
    expect(f.shadows().send(Buffer.from('0123456789A'))).toBe(false);
    expect(f.sent).toHaveLength(1);
  });

  it('a streamed body: chunks kept until the end, then one shadow with all of them; past the bound, dropped', () => {
    const f = fakes();
    const s = f.shadows();
    expect(s.chunk(Buffer.from('abc'))).toBe(true);
    expect(s.chunk(Buffer.from('defg'))).toBe(true);
    expect(f.sent).toHaveLength(0);
    s.end();
    expect(s.settled).toBe(true);
    expect((f.sent[0]!.req.body as Buffer).toString()).toBe('abcdefg');
    const big = f.shadows();
    expect(big.chunk(Buffer.from('123456'))).toBe(true);
    expect(big.chunk(Buffer.from('789012'))).toBe(false);
    expect(big.settled).toBe(true);
    big.end();
    expect(f.sent).toHaveLength(1);
  });

  it('dropped (the request ended first): nothing is sent', () => {
    const f = fakes();
    const s = f.shadows();
    s.chunk(Buffer.from('a'));
    s.drop();
    s.end();
    expect(s.send(null)).toBe(true);
    expect(f.sent).toHaveLength(0);
  });
});
