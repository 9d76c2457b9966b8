/**
 * Validation of the policy and scoping kinds Remora applies besides routing: Kubernetes NetworkPolicy, Istio
 * AuthorizationPolicy and Sidecar. Checks what would make a policy mean something else than written (bad CIDRs,
 * unknown actions, malformed egress hosts) as errors, and warns about fields Remora does not apply.
 */
import { errorAt, type ConfigError, type FieldPath, type Resource } from '../config/resource.js';
import { cidrContains, parseCidr } from './cidr.js';
import { validatePeerAuthenticationSpec } from '../security/peer-authentication.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** `apiVersion/kind` of the kinds handled here. */
export const AUTHZ_KINDS: ReadonlySet<string> = new Set([
  'networking.k8s.io/v1/NetworkPolicy',
  'security.istio.io/v1/AuthorizationPolicy',
  'security.istio.io/v1beta1/AuthorizationPolicy',
  'security.istio.io/v1/PeerAuthentication',
  'security.istio.io/v1beta1/PeerAuthentication',
  'security.istio.io/v1/RequestAuthentication',
  'security.istio.io/v1beta1/RequestAuthentication',
  'networking.istio.io/v1/Sidecar',
  'networking.istio.io/v1beta1/Sidecar',
  'networking.istio.io/v1alpha3/Sidecar',
]);

export function isAuthzKind(apiVersion: string, kind: string): boolean {
  return AUTHZ_KINDS.has(`${apiVersion}/${kind}`);
}

/** Validate one NetworkPolicy, AuthorizationPolicy, PeerAuthentication, RequestAuthentication or Sidecar; [] for any other kind. */
export function validateAuthzResource(r: Resource): ConfigError[] {
  const out: ConfigError[] = [];
  const error = (path: FieldPath, msg: string): void => {
    out.push(errorAt(r, path, msg));
  };
  const warn = (path: FieldPath, msg: string): void => {
    out.push(errorAt(r, path, msg, 'warning'));
  };
  if (!isAuthzKind(r.apiVersion, r.kind)) return out;
  if (!r.metadata.name) error(['metadata', 'name'], 'required field is missing');
  if (r.raw.spec !== undefined && !isObj(r.raw.spec)) {
    error(['spec'], 'spec must be a mapping');
    return out;
  }
  const spec = r.spec;
  switch (r.kind) {
    case 'NetworkPolicy':
      validateNetworkPolicy(spec, error);
      break;
    case 'AuthorizationPolicy':
      validateAuthorizationPolicy(spec, error);
      break;
    case 'Sidecar':
      validateSidecar(spec, error, warn);
      break;
    case 'RequestAuthentication':
      validateRequestAuthentication(spec, error, warn);
      break;
    case 'PeerAuthentication':
      // Enforced by sidecars that have a workload certificate (remora run --cert-dir); one without says so at run time.
      for (const [path, msg] of validatePeerAuthenticationSpec(spec)) error(path, msg);
      break;
  }
  return out;
}

type Report = (path: FieldPath, msg: string) => void;

const SELECTOR_OPS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

function validateSelector(sel: unknown, path: FieldPath, error: Report): void {
  if (sel === undefined || sel === null) return;
  if (!isObj(sel)) return error(path, 'must be a label selector mapping');
  if (sel.matchLabels !== undefined && sel.matchLabels !== null && !isObj(sel.matchLabels)) error([...path, 'matchLabels'], 'must be a mapping');
  list(sel.matchExpressions).forEach((e, i) => {
    const p = [...path, 'matchExpressions', i];
    if (!isObj(e)) return error(p, 'must be a mapping');
    const op = String(e.operator ?? '');
    if (!SELECTOR_OPS.has(op)) return error([...p, 'operator'], `"${op}" is not a valid selector operator (In, NotIn, Exists, DoesNotExist)`);
    const values = list(e.values);
    if ((op === 'In' || op === 'NotIn') && values.length === 0) error([...p, 'values'], `must be non-empty for ${op}`);
    if ((op === 'Exists' || op === 'DoesNotExist') && values.length > 0) error([...p, 'values'], `must be empty for ${op}`);
  });
}

function validateCidr(v: unknown, path: FieldPath, error: Report, requirePrefix: boolean): ReturnType<typeof parseCidr> {
  const s = typeof v === 'string' ? v : '';
  const c = parseCidr(s);
  if (!c || (requirePrefix && !s.includes('/'))) {
    error(path, `invalid CIDR "${String(v)}"`);
    return undefined;
  }
  return c;
}

function validateNetworkPolicy(spec: Obj, error: Report): void {
  if (spec.podSelector === undefined || spec.podSelector === null) error(['spec', 'podSelector'], 'required field is missing ({} selects every pod of the namespace)');
  else validateSelector(spec.podSelector, ['spec', 'podSelector'], error);
  list(spec.policyTypes).forEach((t, i) => {
    if (t !== 'Ingress' && t !== 'Egress') error(['spec', 'policyTypes', i], `"${String(t)}" is not Ingress or Egress`);
  });
  list(spec.ingress).forEach((rule, i) => {
    const rp = ['spec', 'ingress', i];
    if (!isObj(rule)) return error(rp, 'must be a mapping');
    list(rule.from).forEach((peer, j) => {
      const pp = [...rp, 'from', j];
      if (!isObj(peer)) return error(pp, 'must be a mapping');
      const hasSel = (peer.podSelector ?? null) !== null || (peer.namespaceSelector ?? null) !== null;
      const block = peer.ipBlock;
      if (isObj(block)) {
        if (hasSel) error(pp, 'ipBlock cannot be combined with podSelector or namespaceSelector');
        const cidr = validateCidr(block.cidr, [...pp, 'ipBlock', 'cidr'], error, true);
        list(block.except).forEach((e, k) => {
          const ex = validateCidr(e, [...pp, 'ipBlock', 'except', k], error, true);
          if (cidr && ex && (ex.prefix < cidr.prefix || !cidrContains(cidr, { family: ex.family, value: ex.base }))) error([...pp, 'ipBlock', 'except', k], `must be within ${String(block.cidr)}`);
        });
      } else if (!hasSel) {
        error(pp, 'must specify podSelector, namespaceSelector or ipBlock');
      }
      validateSelector(peer.podSelector, [...pp, 'podSelector'], error);
      validateSelector(peer.namespaceSelector, [...pp, 'namespaceSelector'], error);
    });
    list(rule.ports).forEach((port, j) => {
      const pp = [...rp, 'ports', j];
      if (!isObj(port)) return error(pp, 'must be a mapping');
      const proto = port.protocol ?? 'TCP';
      if (proto !== 'TCP' && proto !== 'UDP' && proto !== 'SCTP') error([...pp, 'protocol'], `"${String(proto)}" is not TCP, UDP or SCTP`);
      const p = port.port;
      if (typeof p === 'number') {
        if (!Number.isInteger(p) || p < 1 || p > 65535) error([...pp, 'port'], `port ${p} is not in 1-65535`);
      } else if (p !== undefined && p !== null && (typeof p !== 'string' || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(p) || p.length > 15)) {
        error([...pp, 'port'], `"${String(p)}" is neither a port number nor a port name`);
      }
      if (port.endPort !== undefined && port.endPort !== null) {
        if (typeof p !== 'number') error([...pp, 'endPort'], 'requires a numeric port');
        else if (typeof port.endPort !== 'number' || port.endPort < p || port.endPort > 65535) error([...pp, 'endPort'], `must be between port ${p} and 65535`);
      }
    });
  });
}

const ACTIONS = new Set(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']);

function validateAuthorizationPolicy(spec: Obj, error: Report): void {
  const action = spec.action ?? 'ALLOW';
  if (typeof action !== 'string' || !ACTIONS.has(action)) error(['spec', 'action'], `"${String(action)}" is not ALLOW, DENY, AUDIT or CUSTOM`);
  if (action === 'CUSTOM' && !isObj(spec.provider)) error(['spec', 'provider'], 'a CUSTOM policy needs a provider');
  if (action !== 'CUSTOM' && spec.provider !== undefined) error(['spec', 'provider'], 'provider is only allowed with action CUSTOM');
  if (spec.selector !== undefined && (spec.targetRef !== undefined || spec.targetRefs !== undefined)) error(['spec', 'selector'], 'selector and targetRef(s) are mutually exclusive');
  if (spec.selector !== undefined && !(isObj(spec.selector) && (spec.selector.matchLabels === undefined || isObj(spec.selector.matchLabels)))) {
    error(['spec', 'selector'], 'must be {matchLabels: {…}}');
  }
  list(spec.rules).forEach((rule, i) => {
    const rp = ['spec', 'rules', i];
    if (!isObj(rule)) return error(rp, 'must be a mapping');
    list(rule.from).forEach((f, j) => {
      const src = isObj(f) ? f.source : undefined;
      if (!isObj(src)) return error([...rp, 'from', j, 'source'], 'required field is missing');
      for (const k of ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks']) {
        list(src[k]).forEach((c, n) => validateCidr(c, [...rp, 'from', j, 'source', k, n], error, false));
      }
    });
    list(rule.to).forEach((t, j) => {
      const op = isObj(t) ? t.operation : undefined;
      if (!isObj(op)) return error([...rp, 'to', j, 'operation'], 'required field is missing');
      for (const k of ['ports', 'notPorts']) {
        list(op[k]).forEach((p, n) => {
          const s = String(p);
          if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 65535) error([...rp, 'to', j, 'operation', k, n], `"${s}" is not a port number`);
        });
      }
    });
    list(rule.when).forEach((c, j) => {
      const cp = [...rp, 'when', j];
      if (!isObj(c) || typeof c.key !== 'string' || c.key === '') return error([...cp, 'key'], 'required field is missing');
      if (list(c.values).length === 0 && list(c.notValues).length === 0) error(cp, 'values or notValues is required');
      if (c.key === 'source.ip' || c.key === 'remote.ip') {
        for (const k of ['values', 'notValues']) list(c[k]).forEach((v, n) => validateCidr(v, [...cp, k, n], error, false));
      }
    });
  });
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Istio's RequestAuthentication checks (jwtRules), plus what would make a rule unusable at request time. */
function validateRequestAuthentication(spec: Obj, error: Report, warn: Report): void {
  if (spec.selector !== undefined && (spec.targetRef !== undefined || spec.targetRefs !== undefined)) error(['spec', 'selector'], 'selector and targetRef(s) are mutually exclusive');
  if (spec.selector !== undefined && !(isObj(spec.selector) && (spec.selector.matchLabels === undefined || isObj(spec.selector.matchLabels)))) {
    error(['spec', 'selector'], 'must be {matchLabels: {…}}');
  }
  if (spec.targetRef !== undefined || spec.targetRefs !== undefined) warn(['spec', spec.targetRef !== undefined ? 'targetRef' : 'targetRefs'], 'targetRef(s) select gateways and waypoints; not applied by a sidecar');
  const issuers = new Set<string>();
  list(spec.jwtRules).forEach((rule, i) => {
    const rp = ['spec', 'jwtRules', i];
    if (!isObj(rule)) return error(rp, 'must be a mapping');
    if (typeof rule.issuer !== 'string' || rule.issuer === '') error([...rp, 'issuer'], 'required field is missing');
    else if (issuers.has(rule.issuer)) warn([...rp, 'issuer'], `issuer "${rule.issuer}" is named by an earlier rule too: a token is accepted if either rule verifies it`);
    else issuers.add(rule.issuer);
    if (rule.jwksUri !== undefined) {
      let ok = false;
      try { ok = ['http:', 'https:'].includes(new URL(String(rule.jwksUri)).protocol); } catch { ok = false; }
      if (!ok) error([...rp, 'jwksUri'], `"${String(rule.jwksUri)}" is not an http(s) URL`);
      else if (String(rule.jwksUri).toLowerCase().startsWith('http:')) warn([...rp, 'jwksUri'], 'plain http: the sidecar fetches keys over https only, unless remora run --jwks-allow-http names this issuer (a test issuer); otherwise its tokens get 401');
    }
    if (rule.jwks !== undefined) {
      let keys: unknown;
      try { keys = (JSON.parse(String(rule.jwks)) as Obj).keys; } catch { keys = undefined; }
      if (!Array.isArray(keys) || keys.length === 0) error([...rp, 'jwks'], 'must be a JSON Web Key Set: {"keys": [ … ]}');
    }
    list(rule.fromHeaders).forEach((h, j) => {
      if (!isObj(h) || typeof h.name !== 'string' || !HEADER_NAME.test(h.name)) error([...rp, 'fromHeaders', j, 'name'], 'must be a header name');
    });
    list(rule.fromParams).forEach((q, j) => {
      if (typeof q !== 'string' || q === '') error([...rp, 'fromParams', j], 'must be a query parameter name');
    });
    if (rule.outputPayloadToHeader !== undefined && (typeof rule.outputPayloadToHeader !== 'string' || !HEADER_NAME.test(rule.outputPayloadToHeader))) {
      error([...rp, 'outputPayloadToHeader'], 'must be a header name');
    }
    list(rule.outputClaimToHeaders).forEach((c, j) => {
      const cp = [...rp, 'outputClaimToHeaders', j];
      if (!isObj(c) || typeof c.header !== 'string' || !HEADER_NAME.test(c.header)) error([...cp, 'header'], 'must be a header name');
      if (!isObj(c) || typeof c.claim !== 'string' || c.claim === '') error([...cp, 'claim'], 'required field is missing');
    });
    if (rule.timeout !== undefined && !/^\d+(\.\d+)?(ms|s|m)$/.test(String(rule.timeout))) error([...rp, 'timeout'], `"${String(rule.timeout)}" is not a duration (e.g. 5s)`);
  });
}

function validateSidecar(spec: Obj, error: Report, warn: Report): void {
  if (spec.workloadSelector !== undefined && !(isObj(spec.workloadSelector) && isObj(spec.workloadSelector.labels))) {
    error(['spec', 'workloadSelector'], 'must be {labels: {…}}');
  }
  list(spec.egress).forEach((l, i) => {
    const lp = ['spec', 'egress', i];
    if (!isObj(l)) return error(lp, 'must be a mapping');
    const hosts = list(l.hosts);
    if (hosts.length === 0) error([...lp, 'hosts'], 'egress listener must have at least one host');
    hosts.forEach((h, j) => {
      const s = typeof h === 'string' ? h : '';
      const slash = s.indexOf('/');
      if (slash <= 0 || slash === s.length - 1 || s.indexOf('/', slash + 1) >= 0) {
        error([...lp, 'hosts', j], `"${String(h)}" must be namespace/dnsName (e.g. "./*", "istio-system/*", "*/api.example.com")`);
        return;
      }
      const dns = s.slice(slash + 1);
      if (dns !== '*' && !/^(\*\.)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*$/.test(dns)) {
        error([...lp, 'hosts', j], `"${dns}" is not a DNS name or a wildcard (*, *.example.com)`);
      }
    });
    if (l.port !== undefined) warn([...lp, 'port'], 'port-bound egress listeners are not applied by Remora: the hosts are reachable on every port');
  });
  if (spec.ingress !== undefined) warn(['spec', 'ingress'], 'Sidecar ingress listeners are not applied by Remora (use --app-port)');
  const mode = (spec.outboundTrafficPolicy as Obj | undefined)?.mode;
  if (spec.outboundTrafficPolicy !== undefined && mode !== undefined && mode !== 'ALLOW_ANY' && mode !== 'REGISTRY_ONLY') {
    error(['spec', 'outboundTrafficPolicy', 'mode'], `"${String(mode)}" is not ALLOW_ANY or REGISTRY_ONLY`);
  }
}
