/**
 * `--env-discovery`: Services from the `<NAME>_SERVICE_HOST` / `<NAME>_SERVICE_PORT[_<PORT>]` variables that
 * the kubelet injects at container start. Pure. Limits: start-time only, the pod's namespace only (plus
 * `kubernetes` from `default`), and no per-pod endpoints: the ClusterIP is the endpoint, kube-proxy balances.
 */
import { isIP } from 'node:net';
import type { ServiceDef, ServicePortDef } from '../model.js';
import { protocolOf, serviceHost } from './k8s-mapping.js';

export interface EnvDiscoveryOptions {
  /** The pod's namespace (`--namespace`, from `POD_NAMESPACE`): injected variables describe Services there. */
  namespace: string;
  clusterDomain: string;
}

const HOST_SUFFIX = '_SERVICE_HOST';

function validPort(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d{1,5}$/.test(v)) return undefined;
  const n = Number(v);
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** Service and port names are DNS labels (lowercase alphanumerics and '-'); the kubelet uppercases them and maps '-' to '_'. */
const unmangle = (envName: string): string => envName.toLowerCase().replace(/_/g, '-');

export function servicesFromEnv(env: Readonly<Record<string, string | undefined>>, opts: EnvDiscoveryOptions): ServiceDef[] {
  const out: ServiceDef[] = [];
  for (const [key, hostValue] of Object.entries(env)) {
    if (!key.endsWith(HOST_SUFFIX) || hostValue === undefined) continue;
    const prefix = key.slice(0, -HOST_SUFFIX.length);
    if (!/^[A-Z0-9_]+$/.test(prefix) || prefix === '') continue;
    const ip = hostValue.trim();
    if (isIP(ip) === 0) continue; // headless Services get no variables; anything else is not ours
    const name = unmangle(prefix);
    // The master Service is injected into every pod, but lives in `default`.
    const namespace = name === 'kubernetes' ? 'default' : opts.namespace;

    const portPrefix = `${prefix}_SERVICE_PORT_`;
    const named: ServicePortDef[] = [];
    for (const [k, v] of Object.entries(env)) {
      if (!k.startsWith(portPrefix)) continue;
      const port = validPort(v);
      if (port === undefined) continue;
      const portName = unmangle(k.slice(portPrefix.length));
      named.push({ number: port, name: portName, protocol: protocolFor(env, prefix, port, portName), targetPort: port });
    }
    named.sort((a, b) => a.number - b.number || (a.name < b.name ? -1 : 1));
    const first = validPort(env[`${prefix}_SERVICE_PORT`]);
    const ports: ServicePortDef[] = [...named];
    if (first !== undefined && !named.some((p) => p.number === first)) {
      // A single unnamed port: only `_SERVICE_PORT` is set.
      ports.unshift({ number: first, name: '', protocol: protocolFor(env, prefix, first, ''), targetPort: first });
    }
    if (ports.length === 0) continue;
    out.push({
      hostname: serviceHost(name, namespace, opts.clusterDomain),
      namespace,
      ports,
      resolution: 'STATIC',
      // The ClusterIP stands in for the endpoints: kube-proxy (iptables/IPVS) picks the pod, so DestinationRule
      // subsets, outlier detection and per-pod load balancing cannot apply to these hosts.
      workloads: [{ address: ip, ports: Object.fromEntries(ports.map((p) => [p.name, p.number])), labels: {}, weight: 1, name: `${name}-clusterip` }],
      addresses: [ip],
      location: 'MESH_INTERNAL',
      origin: 'env',
    });
  }
  return out.sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0));
}

/** Docker-link variables `<NAME>_PORT_<port>_UDP` (without a `_TCP` twin) mark a UDP port; else Istio's name rules. */
function protocolFor(env: Readonly<Record<string, string | undefined>>, prefix: string, port: number, portName: string): string {
  const udp = env[`${prefix}_PORT_${port}_UDP`] !== undefined && env[`${prefix}_PORT_${port}_TCP`] === undefined;
  return protocolOf({ name: portName, protocol: udp ? 'UDP' : 'TCP' });
}
