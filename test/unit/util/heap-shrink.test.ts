/** The heap shrinker's decision and timing (src/util/heap-shrink.ts), on a fake clock and heap: no V8, no addon. */
import { describe, expect, it } from 'vitest';
import { HeapShrinker, shouldShrink, type HeapShrinkOptions } from '../../../src/util/heap-shrink.js';

const MB = 2 ** 20;
const opts: HeapShrinkOptions = { quietMs: 5000, minGrowthBytes: 16 * MB, minGrowthRatio: 0.05, minIntervalMs: 30_000, settleMs: 5000, maxPasses: 4 };

function harness(start: number, startup = false) {
  let now = 0;
  let heap = start;
  let used = start;
  const timers: Array<{ at: number; f: () => void; live: boolean }> = [];
  const reduced: number[] = [];
  const s = new HeapShrinker({
    heapTotal: () => heap,
    heapUsed: () => used,
    reduce: () => void reduced.push(now),
    now: () => now,
    setTimer: (f, ms) => {
      const t = { at: now + ms, f, live: true };
      timers.push(t);
      return { cancel: () => void (t.live = false) };
    },
  }, opts, startup);
  const advance = (ms: number): void => {
    const end = now + ms;
    for (;;) {
      const next = timers.filter((t) => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      now = next.at;
      next.live = false;
      next.f();
    }
    now = end;
  };
  // setHeap: reserved and in use alike (a compacted heap) unless `inUse` is given.
  return { s, reduced, advance, setHeap: (b: number, inUse = b) => { heap = b; used = inUse; }, at: () => now };
}

describe('shouldShrink', () => {
  const base = { changes: 3, heapTotal: 140 * MB, settled: 100 * MB, now: 60_000, lastShrinkAt: -Infinity };
  it('shrinks after changes when the heap grew past both thresholds', () => {
    expect(shouldShrink(base, opts)).toBe(true);
  });
  it('not without changes, not for a small growth (bytes or ratio), not too soon after the last', () => {
    expect(shouldShrink({ ...base, changes: 0 }, opts)).toBe(false);
    expect(shouldShrink({ ...base, heapTotal: 110 * MB }, opts)).toBe(false);
    expect(shouldShrink({ ...base, settled: 400 * MB, heapTotal: 417 * MB }, opts)).toBe(false); // 17 MB < 5 % of 400
    expect(shouldShrink({ ...base, lastShrinkAt: 40_000 }, opts)).toBe(false);
  });
});

describe('HeapShrinker', () => {
  it('waits for quietMs without a change, shrinks once, and takes the heap after settleMs as the new reference', () => {
    const h = harness(100 * MB);
    for (let i = 0; i < 50; i++) { h.s.noteChange(); h.advance(100); }
    h.setHeap(300 * MB);
    h.advance(4800);
    expect(h.reduced).toEqual([]); // 4.9 s after the last change
    h.advance(200);
    expect(h.reduced).toEqual([4900 + 5000]);
    h.setHeap(105 * MB); // the memory-reducing GC done
    h.advance(5000);
    expect(h.s.stats).toEqual({ shrinks: 1, lastBefore: 300 * MB, lastAfter: 105 * MB });
    // Quiet again with no change: nothing more.
    h.advance(120_000);
    expect(h.reduced.length).toBe(1);
  });

  it('a mesh that really grew is not shrunk again and again: the settled size follows it', () => {
    const h = harness(100 * MB);
    h.s.noteChange();
    h.setHeap(200 * MB);
    h.advance(5000);
    expect(h.reduced.length).toBe(1);
    h.advance(5000); // settled at 200 MB: the growth was live
    for (let k = 0; k < 5; k++) { h.s.noteChange(); h.advance(40_000); }
    expect(h.reduced.length).toBe(1);
  });

  it('at most one shrink per minIntervalMs; a heap V8 shrank itself lowers the reference', () => {
    const h = harness(100 * MB);
    h.s.noteChange();
    h.setHeap(200 * MB);
    h.advance(5000);
    h.setHeap(120 * MB);
    h.advance(5000); // settled at 120
    h.s.noteChange();
    h.setHeap(200 * MB);
    h.advance(5000); // 15 s after the first: too soon
    expect(h.reduced.length).toBe(1);
    h.advance(20_000);
    h.s.noteChange();
    h.advance(5000); // 35 s after: shrinks
    expect(h.reduced.length).toBe(2);
    h.setHeap(90 * MB);
    h.advance(5000);
    h.s.noteChange();
    h.setHeap(80 * MB);
    h.advance(5000);
    h.advance(20_000);
    h.s.noteChange();
    h.setHeap(80 * MB + 17 * MB);
    h.advance(5000); // 17 MB over the 80 V8 reached by itself: past both thresholds
    expect(h.reduced.length).toBe(3);
  });

  it('startup: one shrink quietMs after the config was loaded, whatever the heap (settled size 0), then the heap after it is the reference', () => {
    const h = harness(130 * MB, true);
    h.advance(4999);
    expect(h.reduced).toEqual([]);
    h.advance(1);
    expect(h.reduced).toEqual([5000]);
    h.setHeap(97 * MB);
    h.advance(5000);
    expect(h.s.stats.lastAfter).toBe(97 * MB);
    h.advance(60_000);
    h.s.noteChange();
    h.setHeap(110 * MB); // 13 MB over: below minGrowthBytes
    h.advance(10_000);
    expect(h.reduced.length).toBe(1);
  });

  it('another GC settleMs after the last while the heap reserved is still well above the heap in use; maxPasses at most', () => {
    const h = harness(100 * MB);
    h.s.noteChange();
    h.setHeap(538 * MB, 240 * MB);
    h.advance(5000);
    expect(h.reduced).toEqual([5000]);
    h.setHeap(320 * MB, 94 * MB); // one incremental GC: in use 94, reserved 320
    h.advance(5000);
    h.setHeap(132 * MB, 94 * MB);
    h.advance(5000);
    expect(h.reduced).toEqual([5000, 10_000, 15_000]);
    h.setHeap(98 * MB, 94 * MB); // close enough: settled
    h.advance(5000);
    expect(h.reduced.length).toBe(3);
    expect(h.s.stats).toEqual({ shrinks: 3, lastBefore: 538 * MB, lastAfter: 98 * MB });
    // A heap that stays slack: four GCs, then it is the reference all the same.
    h.advance(60_000);
    h.s.noteChange();
    h.setHeap(400 * MB, 94 * MB);
    h.advance(5000 + 4 * 5000);
    expect(h.reduced.length).toBe(3 + 4);
    expect(h.s.stats.lastAfter).toBe(400 * MB);
  });

  it('stop() cancels what is pending', () => {
    const h = harness(100 * MB);
    h.s.noteChange();
    h.setHeap(300 * MB);
    h.s.stop();
    h.advance(60_000);
    expect(h.reduced).toEqual([]);
  });
});
