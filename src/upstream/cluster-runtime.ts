/**
 * Live state of one cluster: load balancer + outlier detection + circuit-breaker counters + retry budget,
 * composed behind model.ts's ClusterRuntime. Pure (callers pass `now`); per-endpoint state survives
 * `update(def)` for endpoints whose key is unchanged. The hot path (pick/admit/attempt*) does not allocate.
 */

import type {
  AdmitResult, AttemptOutcome, ClusterDef, ClusterRuntime, ClusterView, Endpoint, EndpointView, LbPolicy, OutlierPolicy,
  PickInput,
} from '../model.js';
import type { Rand } from '../util/random.js';
import { createLoadBalancer, supportsSlowStart } from './lb/index.js';
import type { LbHost, LoadBalancer } from './lb/load-balancer.js';
import { DEFAULT_RTT_MS, observeRtt } from './lb/peak-ewma.js';
import { OutlierDetector, type OutlierHost } from './outlier-detector.js';
import { ResourceLimits } from './resource-limits.js';

// Widens model.ts's ClusterRuntime with the optional `budgeted` flag (connect-failure retries skip the retry
// budget, see ResourceLimits.tryStartRetry). To be folded into model.ts by its owner.
/** While any endpoint warms up, weights are recomputed at most this often (ms); bounded below by warmup/20. */
const WARMUP_REFRESH_MS = 1000;

/** Everything the runtime knows about one endpoint; the balancer and the outlier detector read it in place. */
class EndpointState implements LbHost, OutlierHost {
  endpoint: Endpoint;
  weight: number;
  active = 0;
  rttMs = DEFAULT_RTT_MS;
  rttAt: number;
  /** First time this endpoint was seen (ms) — slow start measures its age from here; NaN until known. */
  firstSeen: number;
  consecutive5xx = 0;
  consecutiveGateway = 0;
  consecutiveLocal = 0;
  ejected = false;
  ejectedAt = 0;
  ejectMultiplier = 0;
  ejections = 0;
  total = 0;
  success = 0;
  error = 0;

  constructor(ep: Endpoint, firstSeen: number) {
    this.endpoint = ep;
    this.weight = ep.weight > 0 ? ep.weight : 1;
    this.firstSeen = firstSeen;
    this.rttAt = Number.isNaN(firstSeen) ? 0 : firstSeen;
  }
}

function isHashLb(kind: LbPolicy['kind']): boolean {
  return kind === 'RING_HASH' || kind === 'MAGLEV';
}

function sameLbTables(a: LbPolicy, b: LbPolicy): boolean {
  return a.kind === b.kind && a.peakEwma === b.peakEwma && a.ringMinSize === b.ringMinSize &&
    a.maglevTableSize === b.maglevTableSize && a.warmupMs === b.warmupMs &&
    a.warmupMinPercent === b.warmupMinPercent && a.warmupAggression === b.warmupAggression;
}

/** Snapshots compile fresh policy objects: compare by value so an unrelated swap rebuilds nothing. */
function sameOutlier(a: OutlierPolicy | undefined, b: OutlierPolicy | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return a.consecutive5xxErrors === b.consecutive5xxErrors && a.consecutiveGatewayErrors === b.consecutiveGatewayErrors &&
    a.splitExternalLocalOriginErrors === b.splitExternalLocalOriginErrors &&
    a.consecutiveLocalOriginFailures === b.consecutiveLocalOriginFailures && a.intervalMs === b.intervalMs &&
    a.baseEjectionTimeMs === b.baseEjectionTimeMs && a.maxEjectionPercent === b.maxEjectionPercent &&
    a.minHealthPercent === b.minHealthPercent;
}

class ClusterRuntimeImpl implements ClusterRuntime {
  def: ClusterDef;
  private readonly rand: Rand;
  private states = new Map<string, EndpointState>();
  /** Endpoint states in the def's order. */
  private all: EndpointState[] = [];
  private lb!: LoadBalancer;
  private readonly detector: OutlierDetector;
  private readonly limits: ResourceLimits;
  /** pick() only does slow work (sweeps, warmup refresh, first-seen stamping) once `now` reaches this. */
  private nextCheckAt = -Infinity;
  private nextWarmupAt = Infinity;
  private panicMode = false;
  /** Consistent-hash routes keep the same host on retry (Istio installs no previous_hosts predicate there). */
  private ignoreExclude = false;
  /** The latest `now` seen on the slow path (update() has no clock of its own). */
  private lastNow: number;

  constructor(def: ClusterDef, rand: Rand, now: number) {
    this.def = def;
    this.lastNow = now;
    this.rand = rand;
    this.detector = new OutlierDetector(def.policy.outlier, now);
    this.limits = new ResourceLimits(def.policy.pool, def.policy.retryBudget);
    // Endpoints present at creation count as already warm: at startup there is no older endpoint to protect.
    const warm = now - def.policy.lb.warmupMs;
    for (const ep of def.endpoints) this.addState(ep, warm);
    this.detector.setHosts(this.all);
    this.ignoreExclude = isHashLb(def.policy.lb.kind);
    this.rebuild(now);
  }

  private addState(ep: Endpoint, firstSeen: number): void {
    if (this.states.has(ep.key)) return; // duplicate address:port in one cluster: first wins
    const st = new EndpointState(ep, firstSeen);
    this.states.set(ep.key, st);
    this.all.push(st);
  }

  update(def: ClusterDef): void {
    const prev = this.def;
    this.def = def;
    const lbChanged = !sameLbTables(prev.policy.lb, def.policy.lb);
    let setChanged = lbChanged || prev.endpoints.length !== def.endpoints.length;
    if (!setChanged) {
      for (let i = 0; i < def.endpoints.length; i++) {
        const a = prev.endpoints[i]!;
        const b = def.endpoints[i]!;
        if (a.key !== b.key || a.weight !== b.weight) { setChanged = true; break; }
      }
    }
    this.limits.setPolicy(def.policy.pool, def.policy.retryBudget);
    if (!sameOutlier(prev.policy.outlier, def.policy.outlier)) {
      this.detector.setPolicy(def.policy.outlier, this.lastNow);
      setChanged = true; // panic/ejection view may differ
    }
    this.ignoreExclude = isHashLb(def.policy.lb.kind);
    const old = this.states;
    this.states = new Map();
    this.all = [];
    for (const ep of def.endpoints) {
      const st = old.get(ep.key);
      if (st !== undefined && !this.states.has(ep.key)) {
        st.endpoint = ep;
        st.weight = ep.weight > 0 ? ep.weight : 1;
        this.states.set(ep.key, st);
        this.all.push(st);
      } else {
        // New endpoint: its warmup starts at the next `now` the runtime sees (update() has no clock).
        this.addState(ep, NaN);
        setChanged = true;
      }
    }
    this.detector.setHosts(this.all);
    // Tables are rebuilt lazily at the next call that carries `now`, and only when something changed.
    // Same keys and weights: the balancer keeps its tables (the states already point at the new Endpoints).
    if (setChanged) this.nextCheckAt = -Infinity;
  }

  /** Slow path, at most once per due time: stamp first-seen, run outlier sweeps, refresh warmup weights. */
  private check(now: number): void {
    this.lastNow = now;
    let rebuild = this.nextCheckAt === -Infinity;
    for (const st of this.all) {
      if (Number.isNaN(st.firstSeen)) {
        st.firstSeen = now;
        st.rttAt = now;
      }
    }
    if (this.detector.tick(now)) rebuild = true;
    if (now >= this.nextWarmupAt) rebuild = true;
    if (rebuild) this.rebuild(now);
    else this.nextCheckAt = Math.min(this.detector.nextDueAt, this.nextWarmupAt);
  }

  /** Recompute effective weights and the set the balancer sees (healthy hosts, or all of them in panic). */
  private rebuild(now: number): void {
    const lbp = this.def.policy.lb;
    const warmupMs = supportsSlowStart(lbp) ? lbp.warmupMs : 0;
    let warming = false;
    for (const st of this.all) {
      const w = st.endpoint.weight > 0 ? st.endpoint.weight : 1;
      const age = now - st.firstSeen;
      if (warmupMs > 0 && age < warmupMs) {
        warming = true;
        st.weight = w * slowStartFactor(age, warmupMs, lbp.warmupMinPercent, lbp.warmupAggression);
      } else {
        st.weight = w;
      }
    }
    this.panicMode = this.detector.panic();
    const hosts = this.panicMode || this.detector.ejectionsActive === 0 ? this.all : this.all.filter((s) => !s.ejected);
    this.lb = createLoadBalancer(lbp, hosts, this.rand);
    this.nextWarmupAt = warming ? now + Math.max(50, Math.min(WARMUP_REFRESH_MS, warmupMs / 20)) : Infinity;
    this.nextCheckAt = Math.min(this.detector.nextDueAt, this.nextWarmupAt);
  }

  pick(input: PickInput, now: number): Endpoint | undefined {
    if (now >= this.nextCheckAt) this.check(now);
    const h = this.lb.pick(input.hashKey, this.ignoreExclude ? undefined : input.exclude, now);
    return h === undefined ? undefined : h.endpoint;
  }

  admit(): AdmitResult {
    return this.limits.admit();
  }

  release(): void {
    this.limits.release();
  }

  admitConnection(): boolean {
    return this.limits.admitConnection();
  }

  releaseConnection(): void {
    this.limits.releaseConnection();
  }

  tryStartRetry(budgeted = true): boolean {
    return this.limits.tryStartRetry(budgeted);
  }

  endRetry(budgeted = true): void {
    this.limits.endRetry(budgeted);
  }

  retryToken(now: number): boolean {
    return this.limits.retryToken(now);
  }

  attemptStarted(ep: Endpoint, _now: number): void {
    const st = this.states.get(ep.key);
    if (st === undefined) return;
    st.active++;
    st.total++;
  }

  attemptFinished(ep: Endpoint, outcome: AttemptOutcome, latencyMs: number, now: number): void {
    const st = this.states.get(ep.key);
    if (st === undefined) return; // endpoint removed meanwhile: its state is gone
    if (st.active > 0) st.active--;
    const isResponse = outcome.kind === 'response';
    if (isResponse && outcome.status < 500) st.success++;
    else st.error++;
    if (this.def.policy.lb.peakEwma === true) {
      // Failures only ever raise the estimate: a host that fails fast must not look fast.
      if (isResponse || latencyMs > st.rttMs) observeRtt(st, latencyMs, now);
    }
    if (!this.detector.enabled) return;
    if (now >= this.nextCheckAt) this.check(now);
    if (this.detector.report(st, outcome, now)) this.rebuild(now);
  }

  view(now: number): ClusterView {
    if (now >= this.nextCheckAt) this.check(now);
    const endpoints: EndpointView[] = this.all.map((st) => {
      const ep = st.endpoint;
      const v: EndpointView = {
        key: ep.key,
        address: ep.address,
        port: ep.port,
        weight: ep.weight,
        labels: ep.labels,
        healthy: !st.ejected,
        healthFlags: st.ejected ? ['failed_outlier_check'] : [],
        ejections: st.ejections,
        activeRequests: st.active,
        totalRequests: st.total,
        successRequests: st.success,
        errorRequests: st.error,
      };
      if (st.ejected) v.ejectedUntil = st.ejectedAt + this.detector.ejectionDurationMs(st);
      return v;
    });
    return {
      name: this.def.name,
      activeRequests: this.limits.active,
      pendingRequests: this.limits.pending,
      activeRetries: this.limits.activeRetries,
      ejectionsActive: this.detector.ejectionsActive,
      endpoints,
    };
  }

  /** Extra counters for metrics (not in the model interface). */
  stats(): ClusterStats {
    return {
      rqOverflow: this.limits.rqOverflow,
      pendingOverflow: this.limits.pendingOverflow,
      retryOverflow: this.limits.retryOverflow,
      retryBudgetExhausted: this.limits.retryBudgetExhausted,
      ejectionsTotal: this.detector.ejectionsTotal,
      ejectionsOverflow: this.detector.ejectionsOverflow,
      panic: this.panicMode,
    };
  }
}

export interface ClusterStats {
  rqOverflow: number;
  pendingOverflow: number;
  retryOverflow: number;
  retryBudgetExhausted: number;
  ejectionsTotal: number;
  ejectionsOverflow: number;
  /** Healthy share below minHealthPercent: the balancer is using ejected hosts too. */
  panic: boolean;
}

/**
 * Envoy's slow-start factor: max(minPercent/100, (max(ageSeconds, 1) / windowSeconds)^(1/aggression)).
 * Applied to ROUND_ROBIN and LEAST_REQUEST only, as Envoy.
 */
export function slowStartFactor(ageMs: number, windowMs: number, minPercent: number, aggression: number): number {
  if (ageMs >= windowMs) return 1;
  const timeFactor = Math.max(ageMs / 1000, 1) / (windowMs / 1000);
  const a = aggression > 0 ? aggression : 1;
  return Math.min(1, Math.max(minPercent / 100, Math.pow(timeFactor, 1 / a)));
}

export function createClusterRuntime(def: ClusterDef, rand: Rand, now: number): ClusterRuntime & { stats(): ClusterStats } {
  return new ClusterRuntimeImpl(def, rand, now);
}
