/**
 * Leader election over a coordination.k8s.io/v1 Lease (client-go's leaderelection, reduced): one candidate holds the
 * lease and renews it every `renewMs`; the others read it every `retryMs` and take it over once it has not been
 * renewed for `leaseDurationSeconds`. Every write carries the resourceVersion read, so two candidates can never both
 * win (the loser gets 409). `decide` is the pure part; `LeaseElector` does the I/O with injected time.
 */
import type { KubeApi } from './kube-api.js';
import { KubeApiError } from './kube-api.js';

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export type LeaseDecision = 'renew' | 'acquire' | 'follow';

/** What `me` should do with the lease as read (`undefined`: there is none). */
export function decide(lease: LeaseSpec | undefined, me: string, nowMs: number): LeaseDecision {
  if (lease === undefined || !lease.holderIdentity) return 'acquire';
  if (lease.holderIdentity === me) return 'renew';
  const renewed = Date.parse(lease.renewTime ?? lease.acquireTime ?? '');
  const duration = (lease.leaseDurationSeconds ?? 15) * 1000;
  return !Number.isFinite(renewed) || nowMs >= renewed + duration ? 'acquire' : 'follow';
}

export interface LeaseElectorOptions {
  api: KubeApi;
  namespace: string;
  name: string;
  identity: string;
  /** Lease duration (ms; default 15 s, client-go's). */
  durationMs?: number;
  /** The holder renews this often (ms; default 5 s). */
  renewMs?: number;
  /** Followers check this often (ms; default 2 s, jittered ±20 %). */
  retryMs?: number;
  now?: () => number;
  rand?: () => number;
  onChange(leading: boolean): void;
  log(level: 'info' | 'warn', msg: string): void;
}

export class LeaseElector {
  leading = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly o: Required<Omit<LeaseElectorOptions, 'onChange' | 'log' | 'api'>> & Pick<LeaseElectorOptions, 'onChange' | 'log' | 'api'>;

  constructor(opts: LeaseElectorOptions) {
    this.o = { durationMs: 15_000, renewMs: 5_000, retryMs: 2_000, now: Date.now, rand: Math.random, ...opts };
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.o.namespace}/leases/${this.o.name}`;
  }

  start(): void {
    void this.tick();
  }

  /** Stop campaigning; a holder releases the lease (empty holder) so another takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (!this.leading) return;
    this.setLeading(false);
    try {
      const cur = await this.o.api.get(this.path);
      const meta = cur.metadata as { resourceVersion?: string } | undefined;
      if ((cur.spec as LeaseSpec | undefined)?.holderIdentity === this.o.identity) {
        await this.o.api.patch(this.path, { metadata: { resourceVersion: meta?.resourceVersion }, spec: { holderIdentity: '', leaseDurationSeconds: 1 } }, 'application/merge-patch+json');
      }
    } catch { /* it will expire */ }
  }

  private setLeading(v: boolean): void {
    if (this.leading === v) return;
    this.leading = v;
    this.o.log('info', `gateway status: ${v ? 'now the status writer' : 'no longer the status writer'} (Lease ${this.o.namespace}/${this.o.name}, identity ${this.o.identity})`);
    this.o.onChange(v);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => { void this.tick(); }, ms);
    this.timer.unref();
  }

  /** One round: read the lease, then renew, acquire or follow. */
  async tick(): Promise<void> {
    if (this.stopped) return;
    const now = this.o.now();
    let lease: Record<string, unknown> | undefined;
    try {
      lease = await this.o.api.get(this.path);
    } catch (err) {
      if (!(err instanceof KubeApiError && err.statusCode === 404)) {
        // Cannot tell who holds it: a holder steps down once its own lease would have expired.
        this.o.log('warn', `gateway status: reading Lease ${this.o.namespace}/${this.o.name}: ${(err as Error).message}`);
        this.setLeading(false);
        this.schedule(this.jitter(this.o.retryMs));
        return;
      }
    }
    const spec = lease?.spec as LeaseSpec | undefined;
    const rv = (lease?.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
    const d = decide(spec, this.o.identity, now);
    if (d === 'follow') {
      this.setLeading(false);
      this.schedule(this.jitter(this.o.retryMs));
      return;
    }
    const stamp = new Date(now).toISOString().replace(/\.\d{3}Z$/, '.000000Z');
    const next: LeaseSpec = {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: Math.ceil(this.o.durationMs / 1000),
      renewTime: stamp,
      acquireTime: d === 'renew' ? spec?.acquireTime ?? stamp : stamp,
      leaseTransitions: (spec?.leaseTransitions ?? 0) + (d === 'acquire' && spec?.holderIdentity ? 1 : 0),
    };
    try {
      if (lease === undefined) {
        // Create: a second candidate creating at the same moment gets 409 AlreadyExists.
        await this.o.api.create(`/apis/coordination.k8s.io/v1/namespaces/${this.o.namespace}/leases`, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.o.name, namespace: this.o.namespace }, spec: next });
      } else {
        // Update with the resourceVersion read: a compare-and-swap (409 when someone else wrote in between).
        await this.o.api.patch(this.path, { metadata: { resourceVersion: rv }, spec: next }, 'application/merge-patch+json');
      }
      this.setLeading(true);
      this.schedule(this.o.renewMs);
    } catch (err) {
      if (!(err instanceof KubeApiError && err.statusCode === 409)) this.o.log('warn', `gateway status: writing Lease ${this.o.namespace}/${this.o.name}: ${(err as Error).message}`);
      this.setLeading(false);
      this.schedule(this.jitter(this.o.retryMs));
    }
  }

  private jitter(ms: number): number {
    return Math.round(ms * (0.8 + 0.4 * this.o.rand()));
  }
}
