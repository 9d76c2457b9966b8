/**
 * The IPC protocol between the `--concurrency N` primary and its workers (node:cluster's channel, JSON messages):
 * workers announce readiness; the primary asks them for admin data with request/reply RPCs that time out.
 */
import type { Worker } from 'node:cluster';

/** What the primary can ask a worker (answered from the worker's `Sidecar`). */
export type RpcOp =
  | 'metrics' // Prometheus exposition of this worker (string)
  | 'clusters' // ClusterView[]
  | 'configDump' // the single-process /config_dump object
  | 'readiness' // { ready, reason, version, hash }
  | 'serverInfo' // the single-process /server_info object
  | 'listeners' // Array<{ name, address, port }>
  | 'admin' // run one admin route of the worker: { method, path } → AdminAnswer
  | 'shutdown'; // drain and exit 0 (no reply: the exit is the answer)

export interface AdminAnswer { status: number; headers: Record<string, string>; body: string }
export interface WorkerReadiness { ready: boolean; reason: string; version: number | null; hash: string | null }

export type ToWorker = { remora: 'rpc'; id: number; op: RpcOp; arg?: unknown };
export type FromWorker =
  | { remora: 'ready'; outbound: number; inbound: number; version: number | null; hash: string | null }
  | { remora: 'reply'; id: number; ok: boolean; value?: unknown; error?: string }
  /** Start-up failed (e.g. invalid config); `message` is what the single-process CLI would print on stderr. */
  | { remora: 'failed'; message: string };

export function isFromWorker(m: unknown): m is FromWorker {
  return typeof m === 'object' && m !== null && 'remora' in m && ['ready', 'reply', 'failed'].includes((m as FromWorker).remora);
}

export function isToWorker(m: unknown): m is ToWorker {
  return typeof m === 'object' && m !== null && (m as ToWorker).remora === 'rpc' && typeof (m as ToWorker).id === 'number';
}

/**
 * Primary-side RPC client of one worker. Calls reject when the worker does not answer within `timeoutMs` or exits,
 * so one stuck worker cannot hang an admin request forever.
 */
export class WorkerRpc {
  private next = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();

  constructor(private readonly worker: Worker, private readonly timeoutMs = 2000) {}

  call<T>(op: RpcOp, arg?: unknown): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`worker ${this.worker.id} did not answer ${op} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      const msg: ToWorker = arg === undefined ? { remora: 'rpc', id, op } : { remora: 'rpc', id, op, arg };
      try {
        this.worker.send(msg, (err: Error | null) => { if (err) this.settle(id, false, undefined, err.message); });
      } catch (err) {
        this.settle(id, false, undefined, (err as Error).message);
      }
    });
  }

  /** Fire-and-forget (shutdown). */
  notify(op: RpcOp, arg?: unknown): void {
    const msg: ToWorker = arg === undefined ? { remora: 'rpc', id: 0, op } : { remora: 'rpc', id: 0, op, arg };
    try { this.worker.send(msg); } catch { /* the worker is gone: nothing to notify */ }
  }

  settle(id: number, ok: boolean, value: unknown, error?: string): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (ok) p.resolve(value);
    else p.reject(new Error(error ?? 'worker error'));
  }

  failAll(reason: string): void {
    for (const id of [...this.pending.keys()]) this.settle(id, false, undefined, reason);
  }
}
