// Process plumbing for the benchmark harness: spawn a peer pinned to a CPU with taskset, wait
// for its "ready" line, find its child PIDs, pick free ports, and stop exactly what we started.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import http from 'node:http';

export interface Started {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** The JSON after the ready marker, when the process printed one. */
  ready: Record<string, unknown>;
  /** Milliseconds from spawn to the ready line. */
  readyMs: number;
  stderr: () => string;
}

let tasksetOk: boolean | undefined;
export function hasTaskset(): boolean {
  if (tasksetOk === undefined) {
    try {
      execFileSync('taskset', ['-c', '0', 'true']);
      tasksetOk = true;
    } catch {
      tasksetOk = false;
    }
  }
  return tasksetOk;
}

/** Pins this process (all threads, including workers created later) to `cpus`, e.g. "1". */
export function pinSelf(cpus: string): boolean {
  if (!hasTaskset()) return false;
  try {
    execFileSync('taskset', ['-a', '-c', '-p', cpus, String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Spawns `cmd args` (under `taskset -c cpus` when given) and resolves once a stdout line starts
 * with `marker` (its JSON tail is parsed) — or, with `marker` null, once `probe` succeeds.
 */
export function startProcess(opts: {
  name: string;
  cmd: string;
  args: string[];
  cpus?: string;
  marker: string | null;
  probe?: () => Promise<boolean>;
  timeoutMs?: number;
  cwd?: string;
}): Promise<Started> {
  const t0 = performance.now();
  const pinned = opts.cpus !== undefined && hasTaskset();
  // taskset execs the command, so the PID we get is the peer's own PID.
  const proc = pinned ? spawn('taskset', ['-c', opts.cpus!, opts.cmd, ...opts.args], { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(opts.cmd, opts.args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    if (err.length < 20_000) err += d.toString();
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let done = false;
    const fail = (why: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (proc.pid && proc.exitCode === null) proc.kill('SIGKILL');
      reject(new Error(`${opts.name}: ${why}${err ? `\n${err.slice(-2000)}` : ''}`));
    };
    const timer = setTimeout(() => fail(`not ready after ${opts.timeoutMs ?? 15_000} ms`), opts.timeoutMs ?? 15_000);
    const ok = (ready: Record<string, unknown>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ name: opts.name, proc, pid: proc.pid!, ready, readyMs: performance.now() - t0, stderr: () => err });
    };
    proc.once('exit', (code, sig) => fail(`exited early (code ${code}, signal ${sig})`));
    proc.once('error', (e) => fail(e.message));
    proc.stdout!.on('data', (d: Buffer) => {
      if (done || opts.marker === null) return;
      out += d.toString();
      let nl: number;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line.startsWith(opts.marker)) {
          const json = line.slice(opts.marker.length).trim();
          try {
            ok(json ? (JSON.parse(json) as Record<string, unknown>) : {});
          } catch {
            ok({});
          }
        }
      }
    });
    if (opts.marker === null && opts.probe) {
      const poll = async () => {
        while (!done) {
          if (await opts.probe!().catch(() => false)) return ok({});
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      void poll();
    }
  });
}

/** Sends SIGTERM to the process we started (by PID), then SIGKILL after `graceMs`. */
export async function stopProcess(s: Started | undefined, graceMs = 3000): Promise<void> {
  if (!s || s.proc.exitCode !== null || s.proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => s.proc.once('exit', () => r()));
  process.kill(s.pid, 'SIGTERM');
  const t = setTimeout(() => {
    try {
      process.kill(s.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }, graceMs);
  await exited;
  clearTimeout(t);
}

/** Direct children of a PID (from /proc/PID/task/TID/children), e.g. nginx workers or cluster workers. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const f = `/proc/${pid}/task/${tid}/children`;
      if (!existsSync(f)) continue;
      for (const c of readFileSync(f, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    }
  } catch {
    /* not Linux or the process is gone */
  }
  return [...new Set(out)];
}

/** A free TCP port on 127.0.0.1 (bind to 0, read the port, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** GET http://127.0.0.1:port/path with an optional Host header; resolves status and body. */
export function httpGet(port: number, path: string, headers: Record<string, string> = {}, timeoutMs = 2000): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** What CPU `cpu` did between two `cpuTimes()` readings (jiffies), or undefined if it was not read or no time passed. */
export function cpuDelta(before: ReturnType<typeof cpuTimes>, after: ReturnType<typeof cpuTimes>, cpu: string): { busy: number; total: number; steal: number } | undefined {
  const a = before[cpu];
  const b = after[cpu];
  return a && b && b.total > a.total ? { busy: b.busy - a.busy, total: b.total - a.total, steal: b.steal - a.steal } : undefined;
}

/** Busy and total jiffies per CPU from /proc/stat (busy = total − idle − iowait); {} off Linux. */
export function cpuTimes(): Record<string, { busy: number; total: number; steal: number }> {
  const out: Record<string, { busy: number; total: number; steal: number }> = {};
  try {
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const v = m[2]!.trim().split(/\s+/).map(Number);
      // user nice system idle iowait irq softirq steal (guest time is already inside user).
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
      // steal: time this virtual CPU wanted to run but the hypervisor ran something else (counted in busy).
      out[m[1]!] = { busy: total - (v[3] ?? 0) - (v[4] ?? 0), total, steal: v[7] ?? 0 };
    }
  } catch {
    /* not Linux */
  }
  return out;
}
