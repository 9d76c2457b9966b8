// The scale scenario's generated mesh (bench/scale-config.ts): valid Istio, the shape issue #26 describes, every
// service in exactly one of 100 files, and an edit that changes exactly one service's weights and marker.
import { describe, it, expect } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { validateResources } from '../../../src/config/validate.js';
import { compile, lookupHost } from '../../../src/config/compile.js';
import { EDIT_HEADER, fileOf, fileRange, fileYaml, meshFiles, scaleAddress, scaleHost, SCALE_FILES, spreadServices } from '../../../bench/scale-config.js';

const PORTS = { v1: 8081, v2: 8082 };

describe('scale scenario mesh', () => {
  it('spreads N services over 100 files in contiguous blocks, each service in exactly one', () => {
    for (const n of [10, 1234, 50_000]) {
      let covered = 0;
      for (let f = 0; f < SCALE_FILES; f++) {
        const [lo, hi] = fileRange(n, f);
        expect(lo).toBe(covered);
        covered = hi;
        for (const i of [lo, hi - 1]) if (hi > lo) expect(fileOf(n, i)).toBe(f);
      }
      expect(covered).toBe(n);
    }
    expect(fileRange(50_000, 7)).toEqual([3500, 4000]); // 500 services per file, as in the issue
  });

  it('gives every service its own loopback address', () => {
    const addrs = new Set(Array.from({ length: 50_000 }, (_, i) => scaleAddress(i)));
    expect(addrs.size).toBe(50_000);
    for (const a of addrs) expect(a).toMatch(/^127\.(1|2)\.\d{1,3}\.\d{1,3}$/);
    expect(spreadServices(50_000, 1000)).toHaveLength(1000);
    expect(new Set(spreadServices(50_000, 1000).map((i) => fileOf(50_000, i))).size).toBe(100);
    expect(spreadServices(10, 1000)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('is valid Istio: a ServiceEntry with two endpoints, a DestinationRule with two subsets and an 80/20 VirtualService per service', () => {
    const files = meshFiles(300, PORTS);
    expect(files).toHaveLength(100);
    const resources = files.flatMap(([name, text]) => {
      const r = parseDocuments(text, name);
      expect(r.errors).toEqual([]);
      return r.resources;
    });
    expect(validateResources(resources, { clusterDomain: 'cluster.local' }).filter((p) => p.severity !== 'warning')).toEqual([]);
    expect(resources.map((r) => r.kind).slice(0, 3)).toEqual(['ServiceEntry', 'DestinationRule', 'VirtualService']);
    expect(resources).toHaveLength(900);
    const snap = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'REGISTRY_ONLY' });
    const route = lookupHost(snap, scaleHost(42))!.vhost!.routes[0]!;
    expect(route.action.kind === 'route' && route.action.destinations.map((d) => [d.subset, d.weight])).toEqual([['v1', 80], ['v2', 20]]);
    expect(snap.clusters.get(`outbound|80|v2|${scaleHost(42)}`)!.endpoints.map((e) => e.key)).toEqual([`${scaleAddress(42)}:8082`]);
  });

  it('an edit changes one service of one file: its weights and a response header', () => {
    const n = 1000;
    const before = fileYaml(n, 3, PORTS);
    const after = fileYaml(n, 3, PORTS, new Map([[35, { service: 35, weights: [30, 70], marker: 'e7' }]]));
    const parse = (t: string) => parseDocuments(t, 'f.yaml').resources;
    const a = parse(before);
    const b = parse(after);
    expect(b).toHaveLength(a.length);
    const changed = b.filter((r, i) => JSON.stringify(r.spec) !== JSON.stringify(a[i]!.spec));
    expect(changed.map((r) => `${r.kind}/${r.metadata.name}`)).toEqual(['VirtualService/svc-35']);
    const http = (changed[0]!.spec as { http: Array<{ route: Array<{ weight: number }>; headers: { response: { set: Record<string, string> } } }> }).http[0]!;
    expect(http.route.map((d) => d.weight)).toEqual([30, 70]);
    expect(http.headers.response.set[EDIT_HEADER]).toBe('e7');
  });
});
