/**
 * DestinationRule rules of Istio's validation (traffic policies: TLS, outlier detection, connection pools, load
 * balancing and locality, port-level settings, tunnels; subsets), one resource alone. Pure.
 */
import type { FieldPath } from '../resource.js';
import { isDns1123Label, isIpAddress, validateFqdn, validateWildcardDomain } from '../hosts.js';
import { isSecretName } from '../../security/credential-name.js';
import {
  MAX_RING_SIZE, Reporter, checkExportTo, checkHeaderBound, checkLabels, checkPort, checkSelectorLabels, durationMsOf, has, listOf,
  numOf, objOf, strOf, type Obj,
} from './common.js';

function isPrime(x: number): boolean {
  // Envoy's check (source/common/common/utility.cc), which Istio copies.
  if (x !== 0 && x < 4) return true;
  if (x % 2 === 0) return false;
  for (let f = 3; f * f <= x; f += 2) if (x % f === 0) return false;
  return true;
}

function checkTls(rep: Reporter, tls: unknown, path: FieldPath): void {
  const t = objOf(tls);
  if (!t) return;
  const mode = strOf(t.mode);
  if (t.insecureSkipVerify === true) {
    if (mode === 'SIMPLE' && (strOf(t.caCertificates) || strOf(t.credentialName) || has(t, 'subjectAltNames'))) {
      rep.error([...path, 'insecureSkipVerify'], 'cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true');
    }
    if (mode === 'MUTUAL' && (strOf(t.caCertificates) || has(t, 'subjectAltNames'))) {
      rep.error([...path, 'insecureSkipVerify'], 'cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true');
    }
  }
  // A Secret's name, looked up under the credentials directory: never a path (no "/", no "..").
  const cred = strOf(t.credentialName);
  if (cred !== undefined && cred !== '' && !isSecretName(cred)) {
    rep.error([...path, 'credentialName'], `"${cred}" is not a Secret name (lowercase letters, digits, "-" and "."; no "/" and no "..")`);
  }
  if ((mode === 'SIMPLE' || mode === 'MUTUAL') && strOf(t.credentialName)) {
    if (strOf(t.clientCertificate) || strOf(t.caCertificates) || strOf(t.privateKey) || strOf(t.caCrl)) {
      rep.error([...path, 'credentialName'], 'cannot specify client certificates or CA certificate or CA CRL If credentialName is set');
    }
    return;
  }
  if (mode === 'MUTUAL') {
    if (!strOf(t.clientCertificate)) rep.error([...path, 'clientCertificate'], 'client certificate required for mutual tls');
    if (!strOf(t.privateKey)) rep.error([...path, 'privateKey'], 'private key required for mutual tls');
  }
}

function checkOutlierDetection(rep: Reporter, od: unknown, path: FieldPath): void {
  const o = objOf(od);
  if (!o) return;
  if (o.splitExternalLocalOriginErrors !== true && (numOf(o.consecutiveLocalOriginFailures) ?? 0) > 0) {
    rep.error([...path, 'consecutiveLocalOriginFailures'], 'outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false');
  }
  for (const k of ['maxEjectionPercent', 'minHealthPercent'] as const) {
    const v = numOf(o[k]);
    if (v !== undefined && (v < 0 || v > 100)) rep.error([...path, k], `percentage ${v} is not in range 0..100`);
  }
}

function checkConnectionPool(rep: Reporter, cp: unknown, path: FieldPath): void {
  const o = objOf(cp);
  if (!o) return;
  if (!has(o, 'http') && !has(o, 'tcp')) return rep.error(path, 'connection pool must have at least one field');
  const http = objOf(o.http);
  if (http) {
    const names: Record<string, string> = {
      http1MaxPendingRequests: 'http1 max pending requests', http2MaxRequests: 'http2 max requests',
      maxRequestsPerConnection: 'max requests per connection', maxRetries: 'max retries', maxConcurrentStreams: 'max concurrent streams',
    };
    for (const [k, label] of Object.entries(names)) {
      const v = numOf(http[k]);
      if (v !== undefined && v < 0) rep.error([...path, 'http', k], `${label} must be non-negative`);
    }
    if (http.h2UpgradePolicy === 'UPGRADE' && http.useClientProtocol === true) rep.error([...path, 'http', 'useClientProtocol'], 'use client protocol must not be true when H2UpgradePolicy is UPGRADE');
  }
  const tcp = objOf(o.tcp);
  if (tcp) {
    const v = numOf(tcp.maxConnections);
    if (v !== undefined && v < 0) rep.error([...path, 'tcp', 'maxConnections'], 'max connections must be non-negative');
    const idle = durationMsOf(tcp.idleTimeout);
    // "0s" disables the idle timeout; anything else follows the usual ≥ 1ms rule.
    if (idle !== undefined && idle !== 0 && idle < 1) rep.error([...path, 'tcp', 'idleTimeout'], 'duration must be greater than 1ms');
  }
}

function checkLocality(rep: Reporter, lb: unknown, path: FieldPath, outlier: unknown): void {
  const o = objOf(lb);
  if (!o) return;
  const distribute = listOf(o.distribute);
  const failover = listOf(o.failover);
  const priority = listOf(o.failoverPriority);
  if (distribute.length > 0 && failover.length > 0) return rep.error(path, "can not simultaneously specify 'distribute' and 'failover'");
  if (failover.length > 0) {
    for (const p of priority) {
      if (typeof p === 'string' && p.startsWith('topology.kubernetes.io/') || p === 'topology.istio.io/subzone') {
        return rep.error([...path, 'failoverPriority'], `can not simultaneously set 'failover' and topology label '${String(p)}' in 'failover_priority'`);
      }
    }
  }
  distribute.forEach((d, i) => {
    const to = objOf(objOf(d)?.to) ?? {};
    let total = 0;
    for (const [loc, w] of Object.entries(to)) {
      const n = numOf(w) ?? 0;
      if (n <= 0 || n > 100) rep.error([...path, 'distribute', i, 'to', loc], 'locality weight must be in range [1, 100]');
      total += n;
    }
    if (total !== 100) rep.error([...path, 'distribute', i, 'to'], `total locality weight ${total} != 100`);
  });
  if ((failover.length > 0 || priority.length > 0) && outlier === undefined) rep.warn(path, 'outlier detection policy must be provided for failover');
  failover.forEach((f, i) => {
    const fo = objOf(f);
    const from = strOf(fo?.from) ?? '';
    const to = strOf(fo?.to) ?? '';
    if (from === to) rep.error([...path, 'failover', i], 'locality lb failover settings must specify different regions');
    if (from.includes('/') || to.includes('/')) rep.error([...path, 'failover', i], 'locality lb failover only specify region');
    if (from.includes('*') || to.includes('*')) rep.error([...path, 'failover', i], "locality lb failover region should not contain '*' wildcard");
  });
}

function checkLoadBalancer(rep: Reporter, lb: unknown, path: FieldPath, outlier: unknown): void {
  const o = objOf(lb);
  if (!o) return;
  const ch = objOf(o.consistentHash);
  if (ch) {
    const cp = [...path, 'consistentHash'];
    const cookie = objOf(ch.httpCookie);
    if (cookie && strOf(cookie.name) === '') rep.error([...cp, 'httpCookie', 'name'], 'name required for HttpCookie');
    if (cookie) for (const k of ['name', 'path'] as const) checkHeaderBound(rep, cookie[k], [...cp, 'httpCookie', k], `httpCookie ${k} (sent in Set-Cookie)`);
    if (has(ch, 'minimumRingSize') && (has(ch, 'ringHash') || has(ch, 'maglev'))) rep.error([...cp, 'minimumRingSize'], 'only one of MinimumRingSize or Maglev/Ringhash can be specified');
    const ringSize = numOf(objOf(ch.ringHash)?.minimumRingSize) ?? numOf(ch.minimumRingSize);
    if (ringSize !== undefined && ringSize > MAX_RING_SIZE) {
      rep.error(has(ch, 'ringHash') ? [...cp, 'ringHash', 'minimumRingSize'] : [...cp, 'minimumRingSize'], `minimumRingSize must be at most ${MAX_RING_SIZE}`);
    }
    const maglev = objOf(ch.maglev);
    if (maglev) {
      const size = numOf(maglev.tableSize) ?? 0;
      const mp = [...cp, 'maglev', 'tableSize'];
      if (size === 0) rep.error(mp, 'tableSize must be set for maglev');
      else if (size >= 5000011) rep.error(mp, 'tableSize must be less than 5000011 for maglev');
      else if (!isPrime(size)) rep.error(mp, 'tableSize must be a prime number for maglev');
    }
    if (!has(ch, 'httpHeaderName') && !has(ch, 'httpCookie') && !has(ch, 'useSourceIp') && !has(ch, 'httpQueryParameterName')) {
      rep.error(cp, 'consistentHash needs one hash key: httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName');
    }
  }
  checkLocality(rep, o.localityLbSetting, [...path, 'localityLbSetting'], outlier);
  const warm = objOf(o.warmup);
  if (warm) {
    const agg = numOf(warm.aggression);
    if (agg !== undefined && agg < 1) rep.error([...path, 'warmup', 'aggression'], 'aggression should be greater than or equal to 1');
  }
}

const POLICY_FIELDS = ['outlierDetection', 'connectionPool', 'loadBalancer', 'tls', 'portLevelSettings', 'tunnel', 'proxyProtocol', 'retryBudget'];

function checkTrafficPolicy(rep: Reporter, tp: unknown, path: FieldPath): void {
  const o = objOf(tp);
  if (!o) return;
  if (!POLICY_FIELDS.some((f) => has(o, f))) return rep.error(path, 'traffic policy must have at least one field');
  if (has(o, 'tunnel') && has(o, 'proxyProtocol')) return rep.error([...path, 'proxyProtocol'], 'tunnel and proxyProtocol must not be set together');
  checkOutlierDetection(rep, o.outlierDetection, [...path, 'outlierDetection']);
  checkConnectionPool(rep, o.connectionPool, [...path, 'connectionPool']);
  checkLoadBalancer(rep, o.loadBalancer, [...path, 'loadBalancer'], o.outlierDetection ?? undefined);
  checkTls(rep, o.tls, [...path, 'tls']);
  const seenPorts = new Map<number, number>();
  listOf(o.portLevelSettings).forEach((pl, i) => {
    const p = objOf(pl);
    if (!p) return;
    const pp = [...path, 'portLevelSettings', i];
    const num = numOf(objOf(p.port)?.number);
    if (num === undefined) rep.error([...pp, 'port'], 'portTrafficPolicy must have valid port');
    else {
      checkPort(rep, num, [...pp, 'port', 'number']);
      const first = seenPorts.get(num);
      if (first !== undefined) rep.error([...pp, 'port', 'number'], `port ${num} already has settings in portLevelSettings[${first}]`);
      else seenPorts.set(num, i);
    }
    if (!['outlierDetection', 'connectionPool', 'loadBalancer', 'tls'].some((f) => has(p, f))) rep.error(pp, 'port traffic policy must have at least one field');
    checkOutlierDetection(rep, p.outlierDetection, [...pp, 'outlierDetection']);
    checkConnectionPool(rep, p.connectionPool, [...pp, 'connectionPool']);
    checkLoadBalancer(rep, p.loadBalancer, [...pp, 'loadBalancer'], p.outlierDetection ?? undefined);
    checkTls(rep, p.tls, [...pp, 'tls']);
  });
  const tunnel = objOf(o.tunnel);
  if (tunnel) {
    const proto = strOf(tunnel.protocol);
    if (proto && proto !== 'CONNECT' && proto !== 'POST') rep.error([...path, 'tunnel', 'protocol'], 'tunnel protocol must be "CONNECT" or "POST"');
    const target = strOf(tunnel.targetHost);
    if (target !== undefined && validateFqdn(target) !== undefined && !isIpAddress(target)) rep.error([...path, 'tunnel', 'targetHost'], 'tunnel target host must be valid FQDN or IP address');
    checkPort(rep, tunnel.targetPort, [...path, 'tunnel', 'targetPort']);
  }
}

export function validateDestinationRule(rep: Reporter, spec: Obj): void {
  const host = strOf(spec.host);
  if (host === undefined || host === '') rep.error(['spec', 'host'], 'host is required');
  else rep.check(['spec', 'host'], validateWildcardDomain(host));
  checkTrafficPolicy(rep, spec.trafficPolicy, ['spec', 'trafficPolicy']);
  const names = new Map<string, number>();
  listOf(spec.subsets).forEach((s, i) => {
    const o = objOf(s);
    if (!o) return;
    const p = ['spec', 'subsets', i];
    const name = strOf(o.name);
    if (name !== undefined) {
      if (name === '') rep.error([...p, 'name'], 'subset name cannot be empty');
      else if (!isDns1123Label(name)) rep.error([...p, 'name'], `subset name is invalid: ${name}`);
      const first = names.get(name);
      if (first !== undefined) rep.error([...p, 'name'], `duplicate subset names: ${name} (also subsets[${first}])`);
      else names.set(name, i);
    }
    checkLabels(rep, o.labels, [...p, 'labels']);
    checkTrafficPolicy(rep, o.trafficPolicy, [...p, 'trafficPolicy']);
  });
  const ws = objOf(spec.workloadSelector);
  checkExportTo(rep, spec.exportTo, ['spec', 'exportTo'], rep.r.metadata.namespace, false);
  if (ws) {
    checkSelectorLabels(rep, ws.matchLabels, ['spec', 'workloadSelector', 'matchLabels']);
    if (Object.keys(objOf(ws.matchLabels) ?? {}).length === 0) rep.warn(['spec', 'workloadSelector'], 'workload selector specified without labels');
    const exp = listOf(spec.exportTo).map((e) => (e === '.' ? rep.r.metadata.namespace : e));
    if (exp.length > 0 && (exp.length > 1 || exp[0] !== rep.r.metadata.namespace)) {
      rep.error(['spec', 'exportTo'], 'destination rule with workload selector cannot have exportTo beyond current namespace');
    }
  }
}
