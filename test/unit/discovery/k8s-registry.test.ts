/**
 * The incremental Kubernetes registry (k8s-registry.ts) against the full mapping (servicesFromKubernetes): equal after
 * every batch of a long random sequence of Service, EndpointSlice and Pod adds, changes and deletes; the Services no
 * event touched keep their ServiceDef objects; only the touched ones are mapped again.
 */
import { describe, expect, it } from 'vitest';
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import type { ServiceDef } from '../../../src/model.js';
import { objectKey, servicesFromKubernetes } from '../../../src/discovery/k8s-mapping.js';
import { KubernetesRegistry, podsNamed, type RegistryKind } from '../../../src/discovery/k8s-registry.js';
import { seededRandom, type Rand } from '../../../src/util/random.js';
import { endpointSlice, pod, service } from '../../support/k8s-objects.js';

const opts = { clusterDomain: 'cluster.local' };
type Obj = V1Service | V1EndpointSlice | V1Pod;

const NAMESPACES = ['a', 'b'];
const SERVICES = ['s0', 's1', 's2', 's3', 's4', 's5'];
const SLICES = ['x0', 'x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7', 'x8'];
const PODS = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8', 'p9'];
const LABEL_SETS: Array<Record<string, string>> = [{ app: 'x', version: 'v1' }, { app: 'x', version: 'v2' }, { app: 'y' }, {}];

const pick = <T,>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

function randomService(r: Rand, name: string, ns: string): V1Service {
  const kind = r();
  const portName = pick(r, ['http', 'grpc-x', 'tcp', 'web', '']);
  const targetPort = pick(r, [8080, 'web', '9090', undefined]);
  if (kind < 0.1) return service(name, ns, [{ name: portName, port: 80 }], { type: 'ExternalName', externalName: pick(r, ['ext.example.com.', 'db.example.org']) }) as V1Service;
  const headless = kind < 0.3;
  const ports = [{ name: portName, port: 80, ...(targetPort !== undefined ? { targetPort } : {}) }];
  if (r() < 0.3) ports.push({ name: 'metrics', port: 9100 });
  return service(name, ns, ports, headless ? { clusterIP: 'None' } : { clusterIP: `10.96.0.${Math.floor(r() * 5)}`, ...(r() < 0.2 ? { clusterIPs: ['10.96.0.9', 'fd00::9'] } : {}) }) as V1Service;
}

function randomSlice(r: Rand, name: string, ns: string): V1EndpointSlice {
  const owner = r() < 0.1 ? undefined : pick(r, SERVICES);
  const eps = Array.from({ length: Math.floor(r() * 4) }, () => ({
    ip: `10.0.0.${Math.floor(r() * 6)}`,
    ...(r() < 0.8 ? { pod: pick(r, PODS) } : {}),
    ready: pick(r, [true, true, true, false, null] as const),
    terminating: r() < 0.1,
    ...(r() < 0.3 ? { hostname: pick(r, ['h0', 'h1', 'h2']) } : {}),
  }));
  const ports = [{ name: pick(r, ['http', 'web', 'metrics', '']), port: pick(r, [8080, 8081, 9100]) }];
  const s = endpointSlice(name, ns, owner ?? 'unused', eps, ports, r() < 0.15 ? 'IPv6' : 'IPv4') as V1EndpointSlice;
  if (owner === undefined) s.metadata!.labels = {};
  return s;
}

function randomPod(r: Rand, name: string, ns: string): V1Pod {
  const p = pod(name, ns, `10.0.0.${Math.floor(r() * 6)}`, { ...pick(r, LABEL_SETS) }) as V1Pod;
  if (r() < 0.5) p.spec = { ...p.spec!, serviceAccountName: pick(r, ['sa-1', 'sa-2', 'default']) };
  return p;
}

/** The Services that read an object (before or after a change), as the test sees it: a superset of what must be mapped. */
function readers(model: Map<RegistryKind, Map<string, Obj>>, kind: RegistryKind, obj: Obj | undefined): string[] {
  if (obj === undefined) return [];
  const ns = obj.metadata!.namespace!;
  if (kind === 'service') return [objectKey(obj.metadata)];
  if (kind === 'endpointslice') {
    const owner = obj.metadata!.labels?.['kubernetes.io/service-name'];
    return owner ? [`${ns}/${owner}`] : [];
  }
  const out: string[] = [];
  for (const s of model.get('endpointslice')!.values()) {
    const slice = s as V1EndpointSlice;
    if (slice.metadata!.namespace !== ns) continue;
    const owner = slice.metadata!.labels?.['kubernetes.io/service-name'];
    if (owner && (slice.endpoints ?? []).some((e) => e.targetRef?.name === obj.metadata!.name)) out.push(`${ns}/${owner}`);
  }
  return out;
}

const origin = (key: string): string => `Service/${key}`;

function byService(defs: readonly ServiceDef[]): Map<string, ServiceDef[]> {
  const m = new Map<string, ServiceDef[]>();
  for (const d of defs) {
    const list = m.get(d.origin!);
    if (list) list.push(d);
    else m.set(d.origin!, [d]);
  }
  return m;
}

function shuffled<T>(r: Rand, xs: T[]): T[] {
  const out = xs.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('KubernetesRegistry', () => {
  it('equals the full mapping after each of 1,500 random batches of adds, changes and deletes; untouched Services keep their ServiceDefs; only touched ones are mapped', () => {
    for (const seed of [26, 2026, 77]) {
      const r = seededRandom(seed);
      const reg = new KubernetesRegistry(opts);
      const model = new Map<RegistryKind, Map<string, Obj>>([['service', new Map()], ['endpointslice', new Map()], ['pod', new Map()]]);
      let prevOut: ServiceDef[] = reg.services();
      let kept = 0;
      let mappedTotal = 0;
      for (let step = 0; step < 500; step++) {
        const touched = new Set<string>();
        const ops = 1 + Math.floor(r() * 3);
        for (let o = 0; o < ops; o++) {
          const kind = pick(r, ['service', 'endpointslice', 'endpointslice', 'pod', 'pod'] as const);
          const ns = pick(r, NAMESPACES);
          const name = pick(r, kind === 'service' ? SERVICES : kind === 'endpointslice' ? SLICES : PODS);
          const key = `${ns}/${name}`;
          const m = model.get(kind)!;
          const prev = m.get(key);
          let next: Obj | undefined;
          const what = r();
          if (prev !== undefined && what < 0.2) next = undefined; // delete
          else if (prev !== undefined && what < 0.35) next = structuredClone(prev); // a new object, same content (a resync, an unrelated field)
          else if (kind === 'pod' && prev !== undefined && what < 0.5) next = { ...prev, status: { ...(prev as V1Pod).status, phase: 'Succeeded' } } as V1Pod; // nothing the mapping reads
          else next = kind === 'service' ? randomService(r, name, ns) : kind === 'endpointslice' ? randomSlice(r, name, ns) : randomPod(r, name, ns);
          for (const s of [...readers(model, kind, prev), ...readers(model, kind, next)]) touched.add(s);
          if (next === undefined) m.delete(key);
          else m.set(key, next);
          reg.set(kind, key, next);
        }
        const before = reg.stats.mapped;
        const out = reg.services();
        const mapped = reg.stats.mapped - before;
        mappedTotal += mapped;
        // Proportional: only Services something read changed for are mapped again.
        expect(mapped).toBeLessThanOrEqual(touched.size);
        const full = servicesFromKubernetes({
          services: shuffled(r, [...model.get('service')!.values()] as V1Service[]),
          endpointSlices: shuffled(r, [...model.get('endpointslice')!.values()] as V1EndpointSlice[]),
          pods: shuffled(r, [...model.get('pod')!.values()] as V1Pod[]),
        }, opts);
        expect(out, `seed ${seed}, step ${step}`).toEqual(full);
        // Untouched Services: the very same ServiceDef objects, in the same order.
        const prevBy = byService(prevOut);
        const nowBy = byService(out);
        for (const [o, defs] of prevBy) {
          if ([...touched].some((k) => origin(k) === o)) continue;
          const now = nowBy.get(o)!;
          expect(now.length).toBe(defs.length);
          now.forEach((d, i) => expect(d).toBe(defs[i]));
          kept++;
        }
        if (mapped === 0) expect(out).toBe(prevOut);
        prevOut = out;
      }
      expect(kept).toBeGreaterThan(1000);
      // Mapping from nothing would have mapped every Service at every step.
      expect(mappedTotal).toBeLessThan(500 * 4);
    }
  });

  it('a Pod change the mapping does not read (phase, IP) maps nothing; a label change maps only the Services whose endpoints name the Pod', () => {
    const reg = new KubernetesRegistry(opts);
    reg.set('service', 'a/web', service('web', 'a', [{ name: 'http', port: 80 }], { clusterIP: '10.96.0.1' }) as V1Service);
    reg.set('service', 'a/api', service('api', 'a', [{ name: 'http', port: 80 }], { clusterIP: '10.96.0.2' }) as V1Service);
    reg.set('endpointslice', 'a/web-1', endpointSlice('web-1', 'a', 'web', [{ ip: '10.0.0.1', pod: 'web-0' }], [{ name: 'http', port: 8080 }]) as V1EndpointSlice);
    reg.set('endpointslice', 'a/api-1', endpointSlice('api-1', 'a', 'api', [{ ip: '10.0.0.2', pod: 'api-0' }], [{ name: 'http', port: 8080 }]) as V1EndpointSlice);
    const webPod = pod('web-0', 'a', '10.0.0.1', { app: 'web', version: 'v1' }) as V1Pod;
    reg.set('pod', 'a/web-0', webPod);
    reg.set('pod', 'a/api-0', pod('api-0', 'a', '10.0.0.2', { app: 'api' }) as V1Pod);
    const first = reg.services();
    expect(first.map((d) => [d.hostname, d.workloads[0]!.labels])).toEqual([
      ['api.a.svc.cluster.local', { app: 'api' }],
      ['web.a.svc.cluster.local', { app: 'web', version: 'v1' }],
    ]);

    reg.set('pod', 'a/web-0', { ...webPod, status: { phase: 'Running', podIP: '10.0.0.9' } } as V1Pod);
    const mapped = reg.stats.mapped;
    expect(reg.services()).toBe(first);
    expect(reg.stats.mapped).toBe(mapped);
    expect(reg.podsList().find((p) => p.metadata?.name === 'web-0')?.status?.podIP).toBe('10.0.0.9');

    reg.set('pod', 'a/web-0', pod('web-0', 'a', '10.0.0.1', { app: 'web', version: 'v2' }) as V1Pod);
    const second = reg.services();
    expect(reg.stats.mapped).toBe(mapped + 1);
    expect(second).not.toBe(first);
    expect(second[0]).toBe(first[0]); // api: untouched
    expect(second[1]!.workloads[0]!.labels).toEqual({ app: 'web', version: 'v2' });
  });

  it('podsNamed: the Pods the slices name (ready or not), in order, once each, in the Service namespace; other targetRefs skipped', () => {
    const svc = service('web', 'a', [{ name: 'http', port: 80 }], { clusterIP: '10.96.0.1' }) as V1Service;
    const s1 = endpointSlice('web-1', 'a', 'web', [{ ip: '10.0.0.1', pod: 'p1' }, { ip: '10.0.0.2', pod: 'p2', ready: false }, { ip: '10.0.0.3' }], [{ name: 'http', port: 8080 }]) as V1EndpointSlice;
    const s2 = endpointSlice('web-2', 'a', 'web', [{ ip: '10.0.0.4', pod: 'p1' }, { ip: '10.0.0.5', pod: 'p3', terminating: true }], [{ name: 'http', port: 8080 }]) as V1EndpointSlice;
    s2.endpoints!.push({ addresses: ['10.0.0.6'], targetRef: { kind: 'Node', name: 'n1' } });
    expect(podsNamed(svc, [s1, s2])).toEqual(['a/p1', 'a/p2', 'a/p3']);
    expect(podsNamed(svc, [])).toEqual([]);
  });

  it('a Pod behind an endpoint that is not ready stays indexed: its label change while unready is mapped, and seen once ready again', () => {
    const reg = new KubernetesRegistry(opts);
    reg.set('service', 'a/web', service('web', 'a', [{ name: 'http', port: 80 }], { clusterIP: '10.96.0.1' }) as V1Service);
    const slice = (ready: boolean): V1EndpointSlice => endpointSlice('web-1', 'a', 'web', [{ ip: '10.0.0.1', pod: 'web-0', ready }], [{ name: 'http', port: 8080 }]) as V1EndpointSlice;
    reg.set('endpointslice', 'a/web-1', slice(true));
    reg.set('pod', 'a/web-0', pod('web-0', 'a', '10.0.0.1', { version: 'v1' }) as V1Pod);
    expect(reg.services()[0]!.workloads.map((w) => w.labels)).toEqual([{ version: 'v1' }]);
    reg.set('endpointslice', 'a/web-1', slice(false));
    expect(reg.services()[0]!.workloads).toEqual([]);
    const mapped = reg.stats.mapped;
    reg.set('pod', 'a/web-0', pod('web-0', 'a', '10.0.0.1', { version: 'v2' }) as V1Pod);
    reg.services();
    expect(reg.stats.mapped).toBe(mapped + 1);
    reg.set('endpointslice', 'a/web-1', slice(true));
    const out = reg.services();
    expect(out[0]!.workloads.map((w) => w.labels)).toEqual([{ version: 'v2' }]);
    expect(out).toEqual(servicesFromKubernetes({ services: reg.servicesList(), endpointSlices: reg.slicesList(), pods: reg.podsList() }, opts));
  });

  it('a slice moving to another Service, then deleted, maps both; sync() after a relist equals the full mapping and keeps what did not change', () => {
    const reg = new KubernetesRegistry(opts);
    const svcs = ['a', 'b', 'c'].map((n) => service(n, 'ns', [{ name: 'http', port: 80 }], { clusterIP: '10.96.0.1' }) as V1Service);
    svcs.forEach((s) => reg.set('service', `ns/${s.metadata!.name}`, s));
    reg.set('endpointslice', 'ns/m', endpointSlice('m', 'ns', 'a', [{ ip: '10.0.0.1' }], [{ name: 'http', port: 8080 }]) as V1EndpointSlice);
    const first = reg.services();
    expect(first.map((d) => d.workloads.length)).toEqual([1, 0, 0]);

    reg.set('endpointslice', 'ns/m', endpointSlice('m', 'ns', 'b', [{ ip: '10.0.0.1' }], [{ name: 'http', port: 8080 }]) as V1EndpointSlice);
    const moved = reg.services();
    expect(moved.map((d) => d.workloads.length)).toEqual([0, 1, 0]);
    expect(moved[2]).toBe(first[2]);

    reg.set('endpointslice', 'ns/m', undefined);
    const gone = reg.services();
    expect(gone.map((d) => d.workloads.length)).toEqual([0, 0, 0]);
    expect(gone[0]).toBe(moved[0]); // a mapped again to what it was: the same object

    // A relist: c deleted, a and b relisted as new objects of the same content.
    reg.sync('service', [['ns/a', structuredClone(svcs[0]!)], ['ns/b', structuredClone(svcs[1]!)]]);
    const relisted = reg.services();
    expect(relisted).toEqual(servicesFromKubernetes({ services: svcs.slice(0, 2), endpointSlices: [], pods: [] }, opts));
    expect(relisted[0]).toBe(gone[0]);
    expect(relisted[1]).toBe(gone[1]);
  });
});
