/**
 * Wait for a condition instead of sleeping a fixed time: `await waitFor(() => upstream.requests.length === 3)`.
 * Polls until the condition holds (returns its truthy value) or the time is up (throws, naming what was awaited).
 */

export interface WaitOptions {
  /** Longest wait (ms). Default 5,000. */
  timeoutMs?: number;
  /** Poll interval (ms). Default 25. */
  stepMs?: number;
  /** What is awaited, for the error message. */
  what?: string;
}

/**
 * Resolve with the condition's first truthy value; reject after `timeoutMs`. The second argument may be the timeout
 * alone (ms), as the older `waitFor(cond, timeoutMs, stepMs)` of proxy-harness.ts took it.
 */
export async function waitFor<T>(cond: () => T | Promise<T>, opts: WaitOptions | number = {}, stepMs?: number): Promise<Exclude<T, false | 0 | '' | null | undefined>> {
  const o: WaitOptions = typeof opts === 'number' ? { timeoutMs: opts, ...(stepMs !== undefined ? { stepMs } : {}) } : opts;
  const timeoutMs = o.timeoutMs ?? 5000;
  const step = o.stepMs ?? 25;
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as Exclude<T, false | 0 | '' | null | undefined>;
    if (Date.now() >= end) throw new Error(`${o.what ?? 'condition'} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, Math.min(step, Math.max(1, end - Date.now()))));
  }
}

/**
 * Wait until a changing value stops changing: `read()` gives the same result `stableForMs` in a row (e.g. the last
 * fire-and-forget requests have landed). Resolves with that value; rejects after `timeoutMs`.
 */
export async function waitForStable<T>(read: () => T | Promise<T>, opts: WaitOptions & { stableForMs?: number } = {}): Promise<T> {
  const stable = opts.stableForMs ?? 200;
  const step = opts.stepMs ?? 25;
  const end = Date.now() + (opts.timeoutMs ?? 5000);
  let last = await read();
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, step));
    const v = await read();
    if (v !== last) { last = v; since = Date.now(); }
    else if (Date.now() - since >= stable) return v;
    if (Date.now() >= end) throw new Error(`${opts.what ?? 'value'} still changing after ${opts.timeoutMs ?? 5000} ms`);
  }
}
