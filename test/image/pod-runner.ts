/**
 * Runs a pod's containers with podman the way the kubelet does, from the plan kubelet.ts makes of the injected spec:
 * volumes materialised (ConfigMaps in the atomic-writer layout, downward-API files), init containers in order to
 * exit 0, a native sidecar started and held until its startup probe passes, then the app containers, then every
 * readiness probe. Probes are HTTP GETs from the "node" (a callback: the test asks from its world namespace).
 * terminate() stops them in Kubernetes' order (apps, then sidecars in reverse); destroy() removes everything.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { atomicWriterLayout, downwardApiFiles, planPod, podVolumes, type ContainerPlan, type HttpProbe, type PodPlan } from './kubelet.js';
import { podman, PodmanError, type Podman } from './podman.js';

export interface PodOptions {
  netns: string;
  podIp: string;
  prefix: string;
  /** ConfigMaps by name: file name → content. A missing one is an empty volume when the pod says optional. */
  configMaps: Record<string, Record<string, string>>;
  /** Secrets by name, the same way. */
  secrets?: Record<string, Record<string, string>>;
  /** One HTTP(S) GET from the node to the pod IP: the status, or undefined when nothing answered. */
  probe(port: number, path: string, timeoutSeconds: number, scheme: 'HTTP' | 'HTTPS'): number | undefined;
  dns?: { nameserver: string; search: string[]; ndots: number };
  /** Patience for a probe, whatever its failureThreshold says (inject's startup probe allows 10 minutes). */
  maxProbeWaitMs?: number;
}

export interface RunningPod {
  plan: PodPlan;
  /** The podman commands that started the pod, shell-quoted, in order (the test saves them beside its report). */
  commands: string[];
  /** The podman name of a container of the pod. */
  id(container: string): string;
  logs(container: string): string;
  exec(container: string, cmd: string[], timeoutMs?: number): string;
  /** The container's main process on the host (for /proc/<pid>/status). */
  pid(container: string): number;
  signal(container: string, signal: string): void;
  /** Resolves with the exit code once the container has exited, or undefined after `timeoutMs`. */
  waitExit(container: string, timeoutMs: number): Promise<number | undefined>;
  /** Kubernetes' pod deletion: SIGTERM the app containers, then the sidecars in reverse order; their exit codes. */
  terminate(): Promise<Record<string, number | undefined>>;
  destroy(): void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const quote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`);

function materialise(pod: unknown, opts: PodOptions, root: string): Record<string, string> {
  const dirs: Record<string, string> = {};
  const stamp = new Date().toISOString().replace(/[-:.]/g, '_');
  for (const v of podVolumes(pod)) {
    const dir = join(root, v.name);
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755);
    dirs[v.name] = dir;
    let files: Record<string, string> | undefined;
    if (v.source === 'configMap' || v.source === 'secret') {
      const what = v.source === 'configMap' ? `configMap ${v.configMap}` : `secret ${v.secret}`;
      files = v.source === 'configMap' ? opts.configMaps[v.configMap!] : opts.secrets?.[v.secret!];
      if (files === undefined && !v.optional) throw new Error(`${what} is not there and the volume ${v.name} is not optional (the pod would not start)`);
    } else if (v.source === 'downwardAPI') {
      files = downwardApiFiles(pod, v.items ?? []);
    }
    if (v.source === 'emptyDir') chmodSync(dir, 0o777);
    if (files === undefined) continue;
    for (const e of atomicWriterLayout(files, stamp)) {
      const path = join(dir, e.path);
      mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
      if (e.target !== undefined) symlinkSync(e.target, path);
      else writeFileSync(path, e.content!, { mode: 0o644 });
    }
  }
  return dirs;
}

export async function startPod(p: Podman, pod: unknown, opts: PodOptions): Promise<RunningPod> {
  const root = mkdtempSync(join(tmpdir(), 'remora-pod-'));
  chmodSync(root, 0o755);
  const started: string[] = [];
  const userOf = new Map<string, string>();
  const imageUser = (image: string): string => {
    if (!userOf.has(image)) userOf.set(image, podman(p, ['image', 'inspect', '--format', '{{.Config.User}}', image]).trim());
    return userOf.get(image)!;
  };
  let plan: PodPlan;
  try {
    const volumeDirs = materialise(pod, opts, root);
    plan = planPod(pod, { netns: opts.netns, podIp: opts.podIp, nodeName: 'test-node', volumeDirs, imageUser, prefix: opts.prefix, ...(opts.dns ? { dns: opts.dns } : {}) });
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  const byName = new Map(plan.containers.map((c) => [c.name, c]));
  const id = (name: string): string => {
    if (!byName.has(name)) throw new Error(`the pod has no container ${name}`);
    return `${opts.prefix}-${name}`;
  };
  const state = (name: string): { running: boolean; exitCode: number } => {
    const [running, code] = podman(p, ['inspect', '--format', '{{.State.Running}} {{.State.ExitCode}}', id(name)]).trim().split(' ');
    return { running: running === 'true', exitCode: Number(code) };
  };
  const logs = (name: string): string => {
    try {
      return podman(p, ['logs', id(name)]);
    } catch (err) {
      return `(no logs: ${(err as Error).message})`;
    }
  };
  const waitExit = async (name: string, timeoutMs: number): Promise<number | undefined> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = state(name);
      if (!s.running) return s.exitCode;
      if (Date.now() > deadline) return undefined;
      await sleep(100);
    }
  };
  /** Poll an HTTP probe as the kubelet does (initial delay, period, failure threshold), bounded by maxProbeWaitMs. */
  const awaitProbe = async (c: ContainerPlan, pr: HttpProbe, what: string): Promise<void> => {
    await sleep(pr.initialDelaySeconds * 1000);
    const deadline = Date.now() + (opts.maxProbeWaitMs ?? 60_000);
    let last: number | undefined;
    for (let failures = 0; ; failures++) {
      last = opts.probe(pr.port, pr.path, pr.timeoutSeconds, pr.scheme);
      if (last !== undefined && last >= 200 && last < 400) return;
      const s = state(c.name);
      if (!s.running) throw new Error(`${c.name} exited with ${s.exitCode} before its ${what} probe passed:\n${logs(c.name)}`);
      if (failures + 1 >= pr.failureThreshold || Date.now() > deadline) {
        throw new Error(`${c.name}: ${what} probe GET :${pr.port}${pr.path} failed ${failures + 1} times (last: ${last ?? 'no answer'}):\n${logs(c.name)}`);
      }
      await sleep(pr.periodSeconds * 1000);
    }
  };

  const commands: string[] = [];
  const run = (args: string[], timeoutMs?: number): string => {
    commands.push(['podman', ...args].map(quote).join(' '));
    return podman(p, args, timeoutMs === undefined ? {} : { timeoutMs });
  };
  const running: RunningPod = {
    plan,
    commands,
    id,
    logs,
    exec: (name, cmd, timeoutMs = 60_000) => podman(p, ['exec', id(name), ...cmd], { timeoutMs }),
    pid: (name) => Number(podman(p, ['inspect', '--format', '{{.State.Pid}}', id(name)]).trim()),
    signal: (name, signal) => void podman(p, ['kill', '--signal', signal, id(name)]),
    waitExit,
    async terminate() {
      const codes: Record<string, number | undefined> = {};
      const deadline = Date.now() + plan.terminationGracePeriodSeconds * 1000;
      const apps = plan.containers.filter((c) => c.kind === 'app');
      const sidecars = plan.containers.filter((c) => c.kind === 'sidecar').reverse();
      for (const group of [apps, ...sidecars.map((s) => [s])]) {
        for (const c of group) if (state(c.name).running) running.signal(c.name, 'TERM');
        for (const c of group) {
          codes[c.name] = await waitExit(c.name, Math.max(0, deadline - Date.now()));
          if (codes[c.name] === undefined) podman(p, ['kill', '--signal', 'KILL', id(c.name)]);
        }
      }
      return codes;
    },
    destroy() {
      for (const name of started.reverse()) {
        try {
          podman(p, ['rm', '--force', '--time', '0', name]);
        } catch {
          /* already gone */
        }
      }
      rmSync(root, { recursive: true, force: true });
    },
  };

  try {
    for (const c of plan.containers) {
      started.push(id(c.name));
      if (c.kind === 'init') {
        try {
          run(['run', ...c.runArgs], 60_000);
        } catch (err) {
          if (!(err instanceof PodmanError)) throw err;
          throw new Error(`init container ${c.name} exited with ${err.code}:\n${logs(c.name)}\n${err.stderr}`);
        }
        continue;
      }
      run(['run', '--detach', ...c.runArgs]);
      if (c.postStart !== undefined) run(['exec', id(c.name), ...c.postStart]);
      // A native sidecar must have started (its startup probe passed) before the next container starts.
      if (c.kind === 'sidecar' && c.startupProbe !== undefined) await awaitProbe(c, c.startupProbe, 'startup');
    }
    for (const c of plan.containers) {
      if (c.kind !== 'init' && c.readinessProbe !== undefined) await awaitProbe(c, c.readinessProbe, 'readiness');
    }
  } catch (err) {
    running.destroy();
    throw err;
  }
  return running;
}
