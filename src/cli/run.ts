/** `remora run`: the sidecar. Prints `remora ready {json}` on stdout once listeners are bound and config is loaded. */
import { tuneForServing } from '../util/v8-tuning.js';
import { dropStartupPages } from '../util/resident.js';
import { setHeapShrink } from '../util/heap-shrink.js';
import { readFileSync } from 'node:fs';
import { Sidecar } from '../app.js';
import type { RunOptions } from '../run-options.js';
import { VERSION } from '../version.js';
import { parseWithEnv, portValue, parseLabels, stringList, type OptionSpec } from './options.js';
import { isLevel } from '../util/logger.js';
import { parseDurationMs } from '../config/duration.js';
import { availableParallelism, hostname } from 'node:os';
import { PATH_NORMALIZATIONS, type PathNormalization } from '../routing/request-target.js';
import { UNDERSCORE_ACTIONS, type UnderscoreAction } from '../proxy/headers.js';

const OPTIONS: OptionSpec = {
  config: { type: 'string', multiple: true, short: 'c' },
  kubernetes: { type: 'boolean' },
  kubeconfig: { type: 'string' },
  'gateway-status': { type: 'boolean' },
  'gateway-status-namespace': { type: 'string' },
  'gateway-status-lease-duration': { type: 'string' },
  'watch-namespaces': { type: 'string', multiple: true },
  'env-discovery': { type: 'boolean' },
  connect: { type: 'boolean' },
  'resolv-conf': { type: 'string' },
  'exit-on-app-exit': { type: 'boolean' },
  'exit-on-app-exit-seconds': { type: 'string' },
  namespace: { type: 'string' },
  'cluster-domain': { type: 'string' },
  'outbound-port': { type: 'string' },
  'inbound-port': { type: 'string' },
  'app-port': { type: 'string', multiple: true },
  'admin-port': { type: 'string' },
  'stats-port': { type: 'string' },
  'health-port': { type: 'string' },
  labels: { type: 'string' },
  'labels-file': { type: 'string' },
  'outbound-traffic-policy': { type: 'string' },
  'access-log': { type: 'string' },
  'access-log-format': { type: 'string' },
  'trace-endpoint': { type: 'string' },
  'trace-sampling': { type: 'string' },
  concurrency: { type: 'string' },
  'drain-seconds': { type: 'string' },
  'log-level': { type: 'string' },
  'retry-buffer-bytes': { type: 'string' },
  'mirror-body-bytes': { type: 'string' },
  'outbound-address': { type: 'string' },
  'inbound-address': { type: 'string' },
  'protocol-detection-timeout': { type: 'string' },
  'tunnel-idle-timeout': { type: 'string' },
  'path-normalization': { type: 'string' },
  'headers-with-underscores': { type: 'string' },
  'request-headers-timeout': { type: 'string' },
  'stream-idle-timeout': { type: 'string' },
  'max-connections': { type: 'string' },
  'cert-dir': { type: 'string' },
  // TRUST (#23): identities and tokens.
  'trust-domain-aliases': { type: 'string', multiple: true },
  'jwks-allow-http': { type: 'string', multiple: true },
  'capture-mode': { type: 'string' },
  workload: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const HELP = `usage: remora run --config PATH [PATH…] [options]

  -c, --config PATH              Istio YAML file or directory (repeatable; watched and hot-reloaded)
      --kubernetes               also watch the API server (Services, EndpointSlices, Pods, Istio CRDs)
      --kubeconfig FILE          default $KUBECONFIG, else the in-cluster service account
      --watch-namespaces NS,…    watch only these namespaces (default: all)
      --gateway-status           with --kubernetes: stand for the Gateway API route status writer; one process of
                                 the cluster writes status.parents, elected through the Lease
                                 remora-gateway-status (enable it on a few pods, not on every sidecar)
      --gateway-status-namespace NS  where that Lease lives (default: --namespace)
      --gateway-status-lease-duration D  how long a silent writer keeps the Lease before another takes over
                                 (default 15s, client-go's; renewed every third of it)
      --env-discovery            Services from *_SERVICE_HOST/_PORT variables become hosts (start-time only)
      --exit-on-app-exit         exit once the app's port stopped listening for 3 s (Jobs)
      --resolv-conf FILE         resolver search path for short names (default /etc/resolv.conf; "" = none)
      --namespace NS             this workload's namespace (default $POD_NAMESPACE or "default")
      --cluster-domain D         default cluster.local
      --outbound-port N          default 15001 (0 = any free port)
      --inbound-port N           default 15006
      --app-port N[,N…]          the app's port(s) for inbound traffic (no inbound listener without it)
      --admin-port N             default 15000 (bound to 127.0.0.1)
      --stats-port N             default 15090 (/stats/prometheus)
      --health-port N            default 15021 (/healthz/ready)
      --labels k=v,…             this workload's labels (VirtualService sourceLabels, metrics)
      --labels-file FILE         labels in Kubernetes downward-API format (k="v" per line)
      --outbound-traffic-policy  ALLOW_ANY (default) | REGISTRY_ONLY
      --access-log               off (default) | stdout | PATH
      --access-log-format        text (Istio's default) | json | an Envoy %COMMAND% format string
      --trace-endpoint URL       OTLP/HTTP endpoint for spans
      --trace-sampling PERCENT   default 1
      --drain-seconds N          default 5
      --concurrency N            worker processes sharing the proxy ports (default 1; 0 = one per CPU)
      --retry-buffer-bytes N     largest request body kept for retries (default 65536)
      --mirror-body-bytes N      largest request body a mirror (shadow) request carries; a larger request is
                                 not mirrored, counted in retry_or_shadow_abandoned (default: --retry-buffer-bytes;
                                 Envoy has one buffer limit for retries and shadows)
      --protocol-detection-timeout D  captured connections of unknown protocol whose client is silent this
                                 long are TCP (server speaks first); default 100ms (Istio's)
      --connect                  HTTP CONNECT host:port on the outbound port opens a TCP tunnel, routed as a
                                 captured connection to that host and port (tcp[] routes, the service's
                                 cluster, passthrough); default off: CONNECT is answered 405
      --tunnel-idle-timeout D    upgraded connections (WebSocket) with no byte either way for this long are
                                 closed; default 1h (Envoy's stream idle timeout); 0 = never
      --path-normalization M     none | base (default, Istio's) | merge-slashes | decode-and-merge-slashes:
                                 how request paths are normalized before routing and policy (Istio MeshConfig
                                 pathNormalization); the upstream receives the path the route matched
      --headers-with-underscores A  allow (default, Envoy's and Istio's) | drop | reject: request header names
                                 with "_" (Envoy headers_with_underscores_action; reject = 400 + close)
      --request-headers-timeout D  a request head must be complete this long after its first byte, else
                                 408 + close; on HTTP/2, a header block (HEADERS + CONTINUATION), else the
                                 connection closes with GOAWAY (slowloris; Envoy request_headers_timeout);
                                 default 30s
      --max-connections N        open downstream connections per proxy listener (outbound, inbound; per worker
                                 with --concurrency); past it new ones are closed at accept and counted, which
                                 keeps file descriptors for upstreams, admin and config under a flood (Envoy
                                 max_active_downstream_connections); default 0 = no limit, as Istio
      --stream-idle-timeout D    a request (HTTP/1) or stream (HTTP/2) with no byte moving either way (its body,
                                 its response, an upstream that says nothing) for this long ends: 408 if
                                 unanswered (HTTP/1: + close), else a reset (HTTP/2: RST_STREAM) (slow POST,
                                 slow read; Envoy stream_idle_timeout); default 5m, 0 = never
      --cert-dir DIR             the workload certificate (tls.crt, tls.key, ca.crt as cert-manager writes them,
                                 or Istio's cert-chain.pem, key.pem, root-cert.pem), hot-rotated: mutual TLS
                                 with other sidecars (PeerAuthentication inbound, ISTIO_MUTUAL and auto mTLS
                                 outbound); not ready without a valid certificate
      --trust-domain-aliases TD,…  other trust domains whose SPIFFE identities are this mesh's (Istio meshConfig
                                 trustDomainAliases, e.g. during a trust domain migration): accepted from peers
                                 and in expected server identities
      --jwks-allow-http ISSUER,…  RequestAuthentication issuers whose keys may be fetched over plain http (a test
                                 issuer); every other jwksUri and OpenID discovery must be https
      --capture-mode M           none (default: explicit mode, peers dial the inbound port, served as HTTP for
                                 --app-port) | redirect (iptables redirects every inbound connection, as
                                 \`remora inject\` sets up: a connection addressed to the inbound port itself was not
                                 redirected and is refused, as Envoy's virtualInbound blackhole chain does)
      --log-level L              debug | info | warn | error (default info)
Every flag can also be set as REMORA_<FLAG>, e.g. REMORA_OUTBOUND_PORT=15001.
`;

function readLabelsFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([^=]+)="(.*)"$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/\\"/g, '"');
  }
  return out;
}

export function runOptionsFrom(argv: string[], env: NodeJS.ProcessEnv = process.env): RunOptions | 'help' {
  const { values: v, positionals } = parseWithEnv(argv, OPTIONS, env);
  if (v.help) return 'help';
  const configPaths = [...stringList(v.config), ...positionals];
  if (configPaths.length === 0 && !v.kubernetes) throw new Error('--config PATH is required (a file or a directory of Istio YAML)');
  const policy = String(v['outbound-traffic-policy'] ?? 'ALLOW_ANY').toUpperCase();
  if (policy !== 'ALLOW_ANY' && policy !== 'REGISTRY_ONLY') throw new Error(`--outbound-traffic-policy must be ALLOW_ANY or REGISTRY_ONLY, not ${policy}`);
  const level = String(v['log-level'] ?? 'info');
  if (!isLevel(level)) throw new Error(`--log-level: unknown level ${level}`);
  const labels = { ...(v['labels-file'] ? readLabelsFile(String(v['labels-file'])) : {}), ...parseLabels(v.labels as string | undefined) };
  const sampling = Number(v['trace-sampling'] ?? 1);
  if (!(sampling >= 0 && sampling <= 100)) throw new Error('--trace-sampling must be a percentage 0-100');
  const drain = Number(v['drain-seconds'] ?? 5);
  if (!(drain >= 0)) throw new Error('--drain-seconds must be ≥ 0');
  const retryBuf = Number(v['retry-buffer-bytes'] ?? 65536);
  if (!Number.isInteger(retryBuf) || retryBuf < 0) throw new Error('--retry-buffer-bytes must be a whole number of bytes');
  const mirrorBody = v['mirror-body-bytes'] === undefined ? undefined : Number(v['mirror-body-bytes']);
  if (mirrorBody !== undefined && (!Number.isInteger(mirrorBody) || mirrorBody < 0)) throw new Error('--mirror-body-bytes must be a whole number of bytes');
  // Durations: a number of ms or 100ms/30s/5m; `zero` says whether 0 (never) is allowed.
  const duration = (flag: string, def: string, example: string, zero: boolean): number => {
    const raw = String(v[flag] ?? def);
    const ms = /^\d+$/.test(raw) ? Number(raw) : parseDurationMs(raw);
    if (ms === undefined || (!zero && ms < 1)) throw new Error(`--${flag} must be a duration such as ${example}${zero ? ' (0 = never)' : ''}, not ${raw}`);
    return ms;
  };
  const sniffMs = duration('protocol-detection-timeout', '100ms', '100ms or 1s', false);
  const tunnelIdleMs = duration('tunnel-idle-timeout', '1h', '30m or 1h', true);
  const headersTimeoutMs = duration('request-headers-timeout', '30s', '10s or 30s', false);
  const streamIdleMs = duration('stream-idle-timeout', '5m', '30s or 5m', true);
  const appPorts = stringList(v['app-port']).map((p) => portValue(p, 'app-port', 0));
  const pathNorm = String(v['path-normalization'] ?? 'base').toLowerCase().replace(/_/g, '-');
  if (!(PATH_NORMALIZATIONS as readonly string[]).includes(pathNorm)) throw new Error(`--path-normalization must be one of ${PATH_NORMALIZATIONS.join(', ')}, not ${String(v['path-normalization'])}`);
  const underscores = String(v['headers-with-underscores'] ?? 'allow').toLowerCase();
  if (!(UNDERSCORE_ACTIONS as readonly string[]).includes(underscores)) throw new Error(`--headers-with-underscores must be one of ${UNDERSCORE_ACTIONS.join(', ')}, not ${underscores}`);
  const opts: RunOptions = {
    configPaths,
    namespace: String(v.namespace ?? env.POD_NAMESPACE ?? 'default'),
    clusterDomain: String(v['cluster-domain'] ?? 'cluster.local'),
    outboundPort: portValue(v['outbound-port'], 'outbound-port', 15001),
    inboundPort: portValue(v['inbound-port'], 'inbound-port', 15006),
    appPorts,
    adminPort: portValue(v['admin-port'], 'admin-port', 15000),
    statsPort: portValue(v['stats-port'], 'stats-port', 15090),
    healthPort: portValue(v['health-port'], 'health-port', 15021),
    labels,
    outboundTrafficPolicy: policy,
    accessLog: String(v['access-log'] ?? 'off'),
    accessLogFormat: String(v['access-log-format'] ?? 'text'),
    traceSampling: sampling,
    drainSeconds: drain,
    logLevel: level,
    retryBufferBytes: retryBuf,
    ...(mirrorBody !== undefined ? { mirrorBodyBytes: mirrorBody } : {}),
    outboundAddress: String(v['outbound-address'] ?? '127.0.0.1'),
    inboundAddress: String(v['inbound-address'] ?? '0.0.0.0'),
    protocolDetectionTimeoutMs: sniffMs,
    tunnelIdleTimeoutMs: tunnelIdleMs,
    pathNormalization: pathNorm as PathNormalization,
    headersWithUnderscores: underscores as UnderscoreAction,
    requestHeadersTimeoutMs: headersTimeoutMs,
    streamIdleTimeoutMs: streamIdleMs,
    workloadName: String(v.workload ?? env.POD_NAME?.replace(/-[a-z0-9]+-[a-z0-9]+$/, '') ?? labels.app ?? 'unknown'),
  };
  if (v['trace-endpoint']) opts.traceEndpoint = String(v['trace-endpoint']);
  if (v['cert-dir']) opts.certDir = String(v['cert-dir']);
  const aliases = stringList(v['trust-domain-aliases']);
  for (const td of aliases) if (!/^[a-z0-9.-]+$/i.test(td)) throw new Error(`--trust-domain-aliases: "${td}" is not a trust domain (letters, digits, dots, dashes)`);
  if (aliases.length > 0) opts.trustDomainAliases = aliases;
  const httpIssuers = stringList(v['jwks-allow-http']);
  if (httpIssuers.length > 0) opts.jwksAllowHttp = httpIssuers;
  const captureMode = String(v['capture-mode'] ?? 'none').toLowerCase();
  if (captureMode !== 'none' && captureMode !== 'redirect') throw new Error(`--capture-mode must be none or redirect, not ${captureMode}`);
  if (captureMode === 'redirect') opts.captureMode = true;
  if (v.kubernetes) {
    const kenv = { KUBECONFIG: env.KUBECONFIG, KUBERNETES_SERVICE_HOST: env.KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT: env.KUBERNETES_SERVICE_PORT, HOME: env.HOME };
    opts.kubernetes = { namespaces: stringList(v['watch-namespaces']), env: Object.fromEntries(Object.entries(kenv).filter(([, x]) => x !== undefined)) };
    if (v.kubeconfig) opts.kubernetes.kubeconfig = String(v.kubeconfig);
    if (v['gateway-status']) {
      opts.kubernetes.gatewayStatus = {
        identity: `${env.POD_NAME ?? hostname()}_${process.pid}`,
        leaseNamespace: String(v['gateway-status-namespace'] ?? opts.namespace),
        leaseDurationMs: duration('gateway-status-lease-duration', '15s', '15s or 30s', false),
      };
    }
  }
  if (v['env-discovery']) opts.envDiscovery = true;
  if (v.connect) opts.connect = true;
  if (v['resolv-conf'] !== undefined) opts.resolvConf = String(v['resolv-conf']);
  if (v['exit-on-app-exit'] || v['exit-on-app-exit-seconds']) opts.exitOnAppExitSeconds = Number(v['exit-on-app-exit-seconds'] ?? 3);
  if (env.REMORA_APP_PROBERS) opts.appProbers = env.REMORA_APP_PROBERS;
  if (env.POD_NAME) opts.podName = env.POD_NAME;
  if (env.REMORA_CREDENTIALS_DIR !== undefined) opts.credentialsDir = env.REMORA_CREDENTIALS_DIR;
  if (env.REMORA_ORIGINAL_DST !== undefined) opts.originalDst = env.REMORA_ORIGINAL_DST;
  if (env.REMORA_CLUSTER_SCHED !== undefined) opts.clusterSched = env.REMORA_CLUSTER_SCHED;
  // Envoy's --concurrency: worker event loops; 0 = one per CPU (Envoy: hardware threads). Default 1 = no cluster, no IPC.
  const conc = Number(v.concurrency ?? 1);
  if (!Number.isInteger(conc) || conc < 0) throw new Error('--concurrency must be a whole number ≥ 0 (0 = one worker per CPU)');
  opts.concurrency = conc === 0 ? availableParallelism() : conc;
  const maxConns = Number(v['max-connections'] ?? 0);
  if (!Number.isInteger(maxConns) || maxConns < 0) throw new Error('--max-connections must be a whole number ≥ 0 (0 = no limit)');
  if (maxConns > 0) opts.maxConnections = maxConns;
  return opts;
}

export async function main(argv: string[]): Promise<number> {
  let opts: RunOptions | 'help';
  try {
    opts = runOptionsFrom(argv);
  } catch (err) {
    process.stderr.write(`remora run: ${(err as Error).message}\n`);
    return 2;
  }
  if (opts === 'help') { process.stdout.write(HELP); return 0; }
  const t0 = performance.now();
  // The heap shrink after config churn (src/util/heap-shrink.ts); REMORA_HEAP_SHRINK=0 turns it off (workers too).
  if (process.env.REMORA_HEAP_SHRINK === '0') setHeapShrink(false);
  // The primary forks workers with REMORA_WORKER_ID; node:cluster (≈3 ms to load) is only loaded then, so
  // --concurrency 1 starts exactly as before.
  if (process.env.REMORA_WORKER_ID !== undefined && (await import('node:cluster')).default.isWorker) return (await import('../cluster/worker.js')).runWorker(opts, process.env);
  if ((opts.concurrency ?? 1) > 1) return (await import('../cluster/primary.js')).runPrimary(opts, opts.concurrency!, t0);
  const sidecar = new Sidecar(opts, process.env);
  try {
    await sidecar.start();
  } catch (err) {
    const e = err as Error & { configErrors?: string[]; code?: string };
    if (e.configErrors) process.stderr.write(`remora run: invalid configuration, not starting:\n${e.configErrors.join('\n')}\n`);
    else process.stderr.write(`remora run: ${e.message}\n`);
    await sidecar.stop().catch(() => {});
    return 1;
  }
  tuneForServing();
  // The binary's pages only start-up used leave the resident set (src/util/resident.ts); REMORA_KEEP_STARTUP_PAGES=1 keeps them.
  if (process.env.REMORA_KEEP_STARTUP_PAGES !== '1') dropStartupPages();
  const ready = {
    outbound: sidecar.port('outbound'), inbound: sidecar.port('inbound'), admin: sidecar.port('admin'),
    stats: sidecar.port('stats'), health: sidecar.port('health'),
    version: VERSION, config: sidecar.store.current?.version, hash: sidecar.store.current?.hash,
    pid: process.pid, startupMs: Math.round(performance.now() - t0),
    // Of startupMs, the first config build: read + parse, validate, hash, compile, apply (ms; ConfigStore.BuildTimings).
    configMs: sidecar.store.lastBuild ?? null,
  };
  process.stdout.write(`remora ready ${JSON.stringify(ready)}\n`);
  return new Promise<number>((resolve) => {
    sidecar.onExit = (code) => {
      resolve(code);
      // Everything is closed and flushed; do not wait for stray handles (watch streams, keep-alive sockets).
      setTimeout(() => process.exit(code), 50).unref();
    };
    const onSignal = (sig: string): void => { void sidecar.shutdown(sig); };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
}
