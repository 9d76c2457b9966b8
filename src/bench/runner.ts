// Runs several targets interleaved (A B C A B C …) so slow drifts of the machine (thermal,
// noisy neighbours, GC of a peer) spread over every target, watching each target's process
// (CPU, peak RSS) while its own run is in progress.
import os from 'node:os';
import { runLoad, type LoadOptions, type RunOutcome } from './generator.js';
import { ProcWatcher, type ProcUsage } from './proc.js';
import { buildReport, type BenchReport, type TargetInput } from './report.js';

export interface BenchTarget {
  name: string;
  url: string;
  /** Processes whose CPU/RSS are attributed to this target (e.g. the proxy's worker PIDs). */
  pids?: number[];
  /** Headers for this target only (e.g. the Host a proxy routes on), after the shared ones. */
  headers?: Array<[string, string]>;
}

export interface BenchPlan {
  targets: BenchTarget[];
  load: LoadOptions;
  rounds: number;
  /** Target name the others are compared to; `direct` when present, else none. */
  baseline: string | null;
  command: string[];
  /** Called before each run (for progress output). */
  onRun?: (target: BenchTarget, round: number) => void;
  /** Pause between runs, ms, so sockets in TIME_WAIT and GC from the previous run settle. */
  pauseMs?: number;
}

export function machineFacts(): BenchReport['machine'] {
  const cpus = os.cpus();
  return {
    // All CPUs of the machine, not the ones this (possibly pinned) process may use.
    nproc: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: `${process.platform} ${os.release()}`,
    loadavg1: os.loadavg()[0] ?? 0,
  };
}

export async function runBench(plan: BenchPlan): Promise<BenchReport> {
  const startedAt = new Date();
  const machine = machineFacts();
  const loadFor = (t: BenchTarget): LoadOptions => (t.headers?.length ? { ...plan.load, headers: [...plan.load.headers, ...t.headers] } : plan.load);
  const inputs: TargetInput[] = plan.targets.map((t) => ({ name: t.name, url: t.url, rounds: [] }));
  for (let round = 1; round <= plan.rounds; round++) {
    for (let i = 0; i < plan.targets.length; i++) {
      const t = plan.targets[i]!;
      plan.onRun?.(t, round);
      const watchers = (t.pids ?? []).map((pid) => new ProcWatcher(pid));
      // Watch from the end of the warm-up to the end of the run, the window of the measured requests.
      let outcome: RunOutcome;
      let usage: ProcUsage[] | null = null;
      if (watchers.length > 0) {
        const warm = plan.load.warmupMs;
        let started = false;
        const startWatch = () => {
          started = true;
          for (const w of watchers) w.start();
        };
        const timer = warm > 0 ? setTimeout(startWatch, warm) : undefined;
        if (warm <= 0) startWatch();
        outcome = await runLoad(t.url, loadFor(t));
        if (timer) clearTimeout(timer);
        if (!started) startWatch();
        usage = watchers.map((w) => w.stop());
      } else {
        outcome = await runLoad(t.url, loadFor(t));
      }
      inputs[i]!.rounds.push({ outcome, usage });
      if (plan.pauseMs) await new Promise((r) => setTimeout(r, plan.pauseMs));
    }
  }
  return buildReport({
    targets: inputs,
    opts: plan.load,
    rounds: plan.rounds,
    baseline: plan.baseline,
    startedAt,
    finishedAt: new Date(),
    command: plan.command,
    machine,
  });
}
