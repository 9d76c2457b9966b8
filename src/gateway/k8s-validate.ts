/**
 * Kubernetes `v1 Service`, `discovery.k8s.io/v1 EndpointSlice` and `v1 Pod` objects in config files, checked for
 * what the registry reads from them (ports, addresses, the Service an EndpointSlice belongs to). Everything else in
 * them (status, managedFields, …) is allowed: a `kubectl get -o yaml` dump must load as it is. Pure.
 */
import { isIP } from 'node:net';
import { errorAt, type ConfigError, type Resource } from '../config/resource.js';
import { isK8sName, isK8sNamespace } from '../config/hosts.js';
import { SERVICE_NAME_LABEL } from '../discovery/k8s-mapping.js';

type Obj = Record<string, unknown>;
const objOf = (v: unknown): Obj | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined);
const listOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export function isKubernetesRegistryKind(apiVersion: string, kind: string): boolean {
  return (apiVersion === 'v1' && (kind === 'Service' || kind === 'Pod')) || (apiVersion === 'discovery.k8s.io/v1' && kind === 'EndpointSlice');
}

function checkPort(out: ConfigError[], r: Resource, path: Array<string | number>, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) out.push(errorAt(r, path, `port must be an integer 1..65535 (got ${JSON.stringify(v)})`));
}

export function validateKubernetesObject(r: Resource): ConfigError[] {
  const out: ConfigError[] = [];
  const md = objOf(r.raw.metadata);
  const name = md?.name;
  if (typeof name !== 'string' || name === '') out.push(errorAt(r, ['metadata', 'name'], 'required field is missing'));
  else if (!isK8sName(name)) out.push(errorAt(r, ['metadata', 'name'], `invalid name "${name}": must be a lowercase RFC 1123 subdomain`));
  const ns = md?.namespace;
  if (typeof ns === 'string' && ns !== '' && !isK8sNamespace(ns)) out.push(errorAt(r, ['metadata', 'namespace'], `invalid namespace "${ns}"`));
  if (r.kind === 'Service') {
    const spec = objOf(r.raw.spec) ?? {};
    const names = new Map<string, number>();
    listOf(spec.ports).forEach((p, i) => {
      const o = objOf(p);
      if (o === undefined) return;
      if (o.port === undefined) out.push(errorAt(r, ['spec', 'ports', i, 'port'], 'required field is missing'));
      checkPort(out, r, ['spec', 'ports', i, 'port'], o.port);
      if (typeof o.targetPort === 'number') checkPort(out, r, ['spec', 'ports', i, 'targetPort'], o.targetPort);
      const pn = o.name;
      if (typeof pn === 'string' && pn !== '') {
        const first = names.get(pn);
        if (first !== undefined) out.push(errorAt(r, ['spec', 'ports', i, 'name'], `duplicate port name "${pn}" (also ports[${first}])`));
        names.set(pn, i);
      }
    });
    for (const [k, v] of [['clusterIP', spec.clusterIP], ...listOf(spec.clusterIPs).map((x, i) => [`clusterIPs[${i}]`, x] as const)] as const) {
      if (typeof v === 'string' && v !== '' && v !== 'None' && isIP(v) === 0) out.push(errorAt(r, ['spec', ...String(k).split(/[[\]]/).filter(Boolean).map((x) => (/^\d+$/.test(x) ? Number(x) : x))], `"${v}" is not an IP address (or None for a headless Service)`));
    }
  } else if (r.kind === 'EndpointSlice') {
    const labels = objOf(md?.labels);
    if (typeof labels?.[SERVICE_NAME_LABEL] !== 'string') out.push(errorAt(r, ['metadata', 'labels'], `label ${SERVICE_NAME_LABEL} is missing: the slice belongs to no Service and is ignored`, 'warning'));
    const type = r.raw.addressType;
    if (type !== undefined && type !== 'IPv4' && type !== 'IPv6' && type !== 'FQDN') out.push(errorAt(r, ['addressType'], `unsupported addressType ${JSON.stringify(type)}: IPv4, IPv6 or FQDN`));
    listOf(r.raw.endpoints).forEach((e, i) => {
      listOf(objOf(e)?.addresses).forEach((a, j) => {
        if (typeof a === 'string' && type !== 'FQDN' && isIP(a) === 0) out.push(errorAt(r, ['endpoints', i, 'addresses', j], `"${a}" is not an IP address`));
      });
    });
    listOf(r.raw.ports).forEach((p, i) => checkPort(out, r, ['ports', i, 'port'], objOf(p)?.port));
  }
  return out;
}
