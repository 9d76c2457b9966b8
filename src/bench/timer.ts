// A sub-millisecond one-shot timer for the open-loop scheduler. Node's setTimeout has 1 ms
// granularity, which would add up to 1 ms of send lag to every request (more than the ~0.2 ms a
// proxy adds); a worker thread sleeping in Atomics.wait wakes within ~50-100 µs instead.
import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';

/** Runs in the worker (CommonJS eval): sleeps until the armed absolute time, then posts. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
const i32 = new Int32Array(workerData, 0, 2); // [generation, stop]
const f64 = new Float64Array(workerData, 8, 1); // [absolute target ms]
let firedGen = -1;
for (;;) {
  if (Atomics.load(i32, 1) === 1) break;
  const g = Atomics.load(i32, 0);
  const target = f64[0];
  if (g === firedGen || Number.isNaN(target)) { Atomics.wait(i32, 0, g); continue; }
  const rem = target - (performance.timeOrigin + performance.now());
  if (rem > 0.01) { Atomics.wait(i32, 0, g, rem); continue; }
  firedGen = g;
  parentPort.postMessage(0);
}
`;

export interface OneShotTimer {
  /** Arms (or re-arms) the timer for `atMs` on this thread's performance.now() clock. */
  armAt(atMs: number): void;
  close(): void;
  readonly precise: boolean;
}

/** Worker-backed timer; falls back to setTimeout when workers are unavailable or `precise` is false. */
export function createTimer(onFire: () => void, precise = true): OneShotTimer {
  if (precise) {
    try {
      return new WorkerTimer(onFire);
    } catch {
      /* fall through to the coarse timer */
    }
  }
  return new CoarseTimer(onFire);
}

class WorkerTimer implements OneShotTimer {
  readonly precise = true;
  private readonly sab = new SharedArrayBuffer(16);
  private readonly i32 = new Int32Array(this.sab, 0, 2);
  private readonly f64 = new Float64Array(this.sab, 8, 1);
  private readonly worker: Worker;

  constructor(onFire: () => void) {
    this.f64[0] = NaN;
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: this.sab });
    this.worker.on('message', onFire);
    this.worker.on('error', () => {
      /* a dead timer stalls the run, which the drain deadline then ends */
    });
    this.worker.unref();
  }

  armAt(atMs: number): void {
    this.f64[0] = performance.timeOrigin + atMs;
    Atomics.add(this.i32, 0, 1);
    Atomics.notify(this.i32, 0);
  }

  close(): void {
    Atomics.store(this.i32, 1, 1);
    Atomics.add(this.i32, 0, 1);
    Atomics.notify(this.i32, 0);
    void this.worker.terminate();
  }
}

class CoarseTimer implements OneShotTimer {
  readonly precise = false;
  private t: NodeJS.Timeout | undefined;
  constructor(private readonly onFire: () => void) {}
  armAt(atMs: number): void {
    if (this.t) clearTimeout(this.t);
    this.t = setTimeout(this.onFire, Math.max(0, atMs - performance.now()));
  }
  close(): void {
    if (this.t) clearTimeout(this.t);
    this.t = undefined;
  }
}
