// "Where the time goes" for one proxy process under a fixed open-loop rate, from outside the process and the
// same way for every peer: user vs system CPU per request (/proc/PID/stat), system calls per request
// (`perf stat` on syscall tracepoints) and the user-space time on the critical path (`perf record` of read
// exits and write entries: from the read that brought the request to the write that sends it upstream, and
// from the read that brought the upstream's answer to the write that returns it). The parsing is pure and
// unit-tested (test/unit/bench/anatomy.test.ts); the perf calls are a thin shell around it.
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseStatUserSys } from '../src/bench/proc.js';

/** The system calls a proxy reads sockets with, writes them with, and waits for them with (nginx's and libuv's). */
export const READ_CALLS = ['read', 'recvfrom', 'readv'];
export const WRITE_CALLS = ['write', 'writev', 'sendto'];
export const POLL_CALLS = ['epoll_wait', 'epoll_pwait'];
/** System calls counted per request. `total` is every system call (raw_syscalls:sys_enter). */
export const COUNTED_SYSCALLS = [...READ_CALLS, ...WRITE_CALLS, ...POLL_CALLS, 'getsockopt', 'futex'];

export interface SyscallEvent {
  t: number; // seconds
  tid: number;
  kind: 'enter-read' | 'exit-read' | 'enter-write';
  fd: number; // -1 on exits
  ret: number; // exit value (negative = error), 0 on enters
}

/** One read that returned bytes, followed by the next write on the same thread. */
export interface ReadWritePair {
  readFd: number;
  writeFd: number;
  gapUs: number;
}

export interface GapStats {
  n: number;
  p50Us: number;
  p90Us: number;
}

export interface Anatomy {
  /** CPU ms per 1,000 requests in user mode and in the kernel, over a window without perf attached. */
  userMsPer1k: number;
  sysMsPer1k: number;
  /** Per request, over a window with `perf stat` attached; null where perf is unavailable. */
  syscallsPerRequest: Record<string, number> | null;
  /** Downstream read → upstream write, and upstream read → downstream write (µs); null without perf. */
  requestSide: GapStats | null;
  responseSide: GapStats | null;
}

const READ_ENTER = new RegExp(`sys_enter_(${READ_CALLS.join('|')}):`);
const READ_EXIT = new RegExp(`sys_exit_(${READ_CALLS.join('|')}):`);
const WRITE_ENTER = new RegExp(`sys_enter_(${WRITE_CALLS.join('|')}):`);

/** A perf hex field as a signed 64-bit number (exit values of failed calls are two's complement). */
function hexSigned(s: string): number {
  const v = BigInt(s.startsWith('0x') ? s : `0x${s}`);
  return Number(v >= 1n << 63n ? v - (1n << 64n) : v);
}

/** Lines of `perf script -F tid,time,event,trace` → syscall events (other lines are skipped). */
export function parsePerfScript(text: string): SyscallEvent[] {
  const out: SyscallEvent[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+\.\d+):\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const tid = Number(m[1]);
    const t = Number(m[2]);
    const ev = m[3]!;
    const rest = m[4]!;
    const read = READ_ENTER.test(ev);
    if (read || WRITE_ENTER.test(ev)) {
      const f = /fd: (0x[0-9a-f]+)/.exec(rest);
      if (!f) continue;
      out.push({ t, tid, kind: read ? 'enter-read' : 'enter-write', fd: hexSigned(f[1]!), ret: 0 });
    } else if (READ_EXIT.test(ev)) {
      const r = /(0x[0-9a-f]+)/.exec(rest);
      if (!r) continue;
      out.push({ t, tid, kind: 'exit-read', fd: -1, ret: hexSigned(r[1]!) });
    }
  }
  return out;
}

/** Each read that returned bytes and the next write on the same thread, with no other successful read between. */
export function readWritePairs(events: readonly SyscallEvent[]): ReadWritePair[] {
  const pairs: ReadWritePair[] = [];
  const pendingFd = new Map<number, number>();
  const lastRead = new Map<number, { fd: number; t: number }>();
  for (const e of events) {
    if (e.kind === 'enter-read') pendingFd.set(e.tid, e.fd);
    else if (e.kind === 'exit-read') {
      const fd = pendingFd.get(e.tid);
      pendingFd.delete(e.tid);
      if (fd !== undefined && e.ret > 0) lastRead.set(e.tid, { fd, t: e.t });
    } else {
      const r = lastRead.get(e.tid);
      if (r === undefined) continue;
      lastRead.delete(e.tid);
      pairs.push({ readFd: r.fd, writeFd: e.fd, gapUs: (e.t - r.t) * 1e6 });
    }
  }
  return pairs;
}

/**
 * Splits read→write pairs into the two legs of a proxied request: a pair (A→B) followed by (B→A) is the request
 * leg (read from the client on A, write upstream on B) and then the response leg. Pairs that do not chain this way
 * (interleaved requests at higher rates, health checks, exports) are left out.
 */
export function proxyLegs(pairs: readonly ReadWritePair[]): { request: number[]; response: number[] } {
  const request: number[] = [];
  const response: number[] = [];
  for (let i = 0; i + 1 < pairs.length; i++) {
    const a = pairs[i]!;
    const b = pairs[i + 1]!;
    if (a.readFd !== a.writeFd && b.readFd === a.writeFd && b.writeFd === a.readFd) {
      request.push(a.gapUs);
      response.push(b.gapUs);
      i++;
    }
  }
  return { request, response };
}

export function gapStats(xs: readonly number[]): GapStats | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const q = (f: number) => s[Math.min(s.length - 1, Math.floor(s.length * f))]!;
  return { n: s.length, p50Us: q(0.5), p90Us: q(0.9) };
}

/** `perf stat -x,` output → counts by syscall name (`total` for raw_syscalls:sys_enter). */
export function parsePerfStat(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const f = line.split(',');
    if (f.length < 3) continue;
    const n = Number(f[0]);
    if (!Number.isFinite(n)) continue;
    const ev = f[2]!;
    if (ev === 'raw_syscalls:sys_enter') out.total = n;
    else {
      const m = /^syscalls:sys_enter_(\w+)$/.exec(ev);
      if (m) out[m[1]!] = n;
    }
  }
  return out;
}

let perfOk: boolean | undefined;
/** Can this machine record syscall tracepoints of another process (perf present, tracefs readable)? */
export function perfAvailable(): boolean {
  if (perfOk === undefined) {
    try {
      execFileSync('perf', ['stat', '-x,', '-e', 'syscalls:sys_enter_write', 'true'], { stdio: 'ignore', timeout: 10_000 });
      perfOk = true;
    } catch {
      perfOk = false;
    }
  }
  return perfOk;
}

/** Runs `cmd` to its end (or `timeoutMs`) and returns its output whatever its exit status (perf's is not the point). */
function run(cmd: string, args: string[], timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 256 * 1024 * 1024 }, (_err, stdout, stderr) => resolve({ stdout, stderr }));
  });
}

/** System call counts of the processes `pids` together over `seconds` (perf stat on tracepoints). */
export async function countSyscalls(pids: readonly number[], seconds: number): Promise<Record<string, number>> {
  const ev = ['raw_syscalls:sys_enter', ...COUNTED_SYSCALLS.map((s) => `syscalls:sys_enter_${s}`)].join(',');
  const r = await run('perf', ['stat', '-x,', '-e', ev, '-p', pids.join(','), '--', 'sleep', String(seconds)], (seconds + 20) * 1000);
  return parsePerfStat(r.stderr + r.stdout);
}

/** Read→write pairs of the threads of `pids` over `seconds` (perf record of read exits and write entries, then perf script). */
export async function recordPairs(pids: readonly number[], seconds: number, file: string): Promise<ReadWritePair[]> {
  const ev = READ_CALLS.flatMap((s) => [`syscalls:sys_enter_${s}`, `syscalls:sys_exit_${s}`]).concat(WRITE_CALLS.map((s) => `syscalls:sys_enter_${s}`));
  await run('perf', ['record', '-q', '-e', ev.join(','), '-p', pids.join(','), '-o', file, '--', 'sleep', String(seconds)], (seconds + 30) * 1000);
  const s = await run('perf', ['script', '-i', file, '-F', 'tid,time,event,trace'], 60_000);
  return readWritePairs(parsePerfScript(s.stdout));
}

/** CPU ticks (user, sys) of `pid` now. */
export function userSysTicks(pid: number): { user: number; sys: number } {
  return parseStatUserSys(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}
