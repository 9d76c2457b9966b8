// Open-loop arrival schedule: the intended send time of every request, as pure math.
// Latency is measured from these times (coordinated-omission correction), so they must not
// depend on when responses arrive — only on the rate, the arrival process and a seeded PRNG.

export type Arrival = 'fixed' | 'poisson';

/** A seeded PRNG (mulberry32): deterministic, so a Poisson run can be reproduced from its seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Yields intended send times (ms, relative to `startMs`) in increasing order.
 * fixed: request i at start + i / rate. poisson: exponential gaps with mean 1 / rate,
 * drawn from `rand` (a value in [0, 1)).
 */
export class Schedule {
  private readonly intervalMs: number;
  private nextMs: number;
  private index = 0;

  constructor(
    readonly startMs: number,
    readonly ratePerSec: number,
    readonly arrival: Arrival,
    private readonly rand: () => number,
  ) {
    if (!(ratePerSec > 0)) throw new Error(`rate must be > 0, got ${ratePerSec}`);
    this.intervalMs = 1000 / ratePerSec;
    this.nextMs = startMs;
  }

  /** Intended time of the next request that has not been taken yet. */
  peek(): number {
    return this.nextMs;
  }

  /** Number of requests taken so far. */
  get taken(): number {
    return this.index;
  }

  /** Takes the next intended time and advances. */
  take(): number {
    const t = this.nextMs;
    this.index++;
    if (this.arrival === 'fixed') {
      // Computed from the index, not by accumulation, so rounding error does not drift.
      this.nextMs = this.startMs + this.index * this.intervalMs;
    } else {
      // 1 - rand() is in (0, 1], so the log is finite.
      this.nextMs += -Math.log(1 - this.rand()) * this.intervalMs;
    }
    return t;
  }

  /** Takes every intended time <= nowMs (and < endMs), in order. */
  takeDue(nowMs: number, endMs: number, out: number[]): number[] {
    while (this.nextMs <= nowMs && this.nextMs < endMs) out.push(this.take());
    return out;
  }
}

/**
 * The coordinated-omission-corrected latency of one request: from its intended send time,
 * not from when a connection became free to send it. A request that waited in the queue
 * behind a stalled response carries that wait in its latency.
 */
export function correctedLatencyMs(intendedMs: number, doneMs: number): number {
  return doneMs - intendedMs;
}

/**
 * Simulates a FIFO of requests over `connections` connections, each serving one request at a
 * time (HTTP/1.1 keep-alive, no pipelining): given intended times and each request's service
 * time, returns the completion times. Pure; used by the unit tests to pin the CO arithmetic
 * the live generator implements, and by `--help`-level documentation.
 */
export function simulateQueue(intendedMs: readonly number[], serviceMs: readonly number[], connections: number): number[] {
  const freeAt = new Array<number>(connections).fill(-Infinity);
  const done: number[] = [];
  for (let i = 0; i < intendedMs.length; i++) {
    const t = intendedMs[i]!;
    // The earliest-free connection takes the next request in FIFO order.
    let best = 0;
    for (let c = 1; c < connections; c++) if (freeAt[c]! < freeAt[best]!) best = c;
    const start = Math.max(t, freeAt[best]!);
    const end = start + serviceMs[i]!;
    freeAt[best] = end;
    done.push(end);
  }
  return done;
}
