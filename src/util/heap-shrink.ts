/**
 * Give back the heap a burst of config changes left behind, once the changes have stopped: Envoy's overload manager
 * shrinks its heap at a moment it chooses (shrink_heap); V8 never learns on its own that a sidecar has gone quiet.
 * During API-watch churn every batch builds new ServiceDefs, clusters and snapshots, and V8 grows the old generation
 * to hold the garbage of the ones before; once the events stop nothing allocates, so no GC comes to give the pages
 * back, and the resident set stays where the churn left it (docs/scale.md, "RSS after the churn").
 *
 * So: when no change came for `quietMs` after at least one did, and the heap V8 reserves has grown by more than
 * `minGrowthBytes` and `minGrowthRatio` over what it was when last settled, the native addon (native/heap.cc) tells
 * V8 that memory is wanted (MemoryPressureNotification, moderate): an incremental, memory-reducing mark-compact, most
 * of it in small steps and on V8's worker thread; another `settleMs` later while the heap reserved is still well
 * above the heap in use (up to `maxPasses`). At most one such shrink per `minIntervalMs`. What the heap reserves once that is done becomes the new reference (a mesh that really grew does not trigger it again and again). The same once
 * after start-up: loading the first config leaves its garbage too (RSS 2 s after ready ~215 MB at 10,000 Services,
 * ~150 once collected).
 * Without the addon, or with REMORA_HEAP_SHRINK=0 (read by src/cli/run.ts), nothing is done.
 */
import { createRequire } from 'node:module';
import { getHeapStatistics } from 'node:v8';
import { findAddon } from '../net/original-dst.js';

export interface HeapShrinkOptions {
  /** No change for this long (ms) before the heap is looked at. Default 3000. */
  quietMs: number;
  /** The heap reserved (V8's total_heap_size) must exceed the settled size by this much... Default 16 MiB. */
  minGrowthBytes: number;
  /** ...and by this fraction of it. Default 0.05. */
  minGrowthRatio: number;
  /** Least time between two shrinks (ms). Default 30000. */
  minIntervalMs: number;
  /**
   * After a shrink's GC, the heap is read this much later (ms): another GC, or the new settled size. Default 3000 (an
   * incremental GC took 2.0–3.3 s at 10,000–50,000 Services: bench/scale-watch-shrink.ts).
   */
  settleMs: number;
  /** GCs per shrink at most: another one settleMs after the last while the heap reserved is well above the heap in use. Default 4. */
  maxPasses: number;
}

export const HEAP_SHRINK_DEFAULTS: HeapShrinkOptions = { quietMs: 3000, minGrowthBytes: 16 * 2 ** 20, minGrowthRatio: 0.05, minIntervalMs: 30_000, settleMs: 3000, maxPasses: 4 };

/** The decision alone: shrink when changes came, and the heap grew enough past the settled size, and not too soon. */
export function shouldShrink(s: { changes: number; heapTotal: number; settled: number; now: number; lastShrinkAt: number }, o: Pick<HeapShrinkOptions, 'minGrowthBytes' | 'minGrowthRatio' | 'minIntervalMs'>): boolean {
  if (s.changes === 0) return false;
  const growth = s.heapTotal - s.settled;
  return growth > o.minGrowthBytes && growth > s.settled * o.minGrowthRatio && s.now - s.lastShrinkAt >= o.minIntervalMs;
}

export interface HeapShrinkDeps {
  /** V8's reserved heap (bytes). */
  heapTotal(): number;
  /** V8's heap in use (bytes; right after a mark-compact, about the live heap). */
  heapUsed(): number;
  /** Ask for the memory-reducing GC. */
  reduce(): void;
  now(): number;
  setTimer(f: () => void, ms: number): { cancel(): void };
}

/** Counts config changes and shrinks the heap once they have stopped (see the module comment). */
export class HeapShrinker {
  private changes = 0;
  private settled: number;
  private lastShrinkAt = -Infinity;
  private timer: { cancel(): void } | undefined;
  private settleTimer: { cancel(): void } | undefined;
  /** Shrinks asked for, and the last one's heap size before and once settled (bytes), for /memory and the bench. */
  readonly stats = { shrinks: 0, lastBefore: 0, lastAfter: 0 };

  /**
   * `startup`: the config was just loaded (the start-up's garbage is still in the heap, and nothing may come to collect
   * it): counted as a change against a settled size of 0, so the heap is shrunk once quietMs later.
   */
  constructor(private readonly deps: HeapShrinkDeps, private readonly opts: HeapShrinkOptions = HEAP_SHRINK_DEFAULTS, startup = false) {
    this.settled = startup ? 0 : deps.heapTotal();
    if (startup) this.noteChange();
  }

  /** A config change was applied: look at the heap once none has come for quietMs. */
  noteChange(): void {
    this.changes++;
    this.timer?.cancel();
    this.timer = this.deps.setTimer(() => this.quiet(), this.opts.quietMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.settleTimer?.cancel();
    this.timer = this.settleTimer = undefined;
  }

  private quiet(): void {
    this.timer = undefined;
    const heapTotal = this.deps.heapTotal();
    const now = this.deps.now();
    // Below the settled size (V8 shrank it itself): that is the reference from now on.
    if (heapTotal < this.settled) this.settled = heapTotal;
    if (!shouldShrink({ changes: this.changes, heapTotal, settled: this.settled, now, lastShrinkAt: this.lastShrinkAt }, this.opts)) return;
    this.changes = 0;
    this.lastShrinkAt = now;
    this.stats.shrinks++;
    this.stats.lastBefore = heapTotal;
    this.deps.reduce();
    this.settle(1);
  }

  /**
   * settleMs after each GC of a shrink: the heap reserved then is the new reference; unless it is still well above
   * the heap in use (one incremental GC compacts only the pages it picked: 10,000 Services after 60 s of churn,
   * 324 → 210 MB reserved for 93 in use, then 100; after 180 s, 538 → 320 → 132), when another is asked for first,
   * up to maxPasses.
   */
  private settle(pass: number): void {
    this.settleTimer?.cancel();
    this.settleTimer = this.deps.setTimer(() => {
      this.settleTimer = undefined;
      const total = this.deps.heapTotal();
      const slack = total - this.deps.heapUsed();
      if (pass < this.opts.maxPasses && slack > this.opts.minGrowthBytes && slack > total * this.opts.minGrowthRatio) {
        this.stats.shrinks++;
        this.deps.reduce();
        this.settle(pass + 1);
        return;
      }
      this.settled = total;
      this.stats.lastAfter = total;
    }, this.opts.settleMs);
  }
}

interface HeapAddon {
  reduceHeap?: (level: number) => void;
  /** glibc malloc_trim(0) (native/heap.cc); not called: native memory did not grow with the churn (docs/scale.md). */
  mallocTrim?: () => boolean;
}

let enabled = true;
/** Off for this process (`remora run` reads REMORA_HEAP_SHRINK=0: src/cli/run.ts). */
export function setHeapShrink(on: boolean): void {
  enabled = on;
}

/**
 * A shrinker on the native addon, or undefined (turned off, not Linux, addon absent or older than reduceHeap).
 * Timers are unref'd: they never keep the process alive.
 */
export function startHeapShrinker(addonPath: string | undefined = findAddon()): HeapShrinker | undefined {
  if (!enabled || addonPath === undefined || process.platform !== 'linux') return undefined;
  let addon: HeapAddon;
  try {
    addon = createRequire(import.meta.url)(addonPath) as HeapAddon;
  } catch {
    return undefined;
  }
  const reduceHeap = addon.reduceHeap;
  if (typeof reduceHeap !== 'function') return undefined;
  return new HeapShrinker({
    heapTotal: () => getHeapStatistics().total_heap_size,
    heapUsed: () => getHeapStatistics().used_heap_size,
    reduce: () => reduceHeap(1),
    now: () => performance.now(),
    setTimer: (f, ms) => {
      const t = setTimeout(f, ms);
      t.unref();
      return { cancel: () => clearTimeout(t) };
    },
  }, HEAP_SHRINK_DEFAULTS, true);
}
