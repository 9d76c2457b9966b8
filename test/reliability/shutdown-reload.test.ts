/**
 * Reliability rows 19, 20 and 21 (RELIABILITY.md §4) through the real CLI, under open-loop load:
 *  - 19: SIGTERM at a constant rate with a 200 ms app behind the inbound listener, with one process and with
 *    --concurrency 2: every request that reached the app is answered, the listener stops accepting, keep-alive clients
 *    get Connection: close, exit 0 within --drain-seconds.
 *  - 20: hot reload under load: weights changed, a cluster added, a cluster with thousands of idle pooled sockets
 *    removed: 0 errors, in effect within 1 s, reload counter +1 each, the idle sockets closed (no recursion).
 *  - 21: bad config under load: invalid YAML, a schema error, a truncated write, the file deleted, a `..data` swap
 *    to a bad target: the last good config keeps serving, remora_config_reload_failures_total +1, logged, /ready 200.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, symlinkSync, renameSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProxy, waitFor, type RunningProxy } from '../support/proxy-harness.js';
import { serviceEntry } from '../integration/resilience/helpers.js';
import { PlainUpstream, recordedOpenLoop, sleep, type OpenLoopRecord } from './support/proc.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function summary(recs: OpenLoopRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of recs) { const k = r.error ?? String(r.status); out[k] = (out[k] ?? 0) + 1; }
  return out;
}

describe('row 19: SIGTERM at a constant rate, 200 ms app', () => {
  const RATE = Number(process.env.REMORA_SIGTERM_RPS ?? 1000);
  for (const concurrency of [1, 2]) {
    it(`${RATE} rps open loop, --concurrency ${concurrency}: in-flight requests all answered, Connection: close, listener closed, exit 0 within the drain time`, async () => {
      const reached = new Set<number>();
      const app = await new PlainUpstream((req, res) => {
        reached.add(Number(req.headers['x-req-id']));
        req.resume();
        setTimeout(() => res.end('ok'), 200);
      }).start();
      cleanups.push(() => app.close());
      const DRAIN_S = 5;
      const proxy = await startProxy({ 'mesh.yaml': serviceEntry('svc', [{ port: app.port }]) }, ['--app-port', String(app.port), '--drain-seconds', String(DRAIN_S), '--concurrency', String(concurrency)]);
      cleanups.push(() => proxy.stop());
      let sigAt = -1;
      let exitAt = -1;
      const SIGTERM_AT = 2500;
      const t0 = performance.now();
      void proxy.exited.then(() => { exitAt = performance.now() - t0; });
      const recs = await recordedOpenLoop(`http://127.0.0.1:${proxy.info.inbound}/`, {
        rate: RATE, durationMs: 4000, timeoutMs: 8000,
        onTick: (now) => { if (sigAt < 0 && now >= SIGTERM_AT) { sigAt = now; process.kill(proxy.info.pid, 'SIGTERM'); } },
      });
      const code = await proxy.exited;
      const before = recs.filter((r) => r.at < sigAt);
      const inFlight = recs.filter((r) => r.at < sigAt && (r.doneAt ?? Infinity) > sigAt);
      const reachedFailed = recs.filter((r) => reached.has(r.id) && (r.error !== undefined || r.status !== 200));
      const after = recs.filter((r) => r.at > sigAt + 100);
      const acceptedAfter = after.filter((r) => r.status !== undefined && !r.reused);
      const lateAnswered = recs.filter((r) => r.status === 200 && (r.doneAt ?? 0) > sigAt + 100);
      const lateWithoutClose = lateAnswered.filter((r) => !r.close);
      const achieved = before.length / (sigAt / 1000);
      console.log(`row 19 SIGTERM --concurrency ${concurrency}: ${recs.length} requests at ${RATE}/s (achieved ${achieved.toFixed(0)}/s before the signal); before SIGTERM ${JSON.stringify(summary(before))}; in flight at SIGTERM ${inFlight.length}: ${JSON.stringify(summary(inFlight))}; reached the app but failed ${reachedFailed.length}; answered after SIGTERM+100 ms ${lateAnswered.length}, without Connection: close ${lateWithoutClose.length}; sent after SIGTERM+100 ms ${JSON.stringify(summary(after))}, new connections accepted ${acceptedAfter.length}; exit ${code} at ${(exitAt - sigAt).toFixed(0)} ms after SIGTERM`);
      expect(achieved).toBeGreaterThan(RATE * 0.8); // the rate was really driven
      expect(inFlight.length).toBeGreaterThan(RATE * 0.1); // ~200 ms of requests in flight at the signal
      expect(before.every((r) => r.status === 200)).toBe(true); // everything sent before SIGTERM answered, none failed
      expect(reachedFailed).toEqual([]); // nothing the app saw was lost
      expect(lateAnswered.length).toBeGreaterThan(RATE * 0.1);
      expect(lateWithoutClose).toEqual([]); // keep-alive clients told to go
      expect(acceptedAfter).toEqual([]); // the listener stopped accepting
      expect(after.every((r) => r.error !== undefined && !reached.has(r.id))).toBe(true);
      expect(code).toBe(0);
      expect(exitAt - sigAt).toBeLessThan(DRAIN_S * 1000 + 1000);
    });
  }
});
