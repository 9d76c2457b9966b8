/**
 * `remora run --kubernetes`: the API-server watch that feeds the config store and the inbound authorizer, and with
 * --gateway-status the Gateway API status writer. Both are imported on demand: most sidecars never watch the API
 * server nor write status.
 */
import type { ConfigStore } from './discovery/config-store.js';
import type { KubernetesSource } from './discovery/k8s-source.js';
import type { InboundAuthorizer } from './proxy/inbound-authz.js';
import type { RunOptions } from './run-options.js';
import type { Logger } from './util/logger.js';
import type { HeapShrinker } from './util/heap-shrink.js';

/** What the watch feeds, and where the sidecar keeps what is made (handed over before it starts, for stop()). */
export interface KubernetesWiring {
  readonly opts: RunOptions;
  readonly logger: Logger;
  readonly store: ConfigStore;
  readonly authz: InboundAuthorizer;
  /** The heap shrink after config churn, when on (app.ts). */
  readonly heapShrinker?: HeapShrinker | undefined;
  source(kube: KubernetesSource): void;
  statusWriter(writer: { stop(): Promise<void> }): void;
}

/** Start the watch (and the status writer); resolves with the watch once its first state is pushed. */
export async function startKubernetes(w: KubernetesWiring, k: NonNullable<RunOptions['kubernetes']>): Promise<KubernetesSource> {
  // Loaded on demand (the watch machinery; @kubernetes/client-node itself only for kubeconfig auth plugins).
  const { KubernetesSource } = await import('./discovery/k8s-source.js');
  const kopts: ConstructorParameters<typeof KubernetesSource>[0] = {
    clusterDomain: w.opts.clusterDomain,
    log: (level, msg, fields) => w.logger.log(level === 'debug' ? 'info' : level, `kubernetes: ${msg}`, fields),
  };
  if (k.kubeconfig) kopts.kubeconfig = k.kubeconfig;
  if (k.env) kopts.env = k.env;
  // A Sidecar from the API server that applies to this workload narrows what is cached to what it reaches.
  kopts.workload = { namespace: w.opts.namespace, labels: w.opts.labels };
  if (k.namespaces.length > 0) kopts.namespaces = k.namespaces;
  const kube = new KubernetesSource(kopts);
  w.source(kube);
  await kube.start();
  // Sidecar egress scoping happens in the store, over every source alike. What did not change is the same array
  // (k8s-source.ts): a change of pods only does not rebuild the config, nor one of Services the authorizer.
  // A rejected input is offered again at the next change (the store may accept it after a file edit).
  let authzIn: { pods: unknown; namespaceLabels: unknown } | undefined;
  let storeIn: { resources: unknown; services: unknown } | undefined;
  const push = (): void => {
    const cur = kube.current();
    if (authzIn?.pods !== cur.pods || authzIn.namespaceLabels !== cur.namespaceLabels) {
      w.authz.update({ pods: cur.pods, namespaceLabels: cur.namespaceLabels });
      // Only what is compared (the whole state would keep its services array alive until the next Pod change).
      authzIn = { pods: cur.pods, namespaceLabels: cur.namespaceLabels };
    }
    if (storeIn?.resources !== cur.resources || storeIn.services !== cur.services) {
      storeIn = w.store.setExternal('kubernetes', { resources: cur.resources, services: cur.services }) ? { resources: cur.resources, services: cur.services } : undefined;
    }
  };
  push();
  kube.on('change', push);
  // Once the watch's changes stop, V8 is asked to give back the heap they left (src/util/heap-shrink.ts): Pod changes
  // too, which do not rebuild the config (the store's updates are counted by app.ts).
  const shrinker = w.heapShrinker;
  if (shrinker) kube.on('change', () => shrinker.noteChange());
  if (k.gatewayStatus !== undefined) {
    // Loaded on demand, like the watch: most sidecars never write status.
    const { GatewayStatusWriter } = await import('./gateway/status-writer.js');
    const { kubeApi } = await import('./gateway/kube-api.js');
    const writer = new GatewayStatusWriter({
      api: kubeApi(await kube.kubeConfig()), identity: k.gatewayStatus.identity, leaseNamespace: k.gatewayStatus.leaseNamespace,
      ...(k.gatewayStatus.leaseDurationMs !== undefined ? {
        leaseDurationMs: k.gatewayStatus.leaseDurationMs, leaseRenewMs: Math.max(100, Math.floor(k.gatewayStatus.leaseDurationMs / 3)),
        leaseRetryMs: Math.max(100, Math.min(2000, Math.floor(k.gatewayStatus.leaseDurationMs / 5))),
      } : {}),
      clusterDomain: w.opts.clusterDomain, log: (level, msg) => w.logger.log(level, msg),
    });
    w.statusWriter(writer);
    const feed = (): void => { const cur = kube.current(); writer.update({ resources: cur.resources, services: cur.services }); };
    kube.on('change', feed);
    feed();
    writer.start();
  }
  return kube;
}
