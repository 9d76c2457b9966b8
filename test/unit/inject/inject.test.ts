// Unit tests of the pure pod-template mutation on the fixture manifests under test/fixtures/inject/.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  injectObject,
  oldSpaceMiB,
  quantityBytes,
  podPatch,
  INIT_NAME,
  SIDECAR_NAME,
  STATUS_ANNOTATION,
  type AppProbers,
} from '../../../src/inject/inject.js';
import { applyPatch } from '../../../src/inject/json-patch.js';

type Obj = Record<string, any>;

function fixture(name: string): Obj[] {
  const text = readFileSync(new URL(`../../fixtures/inject/${name}`, import.meta.url), 'utf8');
  return parseAllDocuments(text).map((d) => d.toJS() as Obj);
}

function byKind(docs: Obj[], kind: string): Obj {
  const d = docs.find((x) => x.kind === kind);
  if (!d) throw new Error(`no ${kind} in fixture`);
  return d;
}

function template(obj: Obj): Obj {
  if (obj.kind === 'Pod') return obj;
  if (obj.kind === 'CronJob') return obj.spec.jobTemplate.spec.template;
  return obj.spec.template;
}

function sidecarOf(obj: Obj): Obj {
  const spec = template(obj).spec;
  const all = [...(spec.initContainers ?? []), ...spec.containers];
  const c = all.find((x: Obj) => x.name === SIDECAR_NAME);
  if (!c) throw new Error('no sidecar');
  return c;
}

function env(c: Obj, name: string): Obj | undefined {
  return (c.env as Obj[]).find((e) => e.name === name);
}

const opts = { image: 'registry.test/remora:9.9.9', configMap: 'mesh-config' };

describe('injectObject: workload kinds', () => {
  const docs = fixture('workloads.yaml');
  for (const kind of ['Pod', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ReplicationController', 'Job', 'CronJob']) {
    it(`injects a native sidecar into a ${kind}`, () => {
      const input = byKind(docs, kind);
      const before = structuredClone(input);
      const r = injectObject(input, opts);
      expect(r.changed).toBe(true);
      expect(input).toEqual(before); // never mutates the input
      const out = r.object as Obj;
      const spec = template(out).spec;
      expect(spec.initContainers[0].name).toBe(SIDECAR_NAME);
      expect(spec.initContainers[0].restartPolicy).toBe('Always');
      expect(spec.containers.map((c: Obj) => c.name)).toEqual(template(input).spec.containers.map((c: Obj) => c.name));
      const sc = sidecarOf(out);
      expect(sc.image).toBe('registry.test/remora:9.9.9');
      expect(spec.volumes.find((v: Obj) => v.name === 'remora-config').configMap.name).toBe('mesh-config');
      const status = JSON.parse(template(out).metadata.annotations[STATUS_ANNOTATION]);
      expect(status.initContainers).toEqual([SIDECAR_NAME]);
      expect(status.volumes).toEqual(['remora-config', 'remora-podinfo']);
      // Everything outside the pod template is the same.
      if (kind !== 'Pod') expect({ ...out, spec: undefined }).toEqual({ ...input, spec: undefined });
    });
  }

  it('keeps the app init containers after the sidecar (they get the mesh too)', () => {
    const out = injectObject(byKind(docs, 'Job'), opts).object as Obj;
    expect(template(out).spec.initContainers.map((c: Obj) => c.name)).toEqual([SIDECAR_NAME, 'migrate']);
  });

  it('takes the app ports from TCP containerPorts only', () => {
    const sc = sidecarOf(injectObject(byKind(docs, 'ReplicaSet'), opts).object as Obj);
    expect(sc.args).toEqual(['run', '--config', '/etc/remora/config', '--app-port', '8080', '--labels-file', '/etc/remora/podinfo/labels']);
    const ds = sidecarOf(injectObject(byKind(docs, 'DaemonSet'), opts).object as Obj);
    expect(ds.args).toEqual(['run', '--config', '/etc/remora/config', '--labels-file', '/etc/remora/podinfo/labels']); // no ports: no --app-port
  });

  it('builds the sidecar container as documented', () => {
    const sc = sidecarOf(injectObject(byKind(docs, 'Pod'), opts).object as Obj);
    expect(sc.securityContext).toMatchObject({
      runAsUser: 1337,
      runAsGroup: 1337,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(sc.resources).toEqual({ requests: { cpu: '10m', memory: '40Mi' }, limits: { memory: '128Mi' } });
    expect(sc.ports.map((p: Obj) => p.containerPort)).toEqual([15006, 15021, 15090]);
    expect(sc.ports.some((p: Obj) => p.containerPort === 15000 || p.containerPort === 15001)).toBe(false);
    expect(sc.readinessProbe.httpGet).toEqual({ path: '/healthz/ready', port: 15021, scheme: 'HTTP' });
    expect(sc.startupProbe.httpGet).toEqual({ path: '/healthz/ready', port: 15021, scheme: 'HTTP' });
    expect(env(sc, 'POD_NAME')?.valueFrom.fieldRef.fieldPath).toBe('metadata.name');
    expect(env(sc, 'POD_NAMESPACE')?.valueFrom.fieldRef.fieldPath).toBe('metadata.namespace');
    expect(env(sc, 'INSTANCE_IP')?.valueFrom.fieldRef.fieldPath).toBe('status.podIP');
    expect(env(sc, 'REMORA_LABELS')).toBeUndefined(); // live labels come from the downward-API file instead
    const spec = template(injectObject(byKind(docs, 'Pod'), opts).object as Obj).spec;
    expect(spec.volumes.find((v: Obj) => v.name === 'remora-podinfo').downwardAPI.items).toContainEqual({ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } });
    expect(sc.volumeMounts).toContainEqual({ name: 'remora-podinfo', mountPath: '/etc/remora/podinfo', readOnly: true });
    expect(sc.volumeMounts).toContainEqual({ name: 'remora-config', mountPath: '/etc/remora/config', readOnly: true });
  });

  it('adds prometheus annotations only when the pod has none of its own', () => {
    const pod = byKind(docs, 'Pod');
    const out = injectObject(pod, opts).object as Obj;
    expect(out.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15090', 'prometheus.io/path': '/stats/prometheus' });
    const own = { ...pod, metadata: { ...pod.metadata, annotations: { 'prometheus.io/port': '9102' } } };
    const out2 = injectObject(own, opts).object as Obj;
    expect(out2.metadata.annotations['prometheus.io/port']).toBe('9102');
    expect(out2.metadata.annotations['prometheus.io/scrape']).toBeUndefined();
  });

  it('honours per-pod resource and image annotations', () => {
    const pod = byKind(docs, 'Pod');
    const annotated = {
      ...pod,
      metadata: { ...pod.metadata, annotations: { 'sidecar.istio.io/proxyCPU': '50m', 'sidecar.istio.io/proxyMemoryLimit': '256Mi', 'sidecar.istio.io/proxyImage': 'mine/remora:dev' } },
    };
    const sc = sidecarOf(injectObject(annotated, opts).object as Obj);
    expect(sc.resources).toEqual({ requests: { cpu: '50m', memory: '40Mi' }, limits: { memory: '256Mi' } });
    expect(sc.image).toBe('mine/remora:dev');
    // The heap cap follows the memory limit: 256Mi leaves 224 MiB to V8's old generation (the default 128Mi: 96).
    const nodeOptions = (sc.env as Obj[]).find((e) => e.name === 'NODE_OPTIONS')?.value as string;
    expect(nodeOptions).toBe('--max-old-space-size=224 --max-semi-space-size=1 --v8-pool-size=1');
    const plain = sidecarOf(injectObject(pod, opts).object as Obj);
    expect((plain.env as Obj[]).find((e) => e.name === 'NODE_OPTIONS')?.value).toBe('--max-old-space-size=96 --max-semi-space-size=1 --v8-pool-size=1');
  });

  it('sizes the V8 heap cap from any Kubernetes memory quantity', () => {
    expect(quantityBytes('128Mi')).toBe(134_217_728);
    expect(quantityBytes('1Gi')).toBe(2 ** 30);
    expect(quantityBytes('1G')).toBe(1e9);
    expect(quantityBytes('129e6')).toBe(129e6);
    expect(quantityBytes('134217728')).toBe(134_217_728);
    expect(quantityBytes('0.5Gi')).toBe(2 ** 29);
    expect(quantityBytes('lots')).toBeUndefined();
    expect(quantityBytes('12 Mi')).toBeUndefined();
    expect(oldSpaceMiB('128Mi')).toBe(96);
    expect(oldSpaceMiB('1Gi')).toBe(992);
    expect(oldSpaceMiB('1G')).toBe(921);
    expect(oldSpaceMiB('48Mi')).toBe(24);
    expect(oldSpaceMiB('16Mi')).toBe(16);
    expect(oldSpaceMiB(undefined)).toBe(96);
    expect(oldSpaceMiB('lots')).toBe(96);
  });
});

describe('injectObject: List, non-pod objects, opt-out', () => {
  it('injects the pod templates of List items and leaves the rest', () => {
    const [list] = fixture('list.yaml');
    const r = injectObject(list, opts);
    expect(r.changed).toBe(true);
    const items = (r.object as Obj).items as Obj[];
    expect(items[0]).toEqual(list!.items[0]);
    expect(sidecarOf(items[1]!).name).toBe(SIDECAR_NAME);
  });

  it('returns non-pod objects unchanged (same reference)', () => {
    const svc = byKind(fixture('deployment.yaml'), 'Service');
    const r = injectObject(svc, opts);
    expect(r.changed).toBe(false);
    expect(r.object).toBe(svc);
    expect(r.skipped).toMatch(/Service has no pod template/);
  });

  it('skips every opted-out or host-network pod', () => {
    const reasons = fixture('optout.yaml').map((d) => {
      const r = injectObject(d, opts);
      expect(r.changed).toBe(false);
      expect(r.object).toBe(d);
      return r.skipped;
    });
    expect(reasons).toEqual([
      'opted out by sidecar.istio.io/inject',
      'opted out by remora.io/inject',
      'opted out by remora.io/inject',
      'hostNetwork pods are not injected',
    ]);
  });
});

describe('idempotency', () => {
  const all = [...fixture('workloads.yaml'), ...fixture('deployment.yaml'), ...fixture('list.yaml'), ...fixture('iptables.yaml')];
  for (const native of [true, false]) {
    it(`inject(inject(x)) equals inject(x) for every fixture (native=${native})`, () => {
      for (const doc of all) {
        const o = { ...opts, nativeSidecar: native, iptables: true };
        const once = injectObject(doc, o).object;
        const twice = injectObject(once, o);
        expect(twice.changed).toBe(false);
        expect(twice.object).toEqual(once);
      }
    });
  }

  it('recognises an injected pod by its container even without the status annotation', () => {
    const pod = byKind(fixture('workloads.yaml'), 'Pod');
    const once = injectObject(pod, opts).object as Obj;
    delete once.metadata.annotations[STATUS_ANNOTATION];
    expect(injectObject(once, opts)).toMatchObject({ changed: false, skipped: 'already injected' });
  });
});

describe('native vs classic sidecar', () => {
  it('classic puts the sidecar first in containers with a postStart remora wait', () => {
    const dep = byKind(fixture('deployment.yaml'), 'Deployment');
    const out = injectObject(dep, { ...opts, nativeSidecar: false }).object as Obj;
    const spec = template(out).spec;
    expect(spec.containers.map((c: Obj) => c.name)).toEqual([SIDECAR_NAME, 'reviews']);
    expect(spec.initContainers).toBeUndefined();
    expect(spec.containers[0].restartPolicy).toBeUndefined();
    expect(spec.containers[0].lifecycle).toEqual({ postStart: { exec: { command: ['remora', 'wait', '--timeout', '60s'] } } });
    expect(JSON.parse(template(out).metadata.annotations[STATUS_ANNOTATION])).toMatchObject({ containers: [SIDECAR_NAME], initContainers: [], native: false });
  });

  it('native has no postStart hook: the startup probe gates the app', () => {
    const sc = sidecarOf(injectObject(byKind(fixture('deployment.yaml'), 'Deployment'), opts).object as Obj);
    expect(sc.lifecycle).toBeUndefined();
    expect(sc.startupProbe).toMatchObject({ periodSeconds: 1, failureThreshold: 600 });
  });
});

describe('probe rewriting', () => {
  const dep = byKind(fixture('deployment.yaml'), 'Deployment');

  it('rewrites httpGet probes to the health port and records the originals', () => {
    const out = injectObject(dep, opts).object as Obj;
    const app = template(out).spec.containers.find((c: Obj) => c.name === 'reviews');
    expect(app.livenessProbe).toEqual({ httpGet: { path: '/app-health/reviews/livez', port: 15021, scheme: 'HTTP' }, periodSeconds: 5 });
    expect(app.readinessProbe).toEqual({ httpGet: { path: '/app-health/reviews/readyz', port: 15021, scheme: 'HTTP' }, timeoutSeconds: 2 });
    expect(app.startupProbe).toEqual({ tcpSocket: { port: 9080 } }); // not httpGet: untouched
    const probers = JSON.parse(env(sidecarOf(out), 'REMORA_APP_PROBERS')!.value) as AppProbers;
    expect(probers).toEqual({
      '/app-health/reviews/livez': { httpGet: { path: '/healthz', port: 9080, scheme: 'HTTP' }, timeoutSeconds: 1 },
      '/app-health/reviews/readyz': {
        httpGet: { path: '/ready', port: 9090, scheme: 'HTTP', httpHeaders: [{ name: 'X-Probe', value: 'kubelet' }] },
        timeoutSeconds: 2,
      },
    });
  });

  it('can be turned off by option or by annotation', () => {
    for (const out of [
      injectObject(dep, { ...opts, rewriteProbes: false }).object as Obj,
      injectObject(
        { ...dep, spec: { ...dep.spec, template: { ...dep.spec.template, metadata: { ...dep.spec.template.metadata, annotations: { 'sidecar.istio.io/rewriteAppHTTPProbers': 'false' } } } } },
        opts,
      ).object as Obj,
    ]) {
      const app = template(out).spec.containers.find((c: Obj) => c.name === 'reviews');
      expect(app.livenessProbe.httpGet.port).toBe('http');
      expect(env(sidecarOf(out), 'REMORA_APP_PROBERS')).toBeUndefined();
    }
  });

  it('leaves a probe on an unknown named port alone', () => {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p' },
      spec: { containers: [{ name: 'a', image: 'x', livenessProbe: { httpGet: { path: '/', port: 'nope' } } }] },
    };
    const out = injectObject(pod, opts).object as Obj;
    expect(out.spec.containers[0].livenessProbe).toEqual({ httpGet: { path: '/', port: 'nope' } });
  });
});

describe('iptables init container', () => {
  const dep = byKind(fixture('iptables.yaml'), 'Deployment');

  it('adds remora-init before the sidecar with the capture flags and NET_ADMIN', () => {
    const out = injectObject(dep, { ...opts, iptables: true }).object as Obj;
    const inits = template(out).spec.initContainers as Obj[];
    expect(inits.map((c) => c.name)).toEqual([INIT_NAME, SIDECAR_NAME]);
    const init = inits[0]!;
    expect(init.args).toEqual([
      'iptables',
      '--apply',
      '--app-ports',
      '8080,9090',
      '--exclude-inbound-ports=9090',
      '--include-outbound-ip-ranges=10.0.0.0/8',
      '--exclude-outbound-ip-ranges=10.96.0.1/32,169.254.169.254',
      '--exclude-outbound-ports=5432,6379',
    ]);
    expect(init.securityContext).toMatchObject({ runAsUser: 0, runAsNonRoot: false, capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } });
    // Behind the rules the sidecar runs in capture mode (a connection not redirected is refused); without, explicit.
    const args = (inits[1]!.args as string[]).join(' ');
    expect(args).toContain('--capture-mode redirect');
    const plain = injectObject(dep, opts).object as Obj;
    const sidecar = [...((template(plain).spec.initContainers as Obj[] | undefined) ?? []), ...(template(plain).spec.containers as Obj[])].find((c) => c.name === SIDECAR_NAME)!;
    expect((sidecar.args as string[]).join(' ')).not.toContain('--capture-mode');
  });

  it('refuses a malformed capture annotation', () => {
    const bad = structuredClone(dep);
    bad.spec.template.metadata.annotations['traffic.sidecar.istio.io/excludeOutboundPorts'] = '5432,http';
    expect(() => injectObject(bad, { ...opts, iptables: true })).toThrow(/excludeOutboundPorts: "http" is not a port/);
    // Without iptables the annotation is irrelevant and the pod is injected.
    expect(injectObject(bad, opts).changed).toBe(true);
  });
});

describe('podPatch', () => {
  it('is a JSON patch that turns the pod into injectObject’s result, with escaped annotation keys', () => {
    for (const doc of [...fixture('workloads.yaml'), byKind(fixture('deployment.yaml'), 'Deployment')]) {
      for (const nativeSidecar of [true, false]) {
        const o = { ...opts, nativeSidecar, iptables: true };
        const patch = podPatch(doc, o);
        expect(applyPatch(doc, patch)).toEqual(injectObject(doc, o).object);
      }
    }
    const pod = { ...byKind(fixture('workloads.yaml'), 'Pod') };
    pod.metadata = { ...pod.metadata, annotations: { 'a~b': 'c' } };
    const paths = podPatch(pod, opts).map((p) => p.path);
    expect(paths).toContain('/metadata/annotations/remora.io~1status');
  });

  it('is empty for an opted-out or already injected pod', () => {
    const [opted] = fixture('optout.yaml');
    expect(podPatch(opted, opts)).toEqual([]);
    const injected = injectObject(byKind(fixture('workloads.yaml'), 'Pod'), opts).object;
    expect(podPatch(injected, opts)).toEqual([]);
  });
});

describe('kubernetes discovery flag', () => {
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'x' }] } };
  const argsOf = (o: unknown): string[] => sidecarOf(o as Obj).args;
  it('adds --kubernetes by option, and the pod annotation overrides either way', () => {
    expect(argsOf(injectObject(pod, opts).object)).not.toContain('--kubernetes');
    expect(argsOf(injectObject(pod, { ...opts, kubernetes: true }).object)).toContain('--kubernetes');
    const off = { ...pod, metadata: { name: 'p', annotations: { 'remora.io/kubernetes': 'false' } } };
    expect(argsOf(injectObject(off, { ...opts, kubernetes: true }).object)).not.toContain('--kubernetes');
    const on = { ...pod, metadata: { name: 'p', annotations: { 'remora.io/kubernetes': 'true' } } };
    expect(argsOf(injectObject(on, opts).object)).toContain('--kubernetes');
  });
});

describe('workload certificates (mTLS)', () => {
  const pod = (annotations: Record<string, string> = {}, serviceAccountName?: string): Obj => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop', annotations },
    spec: { ...(serviceAccountName ? { serviceAccountName } : {}), containers: [{ name: 'app', image: 'app', ports: [{ containerPort: 8080 }] }] },
  });

  it('certs: secret mounts <serviceAccount>-mesh-tls and passes --cert-dir', () => {
    const r = injectObject(pod({}, 'cart'), { ...opts, certs: 'secret' });
    const spec = template(r.object as Obj).spec;
    expect(spec.volumes).toContainEqual({ name: 'remora-certs', secret: { secretName: 'cart-mesh-tls' } });
    const c = sidecarOf(r.object as Obj);
    expect(c.args.slice(-2)).toEqual(['--cert-dir', '/var/run/secrets/remora/certs']);
    expect(c.volumeMounts).toContainEqual({ name: 'remora-certs', mountPath: '/var/run/secrets/remora/certs', readOnly: true });
    expect(JSON.parse(template(r.object as Obj).metadata.annotations[STATUS_ANNOTATION]).volumes).toContain('remora-certs');
  });

  it('certs: csi mounts csi-driver-spiffe (the pod\'s own service account is its identity); secret the account\'s Secret', () => {
    const r = injectObject(pod(), { ...opts, certs: 'csi' });
    const vol = (template(r.object as Obj).spec.volumes as Obj[]).find((v) => v.name === 'remora-certs')!;
    // No attribute a pod author could set to name another identity: the driver derives it from the service account.
    expect(vol).toEqual({ name: 'remora-certs', csi: { driver: 'spiffe.csi.cert-manager.io', readOnly: true } });
    expect(injectObject(pod({ 'remora.io/certs': 'secret' }), opts).object).toSatisfy((o: Obj) => template(o).spec.volumes.some((v: Obj) => v.secret?.secretName === 'default-mesh-tls'));
  });

  it('the pod annotation wins: none turns it off, cert-secret names the Secret, anything else is refused', () => {
    const off = injectObject(pod({ 'remora.io/certs': 'none' }), { ...opts, certs: 'secret' });
    expect(sidecarOf(off.object as Obj).args).not.toContain('--cert-dir');
    const named = injectObject(pod({ 'remora.io/certs': 'secret', 'remora.io/cert-secret': 'custom-tls' }), opts);
    expect(template(named.object as Obj).spec.volumes).toContainEqual({ name: 'remora-certs', secret: { secretName: 'custom-tls' } });
    expect(() => injectObject(pod({ 'remora.io/certs': 'vault' }), opts)).toThrow(/remora\.io\/certs: "vault" is not secret, csi or none/);
  });
});
