// The stream-timeout policy both codecs ask (src/proxy/stream-timeouts.ts): pure decisions, clock passed in.
import { describe, expect, it } from 'vitest';
import { DEFAULT_STREAM_TIMEOUTS, headersOverdue, idleStreamEnd, streamIdle, sweepIntervalMs } from '../../../src/proxy/stream-timeouts.js';

const t = { headersTimeoutMs: 1000, streamIdleTimeoutMs: 5000 };

describe('stream timeouts', () => {
  it('defaults: a 30 s head, 5 min of stream silence (Envoy)', () => {
    expect(DEFAULT_STREAM_TIMEOUTS).toEqual({ headersTimeoutMs: 30_000, streamIdleTimeoutMs: 300_000 });
  });

  it('a head is overdue from headersTimeoutMs after its first byte, never when none is pending', () => {
    expect(headersOverdue(t, 0, 10_000)).toBe(false);
    expect(headersOverdue(t, 5000, 5999)).toBe(false);
    expect(headersOverdue(t, 5000, 6000)).toBe(true);
  });

  it('a stream is idle from streamIdleTimeoutMs after its last byte; 0 turns it off', () => {
    expect(streamIdle(t, 1000, 5999)).toBe(false);
    expect(streamIdle(t, 1000, 6000)).toBe(true);
    expect(streamIdle({ ...t, streamIdleTimeoutMs: 0 }, 0, 1e12)).toBe(false);
  });

  it('an idle stream is answered 408 until its response started, then reset', () => {
    expect(idleStreamEnd(false)).toBe('answer-408');
    expect(idleStreamEnd(true)).toBe('reset');
  });

  it('sweeps at a quarter of the shortest timeout, between 10 ms and 1 s', () => {
    expect(sweepIntervalMs(t, 65_000)).toBe(250);
    expect(sweepIntervalMs(DEFAULT_STREAM_TIMEOUTS, 65_000)).toBe(1000);
    expect(sweepIntervalMs({ headersTimeoutMs: 20, streamIdleTimeoutMs: 0 }, 65_000)).toBe(10);
    expect(sweepIntervalMs({ headersTimeoutMs: 30_000, streamIdleTimeoutMs: 0 }, 2000)).toBe(500);
  });
});
