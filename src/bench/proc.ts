// CPU time and peak RSS of another process from /proc (Linux), for the "CPU ms per 1000
// requests" and "peak RSS MB" columns. Parsing is pure; reading is a thin shell around it.
import { readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/** utime and stime (clock ticks, all threads) from the text of /proc/PID/stat. */
export function parseStatUserSys(stat: string): { user: number; sys: number } {
  // Field 2 (comm) is parenthesised and may contain spaces: parse after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  const user = Number(rest[11]);
  const sys = Number(rest[12]);
  if (!Number.isFinite(user) || !Number.isFinite(sys)) throw new Error('unparsable /proc/PID/stat');
  return { user, sys };
}

/** utime + stime in clock ticks from the text of /proc/PID/stat. */
export function parseStatCpuTicks(stat: string): number {
  const t = parseStatUserSys(stat);
  return t.user + t.sys;
}

/** A `VmXXX:   1234 kB` field of /proc/PID/status in kB, or -1 if absent. */
export function parseStatusKb(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) : -1;
}

let clkTck: number | undefined;
/** USER_HZ (almost always 100); asked once from getconf. */
export function clockTicksPerSec(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

export interface ProcUsage {
  pid: number;
  cpuMs: number;
  peakRssMB: number;
  /** Peak private (anonymous) resident memory, from 100 ms samples of RssAnon: the heap and stacks, without the
   * file-backed pages of the node binary and libraries that every process of the same executable shares. */
  peakAnonMB: number;
}

/**
 * Watches one process during a run: CPU from /proc/PID/stat before and after, peak RSS from
 * VmHWM after resetting it (writing 5 to /proc/PID/clear_refs) plus 100 ms VmRSS samples as a
 * fallback where clear_refs is not permitted.
 */
export class ProcWatcher {
  private startTicks = 0;
  private peakKb = 0;
  private peakAnonKb = 0;
  private hwmReset = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly pid: number) {}

  start(): void {
    this.startTicks = parseStatCpuTicks(readFileSync(`/proc/${this.pid}/stat`, 'utf8'));
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
      this.hwmReset = true;
    } catch {
      this.hwmReset = false;
    }
    this.peakKb = 0;
    this.peakAnonKb = 0;
    this.sample();
    this.timer = setInterval(() => this.sample(), 100);
    this.timer.unref();
  }

  stop(): ProcUsage {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sample();
    const ticks = parseStatCpuTicks(readFileSync(`/proc/${this.pid}/stat`, 'utf8')) - this.startTicks;
    let peakKb = this.peakKb;
    if (this.hwmReset) {
      try {
        peakKb = Math.max(peakKb, parseStatusKb(readFileSync(`/proc/${this.pid}/status`, 'utf8'), 'VmHWM'));
      } catch {
        /* the process exited; keep the samples */
      }
    }
    return { pid: this.pid, cpuMs: (ticks * 1000) / clockTicksPerSec(), peakRssMB: peakKb / 1024, peakAnonMB: this.peakAnonKb / 1024 };
  }

  private sample(): void {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const kb = parseStatusKb(status, 'VmRSS');
      if (kb > this.peakKb) this.peakKb = kb;
      const anon = parseStatusKb(status, 'RssAnon');
      if (anon > this.peakAnonKb) this.peakAnonKb = anon;
    } catch {
      /* the process may have exited */
    }
  }
}
