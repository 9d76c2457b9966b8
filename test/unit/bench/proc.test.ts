// /proc parsing for the CPU and RSS columns, and a live read of this test process.
import { describe, it, expect } from 'vitest';
import { parseStatCpuTicks, parseStatusKb, ProcWatcher } from '../../../src/bench/proc.js';

describe('/proc parsing', () => {
  it('reads utime + stime after a comm containing spaces and parentheses', () => {
    const stat = '1234 (node (a) b) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 37 0 0 20 0 11 0 500 1000 2000';
    expect(parseStatCpuTicks(stat)).toBe(287);
  });
  it('reads kB fields of /proc/PID/status', () => {
    const status = 'Name:\tnode\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n';
    expect(parseStatusKb(status, 'VmHWM')).toBe(51234);
    expect(parseStatusKb(status, 'VmRSS')).toBe(40000);
    expect(parseStatusKb(status, 'VmSwap')).toBe(-1);
  });
  it.runIf(process.platform === 'linux')('watches a live process', () => {
    const w = new ProcWatcher(process.pid);
    w.start();
    let x = 0;
    const until = Date.now() + 100;
    while (Date.now() < until) x += Math.sqrt(x + 1); // burn ~100 ms of CPU
    const u = w.stop();
    expect(x).toBeGreaterThan(0);
    expect(u.cpuMs).toBeGreaterThanOrEqual(50);
    expect(u.peakRssMB).toBeGreaterThan(10);
    expect(u.peakAnonMB).toBeGreaterThan(0);
    expect(u.peakAnonMB).toBeLessThan(u.peakRssMB);
  });
});
