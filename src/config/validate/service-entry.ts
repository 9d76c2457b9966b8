/**
 * ServiceEntry and WorkloadEntry rules of Istio's validation (hosts, addresses, ports, resolution and endpoints),
 * one resource alone. Pure.
 */
import type { FieldPath } from '../resource.js';
import { isDns1123Label, isIpAddress, validateFqdn, validateIpOrCidr } from '../hosts.js';
import {
  HTTP_PROTOCOLS, PROTOCOLS, TLS_PROTOCOLS, Reporter, checkExportTo, checkLabels, checkSelectorLabels, has, hostReason, listOf,
  numOf, objOf, strOf, type Obj,
} from './common.js';

function checkWorkloadEntry(rep: Reporter, we: Obj, path: FieldPath, opts: { servicePorts?: Set<string>; allowFqdn: boolean }): void {
  const addr = strOf(we.address) ?? '';
  if (addr === '') {
    if (!strOf(we.network)) rep.error([...path, 'address'], 'address is required (or set network)');
    else rep.warn([...path, 'address'], `address is unset with network "${String(we.network)}"`);
  } else if (addr.startsWith('unix://')) {
    const sock = addr.slice('unix://'.length);
    if (!sock.startsWith('/') && !sock.startsWith('@')) rep.error([...path, 'address'], 'UDS must be an absolute path or abstract socket');
    else if (sock.endsWith('/')) rep.error([...path, 'address'], 'UDS may not be a dir');
    if (has(we, 'ports')) rep.error([...path, 'ports'], 'UDS may not include ports');
    if (opts.servicePorts && opts.servicePorts.size !== 1) rep.error([...path, 'address'], 'exactly 1 service port required for unix endpoints');
  } else if (!isIpAddress(addr)) {
    if (!opts.allowFqdn) rep.error([...path, 'address'], `endpoint address "${addr}" is not a valid IP address (resolution STATIC needs IPs or unix:// sockets)`);
    else if (validateFqdn(addr) !== undefined) rep.error([...path, 'address'], `endpoint address "${addr}" is not a valid FQDN or an IP address`);
  }
  // Port values (1..65535) are checked by the structural pass, as the CRD's CEL rule does.
  for (const name of Object.keys(objOf(we.ports) ?? {})) {
    // The CRD's rule is on the whole map, so Istio reports a bad name at `ports`; so do we.
    if (!isDns1123Label(name)) rep.error([...path, 'ports'], `port name "${name}" must be valid (a DNS label: letters, digits, '-')`);
    else if (opts.servicePorts && !opts.servicePorts.has(name)) {
      rep.error([...path, 'ports', name], `endpoint port "${name}" is not defined by the service entry (ports: ${[...opts.servicePorts].join(', ') || 'none'})`);
    }
  }
  checkLabels(rep, we.labels, [...path, 'labels']);
}

export function validateServiceEntry(rep: Reporter, spec: Obj): void {
  const hosts = listOf(spec.hosts);
  const resolution = strOf(spec.resolution) ?? 'NONE';
  if (has(spec, 'workloadSelector') && has(spec, 'endpoints')) rep.error(['spec', 'endpoints'], 'only one of WorkloadSelector or Endpoints can be set');
  const ws = objOf(spec.workloadSelector);
  if (ws) {
    checkSelectorLabels(rep, ws.labels, ['spec', 'workloadSelector', 'labels']);
    if (Object.keys(objOf(ws.labels) ?? {}).length === 0) rep.warn(['spec', 'workloadSelector'], 'service entry: workload selector specified without labels, will be applied to all services in namespace');
  }
  hosts.forEach((h, i) => {
    if (typeof h !== 'string') return;
    if (h === '*') return rep.error(['spec', 'hosts', i], 'hostname cannot be wildcard');
    rep.check(['spec', 'hosts', i], hostReason(h));
    if (h.includes('*') && !h.startsWith('*.')) rep.warn(['spec', 'hosts', i], `partial wildcard "${h}" not allowed`);
  });
  let cidr = false;
  listOf(spec.addresses).forEach((a, i) => {
    if (typeof a !== 'string') return;
    cidr ||= a.includes('/');
    rep.check(['spec', 'addresses', i], validateIpOrCidr(a));
  });
  if (cidr && resolution !== 'NONE' && resolution !== 'STATIC') rep.error(['spec', 'addresses'], 'CIDR addresses are allowed only for NONE/STATIC resolution types');

  const portNames = new Map<string, number>();
  const portNumbers = new Map<number, number>();
  const protocols: string[] = [];
  listOf(spec.ports).forEach((p, i) => {
    const o = objOf(p);
    if (!o) return;
    const pp = ['spec', 'ports', i];
    const name = strOf(o.name);
    if (name !== undefined) {
      const first = portNames.get(name);
      if (first !== undefined) rep.error([...pp, 'name'], `Duplicate value: service entry port name "${name}" already defined (ports[${first}])`);
      else portNames.set(name, i);
      if (!isDns1123Label(name)) rep.error([...pp, 'name'], `invalid port name: ${name}`);
    }
    const number = numOf(o.number);
    if (number !== undefined) {
      const first = portNumbers.get(number);
      if (first !== undefined) rep.error([...pp, 'number'], `port number cannot be duplicated: ${number} (ports[${first}])`);
      else portNumbers.set(number, i);
    }
    const proto = strOf(o.protocol) ?? '';
    if (proto !== '' && !PROTOCOLS.has(proto.toUpperCase())) rep.error([...pp, 'protocol'], `unsupported protocol: ${proto} (use one of ${[...PROTOCOLS].join(', ')})`);
    protocols.push(proto.toUpperCase());
  });
  const servicePorts = new Set(portNames.keys());

  const endpoints = listOf(spec.endpoints);
  switch (resolution) {
    case 'NONE':
      if (endpoints.length > 0) rep.error(['spec', 'endpoints'], 'NONE mode cannot set endpoints');
      if (ws) rep.warn(['spec', 'workloadSelector'], 'workloadSelector should not be set when resolution mode is NONE');
      break;
    case 'STATIC':
      endpoints.forEach((e, i) => {
        const o = objOf(e);
        if (o) checkWorkloadEntry(rep, o, ['spec', 'endpoints', i], { servicePorts, allowFqdn: false });
      });
      if (endpoints.length === 0 && !ws) rep.warn(['spec', 'resolution'], 'STATIC resolution without endpoints or workloadSelector: this service has no endpoints');
      break;
    case 'DNS':
    case 'DNS_ROUND_ROBIN':
      if (endpoints.length === 0) {
        hosts.forEach((h, i) => {
          if (typeof h === 'string' && h !== '*' && validateFqdn(h) !== undefined) {
            rep.error(['spec', 'hosts', i], `hosts must be FQDN if no endpoints are provided for resolution mode ${resolution}`);
          }
        });
      }
      if (resolution === 'DNS_ROUND_ROBIN' && endpoints.length > 1) rep.error(['spec', 'endpoints'], 'DNS_ROUND_ROBIN mode cannot have multiple endpoints');
      endpoints.forEach((e, i) => {
        const o = objOf(e);
        if (o) checkWorkloadEntry(rep, o, ['spec', 'endpoints', i], { servicePorts, allowFqdn: true });
      });
      break;
    case 'DYNAMIC_DNS':
      rep.error(['spec', 'resolution'], 'resolution DYNAMIC_DNS is not supported by Remora');
      break;
    default:
      break; // an unknown enum value is reported by the structural pass
  }
  if (resolution !== 'NONE' && hosts.length > 1 && protocols.some((p) => !HTTP_PROTOCOLS.has(p) && !TLS_PROTOCOLS.has(p))) {
    rep.error(['spec', 'ports'], 'multiple hosts provided with non-HTTP, non-TLS ports');
  }
  checkExportTo(rep, spec.exportTo, ['spec', 'exportTo'], rep.r.metadata.namespace, true);
}

export function validateWorkloadEntrySpec(rep: Reporter, spec: Obj): void {
  checkWorkloadEntry(rep, spec, ['spec'], { allowFqdn: true });
}
