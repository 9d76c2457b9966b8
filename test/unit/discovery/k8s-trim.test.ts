/** What the Kubernetes source caches of an API object (src/discovery/k8s-trim.ts), and the Resource it becomes. */
import { describe, expect, it } from 'vitest';
import { toResource, trimObject, type Obj } from '../../../src/discovery/k8s-trim.js';
import { KINDS } from '../../../src/discovery/k8s-kinds.js';

const kind = (k: string) => KINDS.find((s) => s.kind === k)!;

describe('trimObject', () => {
  it('keeps what the mapping reads of an EndpointSlice, and only the service-name label', () => {
    const slice = {
      metadata: { name: 'web-abc', namespace: 'shop', resourceVersion: '7', labels: { 'kubernetes.io/service-name': 'web', other: 'x' }, annotations: { a: 'b' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' }],
      endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true, serving: true }, nodeName: 'n1', targetRef: { kind: 'Pod', name: 'web-1', uid: 'u' } }],
    } as unknown as Obj;
    expect(trimObject('endpointslice', slice)).toEqual({
      metadata: { name: 'web-abc', namespace: 'shop', resourceVersion: '7', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'web-1' } }],
    });
  });

  it('drops a Pod\'s unnamed container ports, and its containers when asked to', () => {
    const pod = {
      metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' } },
      spec: { serviceAccountName: 'web', containers: [{ name: 'app', image: 'i', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }, { containerPort: 9090 }] }] },
      status: { podIP: '10.0.0.1', podIPs: [{ ip: '10.0.0.1' }], phase: 'Running' },
    } as unknown as Obj;
    expect(trimObject('pod', pod)).toEqual({
      metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' }, resourceVersion: undefined },
      spec: { serviceAccountName: 'web', containers: [{ name: 'app', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }] },
      status: { podIP: '10.0.0.1', phase: 'Running' },
    });
    expect((trimObject('pod', pod, false) as { spec?: { containers?: unknown } }).spec?.containers).toBeUndefined();
  });

  it('shares one label object between Pods with the same labels', () => {
    const pod = (name: string) => ({ metadata: { name, namespace: 'shop', labels: { app: 'web', 'pod-template-hash': 'abc' } }, status: {} }) as unknown as Obj;
    const a = trimObject('pod', pod('a')).metadata!.labels;
    const b = trimObject('pod', pod('b')).metadata!.labels;
    expect(a).toEqual({ app: 'web', 'pod-template-hash': 'abc' });
    expect(a).toBe(b);
  });

  it('drops last-applied-configuration from a resource\'s annotations', () => {
    const vs = {
      apiVersion: 'networking.istio.io/v1', kind: 'VirtualService',
      metadata: { name: 'r', namespace: 'shop', annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}', keep: 'me' } },
      spec: { hosts: ['web'] },
    } as unknown as Obj;
    expect(trimObject('resource', vs).metadata).toEqual({ name: 'r', namespace: 'shop', resourceVersion: undefined, annotations: { keep: 'me' } });
  });
});

describe('toResource', () => {
  it('makes a Resource of the kind, with the whole document as raw', () => {
    const obj = { metadata: { name: 'r', namespace: 'shop', resourceVersion: '3' }, spec: { hosts: ['web'] } } as unknown as Obj;
    const r = toResource(obj, kind('VirtualService'), 'v1beta1');
    expect(r.apiVersion).toBe('networking.istio.io/v1beta1');
    expect(r.kind).toBe('VirtualService');
    expect(r.metadata).toEqual({ name: 'r', namespace: 'shop', resourceVersion: '3' });
    expect(r.spec).toEqual({ hosts: ['web'] });
    expect(r.raw).toEqual({ apiVersion: 'networking.istio.io/v1beta1', kind: 'VirtualService', metadata: { name: 'r', namespace: 'shop' }, spec: { hosts: ['web'] } });
    expect(r.source).toEqual({ file: 'kubernetes', line: 0 });
  });
});
