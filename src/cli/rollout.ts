/**
 * `remora rollout [run|status|abort|promote] --vs NAME …`: weighted canary rollouts of a VirtualService, step by
 * step, checked against the sidecars' own metrics (docs/rollouts.md). Exit codes: 0 promoted, 1 rolled back or
 * aborted, 2 usage/config error, 3 stopped by a signal (the state stays: the same command resumes).
 */
import { resolve } from 'node:path';
import { buildPlan, parseDuration, parseHeaderMatch, parseLatency, parsePercent, parseSteps } from '../rollout/plan.js';
import { PrometheusSource, StatsSource, serviceFqdn, type MetricSource, type Selector } from '../rollout/metrics-source.js';
import { FileTarget, KubeTarget, resolveVsFile, type KubeObjectApi, type RolloutKind, type Target } from '../rollout/target.js';
import { command, newOwner, Rollout, RolloutError, type RolloutOptions } from '../rollout/controller.js';
import { formatEvent, formatStatus } from '../rollout/view.js';
import { parseWithEnv } from './options.js';
import { clientNodeKubeConfig, KubeconfigError } from '../discovery/kubeconfig.js';

const USAGE = `usage: remora rollout [run] --vs NAME --stable SUBSET --canary SUBSET (--config FILE | --kube) [options]
       remora rollout [run] --httproute NAME | --grpcroute NAME --stable SERVICE --canary SERVICE (--config FILE | --kube) [options]
       remora rollout status|abort|promote --vs|--httproute|--grpcroute NAME (--config FILE | --kube) [--namespace NS]

Moves the VirtualService's weights from the stable to the canary subset step by step (an HTTPRoute's or
GRPCRoute's backendRef weights from the stable to the canary Service); before each step it compares canary against
stable over one interval, and rolls back to 0 % canary at once on a breach.

where the VirtualService (HTTPRoute, GRPCRoute) is
  --config FILE|DIR        the YAML file holding it, or the sidecars' config directory to find it in
                           (edited in place; comments and layout kept)
  --kube                   the Kubernetes API (kubeconfig, KUBECONFIG or in-cluster; server-side apply)
  --kubeconfig PATH        with --kube
  --namespace NS           its namespace (default: default)
  --host HOST              the destination host of the route, when several routes use the subsets

the plan
  --steps 5,10,25,50,100   canary weights (Argo Rollouts' setWeight steps); 100 is the promotion
  --step-weight N --max-weight M   Flagger's stepWeight/maxWeight instead (default 10 and 50, then 100)
  --mirror P               dark launch: first one interval with P % of the requests mirrored to the canary
  --header-canary 'x-canary: true'  requests with this header go to the canary during the rollout
  --interval 1m            analysis interval (time at each step before its check)

the checks (canary, over each interval)
  --max-error-rate 1%      failures (5xx, or any response flag) above this fail the check
  --max-p99 300ms          p99 latency above this fails the check
  --min-requests 100       fewer canary requests: the step holds (no promotion on too little traffic)
  --threshold 1            failed checks in a row before the rollback (Flagger's threshold)
  --max-holds 5            checks in a row without enough traffic before giving up (rolled back)

the metrics
  --prometheus URL         a Prometheus server (PromQL over istio_requests_total and
                           istio_request_duration_milliseconds_bucket by destination_version)
  --stats URL[,URL]        sidecars' /stats/prometheus, scraped at both ends of each interval
                           (default http://127.0.0.1:15090/stats/prometheus)
  --reporter source        which sidecars' reports count: source (callers), destination (servers) or any
  --window DURATION        Prometheus range of the queries (default: the interval)
  --canary-app NAME        destination_app of the canary's workload, for a --mirror step (default: the
                           host's short name); its own sidecar's metrics must be scraped (or in Prometheus)
  --cluster-domain D       for the destination_service FQDN (default cluster.local)

exit codes: 0 promoted, 1 rolled back or aborted, 2 usage or config error, 3 stopped (resume with the same command)
`;

const OPTIONS = {
  vs: { type: 'string' },
  httproute: { type: 'string' },
  grpcroute: { type: 'string' },
  'virtual-service': { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  host: { type: 'string' },
  stable: { type: 'string' },
  canary: { type: 'string' },
  steps: { type: 'string' },
  'step-weight': { type: 'string' },
  'max-weight': { type: 'string' },
  mirror: { type: 'string' },
  'header-canary': { type: 'string' },
  interval: { type: 'string' },
  window: { type: 'string' },
  'max-error-rate': { type: 'string' },
  'max-p99': { type: 'string' },
  'min-requests': { type: 'string' },
  threshold: { type: 'string' },
  'max-holds': { type: 'string' },
  config: { type: 'string', short: 'c' },
  kube: { type: 'boolean' },
  kubeconfig: { type: 'string' },
  'api-version': { type: 'string' },
  prometheus: { type: 'string' },
  stats: { type: 'string' },
  reporter: { type: 'string' },
  'canary-app': { type: 'string' },
  'cluster-domain': { type: 'string' },
  reason: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function int(v: unknown, flag: string, dflt: number, min = 0): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new RolloutError(`--${flag}: "${String(v)}" is not an integer >= ${min}`);
  return n;
}

function statsUrl(u: string): string {
  const url = /^https?:\/\//.test(u) ? u : `http://${u}`;
  return new URL(url).pathname === '/' ? `${url.replace(/\/$/, '')}/stats/prometheus` : url;
}

async function kubeTarget(values: Record<string, unknown>, name: string, ns: string, kind: RolloutKind): Promise<Target> {
  const k8s = await import('@kubernetes/client-node');
  const path = (values.kubeconfig as string | undefined) || undefined;
  let kc: import('@kubernetes/client-node').KubeConfig;
  try {
    kc = await clientNodeKubeConfig(path, { KUBECONFIG: process.env.KUBECONFIG, KUBERNETES_SERVICE_HOST: process.env.KUBERNETES_SERVICE_HOST });
  } catch (err) {
    if (err instanceof KubeconfigError) throw new RolloutError(err.message);
    throw err;
  }
  const api = k8s.KubernetesObjectApi.makeApiClient(kc) as unknown as KubeObjectApi;
  const apiVersion = (values['api-version'] as string | undefined) ?? (kind === 'VirtualService' ? 'networking.istio.io/v1' : 'gateway.networking.k8s.io/v1');
  return new KubeTarget(api, name, ns, apiVersion, kind);
}

export async function main(argv: string[]): Promise<number> {
  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseWithEnv(argv, OPTIONS));
  } catch (err) {
    process.stderr.write(`remora rollout: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const sub = positionals[0] ?? 'run';
  if (!['run', 'status', 'abort', 'promote'].includes(sub) || positionals.length > 1) {
    process.stderr.write(`remora rollout: unknown subcommand "${positionals.join(' ')}"\n\n${USAGE}`);
    return 2;
  }
  const out = (s: string): void => { process.stdout.write(s); };
  try {
    const named = [['VirtualService', values.vs ?? values['virtual-service']], ['HTTPRoute', values.httproute], ['GRPCRoute', values.grpcroute]].filter(([, v]) => v !== undefined);
    if (named.length === 0) throw new RolloutError('--vs NAME (or --httproute NAME, --grpcroute NAME) is required');
    if (named.length > 1) throw new RolloutError('give one of --vs, --httproute and --grpcroute');
    const kind = named[0]![0] as RolloutKind;
    const name = String(named[0]![1]);
    const ns = (values.namespace as string | undefined) ?? process.env.POD_NAMESPACE ?? 'default';
    if (values.config !== undefined && values.kube) throw new RolloutError('give --config FILE or --kube, not both');
    let target: Target;
    if (values.config !== undefined) {
      let file: string;
      try {
        file = resolveVsFile(resolve(String(values.config)), name, ns, kind);
      } catch (err) {
        throw new RolloutError((err as Error).message);
      }
      target = new FileTarget(file, name, ns, ns, kind);
    }
    else if (values.kube) target = await kubeTarget(values, name, ns, kind);
    else throw new RolloutError(`where is the ${kind}? --config FILE or --kube`);

    if (sub === 'status') {
      const l = await target.read();
      if (!l.state) {
        out(values.json ? 'null\n' : `no rollout recorded on ${kind} ${ns}/${name}\n`);
        return 0;
      }
      out(values.json ? `${JSON.stringify(l.state, null, 2)}\n` : formatStatus(l.state, Date.now()));
      return 0;
    }
    if (sub === 'abort' || sub === 'promote') {
      const s = await command(target, sub, newOwner(), values.reason as string | undefined);
      out(formatStatus(s, Date.now()));
      return s.phase === 'Promoted' ? 0 : 1;
    }

    // run
    const stable = values.stable as string | undefined;
    const canary = values.canary as string | undefined;
    if (!stable || !canary) throw new RolloutError(kind === 'VirtualService' ? '--stable SUBSET and --canary SUBSET are required' : '--stable SERVICE and --canary SERVICE (backendRef names) are required');
    if (stable === canary) throw new RolloutError('--stable and --canary must differ');
    const plan = (() => {
      try {
        return buildPlan({
          ...(values.steps !== undefined ? { steps: parseSteps(String(values.steps)) } : {}),
          ...(values['step-weight'] !== undefined ? { stepWeight: int(values['step-weight'], 'step-weight', 10, 1) } : {}),
          ...(values['max-weight'] !== undefined ? { maxWeight: int(values['max-weight'], 'max-weight', 50, 1) } : {}),
          ...(values.mirror !== undefined ? { mirrorPercent: parsePercent(String(values.mirror), 'mirror') * 100 } : {}),
        });
      } catch (err) {
        throw new RolloutError((err as Error).message);
      }
    })();
    const wrap = <T>(f: () => T): T => { try { return f(); } catch (err) { throw new RolloutError((err as Error).message); } };
    const intervalMs = wrap(() => parseDuration(String(values.interval ?? '1m'), 'interval'));
    if (intervalMs < 500) throw new RolloutError('--interval: at least 500ms');
    const opts: RolloutOptions = {
      virtualService: name, namespace: ns, stable, canary, steps: plan, intervalMs,
      criteria: {
        maxErrorRate: wrap(() => parsePercent(String(values['max-error-rate'] ?? '1%'), 'max-error-rate')),
        minRequests: int(values['min-requests'], 'min-requests', 100),
        ...(values['max-p99'] !== undefined ? { maxP99Ms: wrap(() => parseLatency(String(values['max-p99']), 'max-p99')) } : {}),
      },
      threshold: int(values.threshold, 'threshold', 1, 1),
      maxHolds: int(values['max-holds'], 'max-holds', 5, 1),
    };
    if (values.host !== undefined) opts.host = String(values.host);
    if (values.window !== undefined) opts.windowMs = wrap(() => parseDuration(String(values.window), 'window'));
    if (values['header-canary'] !== undefined) opts.headerCanary = wrap(() => parseHeaderMatch(String(values['header-canary'])));
    const reporter = String(values.reporter ?? 'source');
    if (reporter !== 'source' && reporter !== 'destination' && reporter !== 'any') throw new RolloutError(`--reporter: "${reporter}" (source, destination or any)`);
    if (values.prometheus !== undefined && values.stats !== undefined) throw new RolloutError('give --prometheus or --stats, not both');

    // The service's FQDN for destination_service: the route's host as the VirtualService writes it.
    const loaded = await target.read();
    const ref = wrap(() => loaded.editor.findRoute(stable, canary, opts.host));
    const domain = String(values['cluster-domain'] ?? 'cluster.local');
    const routeNs = loaded.editor.namespace ?? ns;
    // A VirtualService's subsets of one service differ by destination_version; an HTTPRoute's or GRPCRoute's
    // stable and canary are two Services, told apart by destination_service.
    const sel: Selector = kind === 'VirtualService'
      ? { service: serviceFqdn(ref.host, routeNs, domain), stable, canary, reporter, app: String(values['canary-app'] ?? ref.host.split('.')[0]) }
      : { service: serviceFqdn(canary, routeNs, domain), stable, canary, reporter, app: String(values['canary-app'] ?? canary.split('.')[0]), services: { stable: serviceFqdn(stable, routeNs, domain), canary: serviceFqdn(canary, routeNs, domain) } };
    const source: MetricSource = values.prometheus !== undefined
      ? new PrometheusSource(String(values.prometheus), sel)
      : new StatsSource(String(values.stats ?? 'http://127.0.0.1:15090/stats/prometheus').split(',').map((s) => s.trim()).filter(Boolean).map(statsUrl), sel);

    const tty = process.stdout.isTTY === true;
    const rollout = new Rollout(target, source, undefined, (e) => out(formatEvent(e, tty)));
    out(`remora rollout: ${target.description}, ${stable} → ${canary} on ${sel.services ? `${sel.services.stable} → ${sel.services.canary}` : sel.service}, steps ${plan.map((s) => (s.mirrorPercent ? `mirror ${s.mirrorPercent}%` : s.canaryWeight)).join(', ')}, every ${intervalMs / 1000}s; metrics from ${source.description}\n`);
    const onSignal = (sig: string): void => rollout.stop(sig);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const r = await rollout.run(opts);
      return r.phase === 'Promoted' ? 0 : r.phase === 'Progressing' ? 3 : 1;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  } catch (err) {
    const code = err instanceof RolloutError ? err.exitCode : 2;
    process.stderr.write(`remora rollout: ${(err as Error).message}\n`);
    return code;
  }
}
