// Every manifest under deploy/ validates against the Kubernetes OpenAPI schemas (kubernetes-models),
// Istio documents (also those embedded in the remora-config ConfigMap) against the Istio schemas and
// `remora validate`'s rules, kustomizations list existing files, and gen-certs.sh makes a usable cert.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import * as coreV1 from 'kubernetes-models/v1';
import * as appsV1 from 'kubernetes-models/apps/v1';
import * as batchV1 from 'kubernetes-models/batch/v1';
import * as rbacV1 from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as admissionV1 from 'kubernetes-models/admissionregistration.k8s.io/v1';
import * as networkingV1 from 'kubernetes-models/networking.k8s.io/v1';
import * as istioNetworking from '@kubernetes-models/istio/networking.istio.io/v1beta1';
import * as istioSecurity from '@kubernetes-models/istio/security.istio.io/v1beta1';
import { parseDocuments } from '../../src/config/parse.js';
import { validateResources } from '../../src/config/validate.js';
import { injectObject } from '../../src/inject/inject.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const deployDir = join(root, 'deploy');

type Model = new (data: any) => { validate(): void };
type Module = Record<string, unknown>;
// Istio's v1 objects have the same spec as v1beta1 (ECOSYSTEM.md): validate them with the v1beta1 models.
const MODELS: Record<string, Module> = {
  v1: coreV1,
  'apps/v1': appsV1,
  'batch/v1': batchV1,
  'rbac.authorization.k8s.io/v1': rbacV1,
  'admissionregistration.k8s.io/v1': admissionV1,
  'networking.k8s.io/v1': networkingV1,
  'networking.istio.io/v1': istioNetworking,
  'networking.istio.io/v1beta1': istioNetworking,
  'security.istio.io/v1': istioSecurity,
  'security.istio.io/v1beta1': istioSecurity,
};

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const yamlFiles = walk(deployDir).filter((f) => /\.ya?ml$/.test(f));
const isKustomization = (f: string): boolean => /(^|\/)kustomization\.ya?ml$/.test(f);

interface Doc {
  file: string;
  index: number;
  obj: Record<string, any>;
}

const docs: Doc[] = yamlFiles
  .filter((f) => !isKustomization(f))
  .flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8')).map((d, index) => {
      expect(d.errors, `${file} document ${index}`).toEqual([]);
      return { file: relative(root, file), index, obj: d.toJS() as Record<string, any> };
    }),
  );

/**
 * cert-manager's kinds have no kubernetes-models package: checked by hand for what would make them fail or mean
 * something else (cert-manager's own webhook rejects the same).
 */
function validateCertManager(obj: Record<string, any>): void {
  const spec = obj.spec ?? {};
  if (obj.kind === 'ClusterIssuer' || obj.kind === 'Issuer') {
    const types = ['selfSigned', 'ca', 'acme', 'vault', 'venafi'].filter((t) => spec[t] !== undefined);
    if (types.length !== 1) throw new Error(`${obj.kind} needs exactly one issuer type, has ${types.join(', ') || 'none'}`);
    if (spec.ca !== undefined && typeof spec.ca.secretName !== 'string') throw new Error('ca.secretName is required');
    return;
  }
  if (obj.kind === 'Certificate') {
    if (typeof spec.secretName !== 'string') throw new Error('secretName is required');
    if (typeof spec.issuerRef?.name !== 'string') throw new Error('issuerRef.name is required');
    if (!spec.isCA && !spec.commonName && !(spec.uris?.length > 0) && !(spec.dnsNames?.length > 0)) throw new Error('a subject or SAN is required');
    for (const u of spec.uris ?? []) if (!/^spiffe:\/\/[^/]+\/ns\/[^/]+\/sa\/[^/]+$/.test(u)) throw new Error(`uri ${u} is not a SPIFFE workload ID`);
    return;
  }
  throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
}

/**
 * approver-policy's CertificateRequestPolicy (no kubernetes-models package either): the fields its webhook requires,
 * and no unknown top-level spec field (a typo would silently widen or void the policy).
 */
function validateCertificateRequestPolicy(obj: Record<string, any>): void {
  if (obj.kind !== 'CertificateRequestPolicy') throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
  const spec = obj.spec ?? {};
  for (const k of Object.keys(spec)) if (!['selector', 'allowed', 'constraints', 'plugins'].includes(k)) throw new Error(`unknown field spec.${k}`);
  if (typeof spec.selector?.issuerRef !== 'object' && typeof spec.selector?.namespace !== 'object') throw new Error('spec.selector needs issuerRef or namespace');
  for (const [field, rule] of Object.entries(spec.allowed ?? {}) as Array<[string, any]>) {
    if (rule === null || typeof rule !== 'object' || Array.isArray(rule)) continue;
    if (rule.required === true && rule.values === undefined && rule.value === undefined && rule.validations === undefined) throw new Error(`allowed.${field}: required needs values, value or validations`);
    for (const v of rule.validations ?? []) if (typeof v.rule !== 'string' || v.rule === '') throw new Error(`allowed.${field}.validations: a rule is required`);
  }
}

function validateWithModel(obj: Record<string, any>): void {
  if (obj.apiVersion === 'cert-manager.io/v1') return validateCertManager(obj);
  if (obj.apiVersion === 'policy.cert-manager.io/v1alpha1') return validateCertificateRequestPolicy(obj);
  const mod = MODELS[obj.apiVersion];
  if (!mod) throw new Error(`no schema for apiVersion ${obj.apiVersion}`);
  const Ctor = mod[obj.kind] as Model | undefined;
  if (typeof Ctor !== 'function') throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
  // The Istio models pin apiVersion to v1beta1 in their schema.
  const data = obj.apiVersion.endsWith('istio.io/v1') ? { ...obj, apiVersion: `${obj.apiVersion}beta1` } : obj;
  new Ctor(data).validate();
}

/** Istio documents: those at top level plus those inside ConfigMaps (the files the sidecars read). */
function istioTexts(): Array<{ name: string; text: string }> {
  const out: Array<{ name: string; text: string }> = [];
  for (const d of docs) {
    if (d.obj.kind !== 'ConfigMap') continue;
    for (const [key, value] of Object.entries(d.obj.data ?? {})) out.push({ name: `${d.file}[data.${key}]`, text: String(value) });
  }
  return out;
}

describe('deploy/ manifests', () => {
  it('has the expected objects', () => {
    const kinds = docs.map((d) => `${d.obj.kind}/${d.obj.metadata?.name}`);
    for (const k of [
      'Namespace/remora-system',
      'Deployment/remora-injector',
      'Service/remora-injector',
      'MutatingWebhookConfiguration/remora-injector',
      'ServiceAccount/remora-injector',
      'ClusterRole/remora-proxy',
      'ConfigMap/remora-config',
      'Namespace/remora-demo',
      'Deployment/app-1',
      'Deployment/app-2',
      'Service/demo',
      'Service/demo-lb',
    ]) {
      expect(kinds).toContain(k);
    }
  });

  it('the schema check rejects what the API server would (so the checks below mean something)', () => {
    const dep = structuredClone(docs.find((d) => d.obj.kind === 'Deployment')!.obj);
    dep.spec.replicas = 'two';
    expect(() => validateWithModel(dep)).toThrow(/replicas/);
    const vs = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'x' }, spec: { http: [{ route: [{ weight: '80' }] }] } };
    expect(() => validateWithModel(vs)).toThrow(/weight/);
    expect(() => validateWithModel({ apiVersion: 'example.com/v1', kind: 'Widget' })).toThrow(/no schema/);
  });

  for (const d of docs) {
    it(`${d.file}#${d.index} ${d.obj.kind}/${d.obj.metadata?.name} validates against its OpenAPI schema`, () => {
      expect(() => validateWithModel(d.obj)).not.toThrow();
    });
  }

  it('embedded Istio config validates against the Istio schemas and remora validate', () => {
    const texts = istioTexts();
    expect(texts.length).toBeGreaterThan(0);
    for (const { name, text } of texts) {
      const parsed = parseDocuments(text, name, 'remora-demo');
      expect(parsed.errors).toEqual([]);
      expect(parsed.resources.map((r) => r.kind).sort()).toEqual(['DestinationRule', 'VirtualService']);
      for (const doc of parseAllDocuments(text)) expect(() => validateWithModel(doc.toJS())).not.toThrow();
      expect(validateResources(parsed.resources)).toEqual([]);
    }
  });

  it('the sample VirtualService splits 80/20 over the DestinationRule subsets v1/v2', () => {
    const [{ text }] = istioTexts() as [{ name: string; text: string }];
    const objs = parseAllDocuments(text).map((d) => d.toJS());
    const vs = objs.find((o) => o.kind === 'VirtualService');
    const dr = objs.find((o) => o.kind === 'DestinationRule');
    expect(vs.spec.http[0].route.map((r: any) => [r.destination.subset, r.weight])).toEqual([['v1', 80], ['v2', 20]]);
    expect(dr.spec.subsets).toEqual([{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }]);
    const versions = docs.filter((d) => d.obj.kind === 'Deployment' && d.obj.metadata.labels?.app === 'demo').map((d) => d.obj.spec.template.metadata.labels.version);
    expect(versions.sort()).toEqual(['v1', 'v2']);
  });

  it('the ClusterRole grants exactly get/list/watch on what remora run --kubernetes reads', () => {
    const role = docs.find((d) => d.obj.kind === 'ClusterRole')!.obj;
    const grants = (role.rules as any[]).flatMap((r) => r.resources.map((res: string) => `${r.apiGroups[0] || 'core'}/${res}:${[...r.verbs].sort().join(',')}`));
    expect(grants.sort()).toEqual(
      [
        'core/services',
        'core/pods',
        'core/namespaces',
        'discovery.k8s.io/endpointslices',
        'networking.istio.io/virtualservices',
        'networking.istio.io/destinationrules',
        'networking.istio.io/serviceentries',
        'networking.istio.io/workloadentries',
        'networking.istio.io/sidecars',
        'networking.k8s.io/networkpolicies',
        'security.istio.io/authorizationpolicies',
        'security.istio.io/requestauthentications',
        'security.istio.io/peerauthentications',
        'gateway.networking.k8s.io/httproutes',
        'gateway.networking.k8s.io/grpcroutes',
        'gateway.networking.k8s.io/tcproutes',
        'gateway.networking.k8s.io/tlsroutes',
      ].map((g) => `${g}:get,list,watch`).sort(),
    );
  });

  it('the webhook configuration fails closed for namespaces that ask for the sidecar (fail-open only by their own label), is side-effect free and selects both namespace labels', () => {
    const mwc = docs.find((d) => d.obj.kind === 'MutatingWebhookConfiguration')!.obj;
    const hooks = mwc.webhooks as any[];
    expect(hooks.map((h) => [h.name, h.failurePolicy])).toEqual([
      ['remora-injection.remora.io', 'Fail'],
      ['istio-injection.remora.io', 'Fail'],
      ['remora-injection-fail-open.remora.io', 'Ignore'],
    ]);
    expect(hooks[2].namespaceSelector).toEqual({ matchLabels: { 'remora-injection': 'fail-open' } });
    for (const h of hooks) {
      expect(h).toMatchObject({ admissionReviewVersions: ['v1'], sideEffects: 'None', timeoutSeconds: 5, reinvocationPolicy: 'Never' });
      expect(h.clientConfig.service).toEqual({ name: 'remora-injector', namespace: 'remora-system', path: '/inject', port: 443 });
      expect(h.rules).toEqual([{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
      expect(h.objectSelector.matchExpressions).toEqual([
        { key: 'sidecar.istio.io/inject', operator: 'NotIn', values: ['false'] },
        { key: 'remora.io/inject', operator: 'NotIn', values: ['false'] },
      ]);
    }
    expect(hooks[0].namespaceSelector).toEqual({ matchLabels: { 'remora-injection': 'enabled' } });
    expect(hooks[1].namespaceSelector.matchExpressions).toContainEqual({ key: 'istio-injection', operator: 'In', values: ['enabled'] });
    const svc = docs.find((d) => d.obj.kind === 'Service' && d.obj.metadata.name === 'remora-injector')!.obj;
    expect(svc.spec.ports[0]).toMatchObject({ port: 443, targetPort: 'https-webhook' });
    const dep = docs.find((d) => d.obj.kind === 'Deployment' && d.obj.metadata.name === 'remora-injector')!.obj;
    expect(dep.spec.template.spec.containers[0].ports[0]).toMatchObject({ name: 'https-webhook', containerPort: 9443 });
  });

  it('the injector is not injected; the sample namespace is', () => {
    const dep = docs.find((d) => d.obj.kind === 'Deployment' && d.obj.metadata.name === 'remora-injector')!.obj;
    expect(injectObject(dep).changed).toBe(false);
    const ns = docs.find((d) => d.obj.kind === 'Namespace' && d.obj.metadata.name === 'remora-demo')!.obj;
    expect(ns.metadata.labels['remora-injection']).toBe('enabled');
  });

  it('injected sample workloads still validate against the Kubernetes schemas', () => {
    for (const d of docs.filter((x) => x.obj.metadata?.namespace === 'remora-demo' && x.obj.kind === 'Deployment')) {
      for (const o of [{}, { nativeSidecar: false, iptables: true }]) {
        const r = injectObject(d.obj, { image: 'ghcr.io/remora-mesh/remora:0.1.0', ...o });
        expect(r.changed).toBe(true);
        expect(() => validateWithModel(r.object as Record<string, any>)).not.toThrow();
      }
    }
  });

  it('every kustomization lists existing files or directories, and every manifest is listed', () => {
    const listed = new Set<string>();
    const kustomizations = yamlFiles.filter(isKustomization);
    expect(kustomizations.map((f) => relative(deployDir, f)).sort()).toEqual(['config/kustomization.yaml', 'injector/kustomization.yaml', 'kustomization.yaml', 'mtls/kustomization.yaml', 'sample/kustomization.yaml']);
    for (const k of kustomizations) {
      const obj = parseAllDocuments(readFileSync(k, 'utf8'))[0]!.toJS();
      expect(obj.apiVersion).toBe('kustomize.config.k8s.io/v1beta1');
      expect(obj.kind).toBe('Kustomization');
      for (const r of obj.resources as string[]) {
        const p = join(dirname(k), r);
        expect(existsSync(p), `${relative(root, k)} lists ${r}`).toBe(true);
        if (statSync(p).isDirectory()) expect(existsSync(join(p, 'kustomization.yaml')), `${r} has a kustomization.yaml`).toBe(true);
        listed.add(p);
      }
    }
    for (const f of yamlFiles.filter((x) => !isKustomization(x))) expect(listed.has(f), `${relative(root, f)} is in a kustomization`).toBe(true);
  });

  it('gen-certs.sh makes a CA and a serving certificate for remora-injector.remora-system.svc', () => {
    const out = mkdtempSync(join(tmpdir(), 'remora-certs-'));
    try {
      const stdout = execFileSync('sh', [join(deployDir, 'injector', 'gen-certs.sh'), out], { encoding: 'utf8', timeout: 60_000 });
      const ca = readFileSync(join(out, 'ca.crt'), 'utf8');
      expect(stdout).toContain(`caBundle: ${Buffer.from(ca).toString('base64')}`);
      expect(execFileSync('openssl', ['verify', '-CAfile', join(out, 'ca.crt'), join(out, 'tls.crt')], { encoding: 'utf8' })).toMatch(/OK/);
      const san = execFileSync('openssl', ['x509', '-in', join(out, 'tls.crt'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' });
      expect(san).toContain('DNS:remora-injector.remora-system.svc');
      expect(statSync(join(out, 'tls.key')).mode & 0o077).toBe(0);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('deploy/mtls', () => {
  const of = (kind: string, name: string): Record<string, any> => docs.find((d) => d.file.startsWith('deploy/mtls/') && d.obj.kind === kind && d.obj.metadata?.name === name)!.obj;

  it('a CA ClusterIssuer bootstrapped from a self-signed root; STRICT for the sample; no Certificate that names an identity', () => {
    expect(of('ClusterIssuer', 'remora-mesh-ca').spec.ca.secretName).toBe(of('Certificate', 'remora-mesh-root').spec.secretName);
    expect(of('PeerAuthentication', 'default').spec.mtls.mode).toBe('STRICT');
    // A Certificate naming a SPIFFE ID is what any namespace could write for any identity: none is shipped.
    expect(docs.filter((d) => d.file.startsWith('deploy/mtls/') && d.obj.kind === 'Certificate' && !d.obj.spec.isCA)).toEqual([]);
    expect(() => validateWithModel({ apiVersion: 'cert-manager.io/v1', kind: 'Certificate', spec: { secretName: 'x', issuerRef: { name: 'y' }, uris: ['https://x'] } })).toThrow(/not a SPIFFE workload ID/);
  });

  it('identities are tied to the requesting service account: approver-policy for the mesh issuer, used by every service account', () => {
    const policy = of('CertificateRequestPolicy', 'remora-mesh-workload-identity');
    expect(policy.spec.selector.issuerRef).toEqual({ name: 'remora-mesh-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });
    expect(policy.spec.allowed.isCA).toBe(false);
    expect(policy.spec.allowed.uris.required).toBe(true);
    const rule = policy.spec.allowed.uris.validations.map((v: { rule: string }) => v.rule).join(' ');
    // The one URI must be built from the requester's own namespace and name.
    expect(rule).toMatch(/self == 'spiffe:\/\/cluster\.local\/ns\/' \+\s*serviceAccount\(cr\.username\)\.getNamespace\(\) \+ '\/sa\/' \+ serviceAccount\(cr\.username\)\.getName\(\)/);
    expect(of('ClusterRole', 'remora-mesh-workload-identity').rules).toEqual([{ apiGroups: ['policy.cert-manager.io'], resources: ['certificaterequestpolicies'], verbs: ['use'], resourceNames: ['remora-mesh-workload-identity'] }]);
    expect(of('ClusterRoleBinding', 'remora-mesh-workload-identity').subjects).toEqual([{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:serviceaccounts' }]);
    // The sample's accounts may create CertificateRequests in their namespace (csi-driver-spiffe asks as them).
    expect(of('RoleBinding', 'remora-mesh-certificate-requests').subjects).toEqual([{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:serviceaccounts:remora-demo' }]);
    expect(() => validateWithModel({ apiVersion: 'policy.cert-manager.io/v1alpha1', kind: 'CertificateRequestPolicy', spec: { selector: { issuerRef: {} }, allowd: {} } })).toThrow(/unknown field spec.allowd/);
  });
});
