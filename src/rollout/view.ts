/** The terminal view of a rollout: one line per event (a TTY gets colour), and the `status` report. Pure. */
import type { SubsetStats } from './analysis.js';
import type { TickEvent } from './controller.js';
import type { RolloutState } from './state.js';

const pct = (x: number | null): string => (x === null ? '–' : `${(Math.round(x * 10000) / 100).toFixed(2)}%`);
const ms = (x: number | null): string => (x === null ? '–' : `${x < 10 ? x.toFixed(1) : Math.round(x)}ms`);
const count = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(0));

function subset(name: string, s: SubsetStats): string {
  return `${name} ok ${pct(s.successRate)} p99 ${ms(s.p99Ms)} n=${count(s.requests)}`;
}

export function weights(s: RolloutState): string {
  return `${s.stable}/${s.canary} ${100 - s.canaryWeight}/${s.canaryWeight}`;
}

const COLOURS: Record<string, string> = { advance: '32', promote: '32;1', hold: '33', rollback: '31;1', abort: '31;1', resume: '36', start: '36' };

/** `12:00:01 step 2/4 reviews v1/v2 75/25 | v1 ok 100.00% p99 4.2ms n=830 | v2 ok 99.70% p99 5.1ms n=277 | advance: checks passed, next weight 50%` */
export function formatEvent(e: TickEvent, tty = false): string {
  const s = e.state;
  const t = new Date(s.updatedAt).toISOString().slice(11, 19);
  // A check is shown at the step it checked (its weights and numbers); the decision says where it goes next.
  const at = e.check && s.lastCheck ? { stepIndex: s.lastCheck.stepIndex, canaryWeight: s.lastCheck.canaryWeight } : s;
  const parts = [`${t} step ${at.stepIndex + 1}/${s.steps.length}`, `${s.stable}/${s.canary} ${100 - at.canaryWeight}/${at.canaryWeight}`];
  const mirror = s.phase === 'Progressing' || e.check ? s.steps[at.stepIndex]?.mirrorPercent ?? 0 : 0;
  if (mirror > 0) parts[1] += ` mirror ${mirror}%`;
  if (e.check) parts.push(subset(s.stable, e.check.stable), subset(s.canary, e.check.canary));
  const word = e.action ?? e.kind;
  const decision = tty && COLOURS[word] ? `\x1b[${COLOURS[word]}m${word}\x1b[0m` : word;
  parts.push(`${decision}: ${e.message}`);
  return `${parts.join(' | ')}\n`;
}

export function formatStatus(s: RolloutState, now: number): string {
  const lines = [
    `rollout ${s.namespace}/${s.virtualService}${s.host ? ` (${s.host})` : ''}: ${s.phase}`,
    `  step ${s.stepIndex + 1}/${s.steps.length} (${s.steps.map((x) => (x.mirrorPercent ? `mirror ${x.mirrorPercent}%` : `${x.canaryWeight}`)).join(', ')}), weights ${weights(s)}`,
    `  ${s.message}`,
    `  interval ${s.intervalMs / 1000}s, max error rate ${pct(s.criteria.maxErrorRate)}, max p99 ${s.criteria.maxP99Ms === undefined ? '–' : `${s.criteria.maxP99Ms}ms`}, min requests ${s.criteria.minRequests}, threshold ${s.threshold}`,
  ];
  if (s.headerCanary) lines.push(`  header canary: ${s.headerCanary.name}: ${s.headerCanary.value} → ${s.canary}`);
  if (s.lastCheck) lines.push(`  last check ${s.lastCheck.at}: ${subset(s.stable, s.lastCheck.stable)} | ${subset(s.canary, s.lastCheck.canary)} → ${s.lastCheck.action}`);
  if (s.lock) {
    const age = Math.round((now - Date.parse(s.lock.heartbeatAt)) / 1000);
    lines.push(`  runner ${s.lock.owner}, last seen ${age} s ago${age * 1000 > s.lock.ttlMs ? ' (stale: a new run resumes it)' : ''}`);
  } else if (s.phase === 'Progressing') lines.push('  no runner: run the same `remora rollout` command to resume');
  lines.push(`  started ${s.startedAt}${s.finishedAt ? `, finished ${s.finishedAt}` : ''}`);
  return `${lines.join('\n')}\n`;
}
