// The raw TCP bench scenario's loads (bench/tcp.ts) against real peers, briefly: an echo server direct and Remora's
// TCP proxy through the real CLI (`--connect`, a TCP ServiceEntry). Counts only: speed lives in `npm run bench`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tcpScenario, tcpYaml, TCP_AUTHORITY } from '../../../bench/tcp.js';
import { fakeUpstream, type FakeTcpUpstream } from '../../support/fake-upstream.js';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';

let echo: FakeTcpUpstream;
let proxy: RunningProxy;

beforeAll(async () => {
  echo = await fakeUpstream().tcp().echo().start();
  proxy = await startProxy({ 'tcp.yaml': tcpYaml(echo.port) }, ['--connect']);
});
afterAll(async () => {
  await proxy?.stop();
  await echo?.close();
});

describe('raw TCP bench loads', () => {
  it('echo, bulk and churn complete without errors, direct and through Remora (CONNECT to a TCP service)', async () => {
    const sc = await tcpScenario([
      { name: 'direct', port: echo.port, pids: [] },
      { name: 'remora', port: proxy.info.outbound, pids: [proxy.info.pid], connect: TCP_AUTHORITY },
    ], { durationMs: 400, rounds: 1, log: () => {} });
    for (const name of ['direct', 'remora']) {
      expect(sc.echo[name]!.perSecond).toBeGreaterThan(0);
      expect(sc.echo[name]!.errors).toBe(0);
      expect(sc.bulk[name]!.mibPerSecond).toBeGreaterThan(0);
      expect(sc.bulk[name]!.errors).toBe(0);
      expect(sc.churn[name]!.perSecond).toBeGreaterThan(0);
      expect(sc.churn[name]!.errors).toBe(0);
    }
    // Remora's CPU was measured (its pid given); direct has no proxy process.
    expect(sc.echo.remora!.cpuMsPer1k).toBeGreaterThan(0);
    expect(sc.notes).toEqual([]);
    // Every connection went to the echo server: the long-lived ones, the bulk ones and each churned one.
    expect(echo.connections).toBeGreaterThan(2 * (32 + 4));
  });
});
