/**
 * One resource alone: the structural pass (schema.ts, what the API server would reject) and its kind's rules (Istio's
 * own validation; authz, Gateway API routes and Kubernetes registry objects in their modules). Pure: the answer
 * depends on the resource only, so a change re-validates just the resources it touches.
 */
import type { ConfigError, Resource } from '../resource.js';
import { ISTIO_API_VERSIONS, ISTIO_KINDS, type IstioKind } from '../types.js';
import { OBJECT_SCHEMA, SPEC_SCHEMAS, checkSchema, type SchemaIssue } from '../schema.js';
import { isK8sName, isK8sNamespace } from '../hosts.js';
import { isAuthzKind, validateAuthzResource } from '../../authz/validate-authz.js';
import { validateGatewayRoute } from '../../gateway/validate.js';
import { isGatewayRoute } from '../../gateway/types.js';
import { isKubernetesRegistryKind, validateKubernetesObject } from '../../gateway/k8s-validate.js';
import { Reporter, checkLabels, checkRegex, objOf, strOf } from './common.js';
import { validateVirtualService } from './virtual-service.js';
import { validateDestinationRule } from './destination-rule.js';
import { validateServiceEntry, validateWorkloadEntrySpec } from './service-entry.js';

export function isIstioKind(kind: string): kind is IstioKind {
  return (ISTIO_KINDS as readonly string[]).includes(kind);
}

function issuesTo(rep: Reporter, issues: SchemaIssue[]): void {
  for (const i of issues) {
    if (i.severity === 'warning') rep.warn(i.path, i.message);
    else rep.error(i.path, i.message);
  }
}

/**
 * Whether `r` takes part in the cross-resource checks (duplicates, subsets, delegates): an Istio kind of a supported
 * apiVersion whose spec is a mapping, a Gateway API route, or a Kubernetes registry object. What validateOne would
 * say, without validating.
 */
export function takesPart(r: Resource): boolean {
  const { kind, apiVersion } = r;
  if (!isIstioKind(kind)) {
    if (!apiVersion || !kind || isAuthzKind(apiVersion, kind)) return false;
    return isGatewayRoute(apiVersion, kind) || isKubernetesRegistryKind(apiVersion, kind);
  }
  return (ISTIO_API_VERSIONS as readonly string[]).includes(apiVersion) && objOf(r.raw.spec) !== undefined;
}

/** Every problem of one resource on its own, in the order they are found. */
export function validateOne(r: Resource): ConfigError[] {
  const out: ConfigError[] = [];
  const rep = new Reporter(r, out);
  const raw = r.raw;
  const kind = r.kind;
  const apiVersion = r.apiVersion;
  if (!isIstioKind(kind)) {
    if (!apiVersion || !kind) {
      rep.error(apiVersion ? ['kind'] : ['apiVersion'], 'apiVersion and kind are required');
    } else if (isAuthzKind(apiVersion, kind)) {
      out.push(...validateAuthzResource(r)); // NetworkPolicy, AuthorizationPolicy, Sidecar (src/authz/validate-authz.ts)
    } else if (isGatewayRoute(apiVersion, kind)) {
      out.push(...validateGatewayRoute(r, { checkRegex })); // HTTPRoute, GRPCRoute, TCPRoute, TLSRoute (src/gateway/)
    } else if (isKubernetesRegistryKind(apiVersion, kind)) {
      out.push(...validateKubernetesObject(r)); // Service, EndpointSlice, Pod in files: registry hosts
    } else {
      rep.warn([], `${kind} (${apiVersion}) is not applied by a sidecar; ignored`);
    }
    return out;
  }
  if (!(ISTIO_API_VERSIONS as readonly string[]).includes(apiVersion)) {
    rep.error(['apiVersion'], `unsupported apiVersion "${apiVersion}" for ${kind}: use ${ISTIO_API_VERSIONS.join(', ')}`);
    return out;
  }
  const issues: SchemaIssue[] = [];
  checkSchema(raw, OBJECT_SCHEMA, [], issues);
  issuesTo(rep, issues);
  const md = objOf(raw.metadata);
  const name = strOf(md?.name);
  if (name !== undefined && name !== '' && !isK8sName(name)) {
    rep.error(['metadata', 'name'], `invalid name "${name}": must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.'; at most 253 characters)`);
  } else if (md && name === '') rep.error(['metadata', 'name'], 'required field is missing');
  const ns = strOf(md?.namespace);
  if (ns !== undefined && ns !== '' && !isK8sNamespace(ns)) rep.error(['metadata', 'namespace'], `invalid namespace "${ns}": must be a lowercase RFC 1123 label (a-z, 0-9, '-'; at most 63 characters)`);
  if (md) checkLabels(rep, md.labels, ['metadata', 'labels']);

  const spec = objOf(raw.spec);
  if (!spec) {
    if (raw.spec !== undefined && raw.spec !== null) rep.error(['spec'], 'spec must be a mapping');
    return out;
  }
  const specIssues: SchemaIssue[] = [];
  checkSchema(spec, SPEC_SCHEMAS[kind], ['spec'], specIssues);
  issuesTo(rep, specIssues);
  switch (kind) {
    case 'VirtualService':
      validateVirtualService(rep, spec);
      break;
    case 'DestinationRule':
      validateDestinationRule(rep, spec);
      break;
    case 'ServiceEntry':
      validateServiceEntry(rep, spec);
      break;
    case 'WorkloadEntry':
      validateWorkloadEntrySpec(rep, spec);
      break;
  }
  return out;
}
