/** Istio Sidecar selection (workloadSelector > namespace default > root default) and egress host scoping. */
import { describe, expect, it } from 'vitest';
import { scopeInputs, selectSidecar } from '../../../src/discovery/sidecar-scope.js';
import { parseDocuments } from '../../../src/config/parse.js';
import type { Resource } from '../../../src/config/resource.js';
import type { ServiceDef } from '../../../src/model.js';

const res = (kind: string, name: string, namespace: string, spec: Record<string, unknown>, apiVersion = 'networking.istio.io/v1'): Resource => {
  const { resources, errors } = parseDocuments(JSON.stringify({ apiVersion, kind, metadata: { name, namespace }, spec }), 'test.yaml');
  expect(errors).toEqual([]);
  return resources[0]!;
};

const svc = (name: string, namespace: string): ServiceDef => ({
  hostname: `${name}.${namespace}.svc.cluster.local`,
  namespace,
  ports: [{ number: 80, name: 'http', protocol: 'http' }],
  resolution: 'STATIC',
  workloads: [],
  addresses: [],
  location: 'MESH_INTERNAL',
  origin: `Service/${namespace}/${name}`,
});

const sidecar = (name: string, namespace: string, spec: Record<string, unknown>) => res('Sidecar', name, namespace, spec);

describe('selectSidecar', () => {
  const w = { namespace: 'shop', labels: { app: 'reviews', version: 'v1' } };
  const nsDefault = sidecar('default', 'shop', { egress: [{ hosts: ['./*'] }] });
  const forReviews = sidecar('reviews', 'shop', { workloadSelector: { labels: { app: 'reviews' } }, egress: [{ hosts: ['*/*'] }] });
  const forRatings = sidecar('ratings', 'shop', { workloadSelector: { labels: { app: 'ratings' } }, egress: [{ hosts: ['*/*'] }] });
  const rootDefault = sidecar('default', 'istio-system', { egress: [{ hosts: ['istio-system/*'] }] });
  const rootSelected = sidecar('sel', 'istio-system', { workloadSelector: { labels: { app: 'reviews' } } });
  const otherNs = sidecar('default', 'web', {});

  it('prefers a selecting Sidecar, then the namespace default, then the root default', () => {
    expect(selectSidecar([nsDefault, forReviews, rootDefault], w)).toBe(forReviews);
    expect(selectSidecar([nsDefault, forRatings, rootDefault], w)).toBe(nsDefault);
    expect(selectSidecar([forRatings, rootDefault, otherNs], w)).toBe(rootDefault);
    expect(selectSidecar([forRatings, otherNs, rootSelected], w)).toBeUndefined();
    expect(selectSidecar([], w)).toBeUndefined();
  });

  it('honours a custom root namespace and ignores non-Sidecar kinds', () => {
    const meshRoot = sidecar('default', 'istio-config', {});
    expect(selectSidecar([meshRoot, rootDefault], { ...w, rootNamespace: 'istio-config' })).toBe(meshRoot);
    const np = res('NetworkPolicy', 'x', 'shop', {}, 'networking.k8s.io/v1');
    expect(selectSidecar([np], w)).toBeUndefined();
  });

  it('passes over a Sidecar that fails validation (the store would skip or reject it)', () => {
    const broken = sidecar('a-broken', 'shop', { egress: [{ hosts: ['reviews'] }] });
    expect(selectSidecar([broken, nsDefault], w)).toBe(nsDefault);
  });

  it('breaks ties between selector-less Sidecars of one namespace by name', () => {
    const b = sidecar('b', 'shop', {});
    const a = sidecar('a', 'shop', {});
    expect(selectSidecar([b, a], w)).toBe(a);
  });
});

describe('scopeInputs', () => {
  const services = [svc('reviews', 'shop'), svc('ratings', 'shop'), svc('frontend', 'web'), svc('db', 'data'), svc('istiod', 'istio-system')];
  const vsRatings = res('VirtualService', 'ratings', 'shop', { hosts: ['ratings'], http: [{ route: [{ destination: { host: 'ratings' } }] }] });
  const vsDb = res('VirtualService', 'db', 'data', { hosts: ['db'], http: [{ route: [{ destination: { host: 'db' } }] }] });
  const drDb = res('DestinationRule', 'db', 'data', { host: 'db' });
  const drRatingsFromWeb = res('DestinationRule', 'ratings', 'web', { host: 'ratings.shop.svc.cluster.local' });
  const seApi = res('ServiceEntry', 'api', 'web', { hosts: ['api.example.com'], ports: [{ number: 443, name: 'tls', protocol: 'TLS' }], resolution: 'DNS', workloadSelector: { labels: { app: 'api' } } });
  const weApi = res('WorkloadEntry', 'api-1', 'web', { address: '10.0.0.9', labels: { app: 'api' } });
  const drApi = res('DestinationRule', 'api', 'data', { host: 'api.example.com' });
  const np = res('NetworkPolicy', 'deny', 'data', { podSelector: {} }, 'networking.k8s.io/v1');
  const all = [vsRatings, vsDb, drDb, drRatingsFromWeb, seApi, weApi, drApi, np];
  const names = (r: { resources: Resource[] }) => r.resources.map((x) => `${x.kind}/${x.metadata.namespace}/${x.metadata.name}`);
  const hosts = (r: { services: ServiceDef[] }) => r.services.map((s) => s.hostname);

  it('returns everything without a Sidecar or without egress', () => {
    const none = scopeInputs({ resources: all, services }, undefined, 'shop');
    expect(none.resources).toEqual(all);
    expect(none.services).toEqual(services);
    expect(none.outboundTrafficPolicy).toBeUndefined();
    const noEgress = scopeInputs({ resources: all, services }, sidecar('s', 'shop', { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }), 'shop');
    expect(noEgress.resources).toEqual(all);
    expect(noEgress.outboundTrafficPolicy).toBe('REGISTRY_ONLY');
  });

  it('"./*" keeps this namespace only: services, VirtualServices, and DestinationRules for kept hosts', () => {
    const r = scopeInputs({ resources: all, services }, sidecar('s', 'shop', { egress: [{ hosts: ['./*'] }] }), 'shop');
    expect(hosts(r)).toEqual(['reviews.shop.svc.cluster.local', 'ratings.shop.svc.cluster.local']);
    // The DR in `web` targets a kept host, so it stays (DRs follow the services they configure).
    expect(names(r)).toEqual(['VirtualService/shop/ratings', 'DestinationRule/web/ratings', 'NetworkPolicy/data/deny']);
  });

  it('"ns/*" and "*/host" and "ns/host.fqdn" each widen the scope', () => {
    const r = scopeInputs(
      { resources: all, services },
      sidecar('s', 'shop', { egress: [{ hosts: ['data/*', '*/frontend.web.svc.cluster.local', 'istio-system/istiod.istio-system.svc.cluster.local'] }] }),
      'shop',
    );
    expect(hosts(r)).toEqual(['frontend.web.svc.cluster.local', 'db.data.svc.cluster.local', 'istiod.istio-system.svc.cluster.local']);
    expect(names(r)).toEqual(['VirtualService/data/db', 'DestinationRule/data/db', 'NetworkPolicy/data/deny']);
  });

  it('ServiceEntries are scoped by their own namespace, with their WorkloadEntries and DestinationRules', () => {
    const r = scopeInputs({ resources: all, services }, sidecar('s', 'shop', { egress: [{ hosts: ['web/*.example.com'] }] }), 'shop');
    expect(hosts(r)).toEqual([]);
    expect(names(r)).toEqual(['ServiceEntry/web/api', 'WorkloadEntry/web/api-1', 'DestinationRule/data/api', 'NetworkPolicy/data/deny']);
    const wrongNs = scopeInputs({ resources: all, services }, sidecar('s', 'shop', { egress: [{ hosts: ['shop/api.example.com'] }] }), 'shop');
    expect(names(wrongNs)).toEqual(['NetworkPolicy/data/deny']);
  });

  it('"~/*" reaches nothing; the root default resolves "." to the proxy namespace', () => {
    const r = scopeInputs({ resources: all, services }, sidecar('s', 'shop', { egress: [{ hosts: ['~/*'] }] }), 'shop');
    expect(hosts(r)).toEqual([]);
    expect(names(r)).toEqual(['NetworkPolicy/data/deny']);
    const root = scopeInputs({ resources: all, services }, sidecar('default', 'istio-system', { egress: [{ hosts: ['./*'] }] }), 'data');
    expect(hosts(r)).toEqual([]);
    expect(hosts(root)).toEqual(['db.data.svc.cluster.local']);
  });

  it('warns about port-bound egress listeners and malformed hosts; the mode overrides the flag', () => {
    const r = scopeInputs(
      { resources: [], services },
      sidecar('s', 'shop', { outboundTrafficPolicy: { mode: 'ALLOW_ANY' }, egress: [{ port: { number: 9080, protocol: 'HTTP', name: 'h' }, hosts: ['./*', 'nohost'] }] }),
      'shop',
    );
    expect(r.outboundTrafficPolicy).toBe('ALLOW_ANY');
    expect(r.warnings).toEqual([
      'Sidecar/shop/s: egress[0].port is not applied: its hosts are reachable on every port',
      'Sidecar/shop/s: egress[0].hosts "nohost" is not namespace/dnsName; ignored',
    ]);
    expect(hosts(r)).toEqual(['reviews.shop.svc.cluster.local', 'ratings.shop.svc.cluster.local']);
  });
});
