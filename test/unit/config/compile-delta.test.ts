/**
 * compileDelta: a file parsed again after one VirtualService changed compiles from the previous snapshot (its other
 * documents, new objects of the same content, are not a change) and equals a full compile; what it does not handle
 * (content-equal documents in a new order, other kinds changed) gives undefined, for a full compile.
 */
import { describe, it, expect } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile, type CompileOptions } from '../../../src/config/compile.js';
import { compileDelta } from '../../../src/config/compile-delta.js';
import { changedClusters } from '../../../src/config/compile.js';
import { LayeredMap } from '../../../src/config/layered-map.js';
import type { Snapshot } from '../../../src/config/snapshot.js';
import type { ServiceDef } from '../../../src/model.js';
import type { Resource } from '../../../src/config/resource.js';
import { canonSnapshot } from '../../support/snapshot-canon.js';

const opts: CompileOptions = { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' };

function parse(text: string): Resource[] {
  const { resources, errors } = parseDocuments(text, 'mesh.yaml');
  expect(errors).toEqual([]);
  return resources;
}

const se = (name: string, host: string, ip: string): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: default}
spec: {hosts: [${host}], ports: [{number: 80, name: http, protocol: HTTP}], resolution: STATIC, endpoints: [{address: ${ip}}]}
`;
const dr = (name: string, host: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: default}
spec: {host: ${host}, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}
`;
const vs = (name: string, host: string, w: number): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${host}]
  http:
  - route:
    - {destination: {host: ${host}, subset: v1}, weight: ${w}}
    - {destination: {host: ${host}, subset: v2}, weight: ${100 - w}}
`;
const mesh = (n: number, edited: number, w: number): string =>
  Array.from({ length: n }, (_, i) => [se(`s${i}`, `s${i}.example.com`, `10.0.0.${i + 1}`), dr(`s${i}`, `s${i}.example.com`), vs(`s${i}`, `s${i}.example.com`, i === edited ? w : 80)].join('---\n')).join('---\n');

describe('compileDelta', () => {
  it('one VirtualService edited in a file parsed again: from the previous snapshot, equal to a full compile', () => {
    const before = parse(mesh(20, -1, 80));
    const prev = compile(before, opts);
    let cur = prev;
    let curRes = before;
    for (const [edited, w] of [[3, 50], [3, 20], [7, 10], [3, 80]] as const) {
      const after = parse(mesh(20, edited, w));
      const full = compile(after, opts);
      const delta = compileDelta(cur, curRes, after, opts);
      expect(delta).toBeDefined();
      expect(canonSnapshot(delta!)).toBe(canonSnapshot(full));
      // The unchanged hosts keep their compiled entries (shared, not rebuilt).
      expect(delta!.hosts.get('s0.example.com')).toBe(cur.hosts.get('s0.example.com'));
      expect(delta!.clusters).toBe(cur.clusters);
      cur = delta!;
      curRes = after;
    }
  });

  it('content-equal documents in a new order, or another kind changed: undefined (a full compile)', () => {
    const a = se('a', 'x.example.com', '10.0.0.1');
    const b = se('b', 'x.example.com', '10.0.0.2');
    const before = parse([a, b, vs('v', 'x.example.com', 80)].join('---\n'));
    const prev = compile(before, opts);
    // The first ServiceEntry of a host wins: swapping them changes the snapshot, so this cannot be a delta.
    const swapped = parse([b, a, vs('v', 'x.example.com', 50)].join('---\n'));
    expect(compileDelta(prev, before, swapped, opts)).toBeUndefined();
    // A ServiceEntry whose hosts change, or a kind the delta does not handle (a WorkloadEntry): a full compile.
    const otherHosts = parse([se('a', 'y.example.com', '10.0.0.1'), b, vs('v', 'x.example.com', 80)].join('---\n'));
    expect(compileDelta(prev, before, otherHosts, opts)).toBeUndefined();
    const we = 'apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w, namespace: default}\nspec: {address: 10.0.0.7}\n';
    expect(compileDelta(prev, before, parse([a, b, vs('v', 'x.example.com', 80), we].join('---\n')), opts)).toBeUndefined();
    // A wildcard-host DestinationRule: a full compile.
    expect(compileDelta(prev, before, parse([a, b, vs('v', 'x.example.com', 80), dr('w', '"*.example.com"')].join('---\n')), opts)).toBeUndefined();
  });

  /** Each step: the delta is taken, equals a full compile (routes forced), and changed only the named clusters. */
  function step(cur: { snap: Snapshot; res: Resource[]; extra: ServiceDef[] }, res: Resource[], extra: ServiceDef[], changed: string[]): void {
    const o = { ...opts, extraServices: extra };
    const full = compile(res, o);
    const delta = compileDelta(cur.snap, cur.res, res, o, cur.extra);
    expect(delta).toBeDefined();
    expect(canonSnapshot(delta!)).toBe(canonSnapshot(full));
    expect([...(changedClusters(delta!, cur.snap) ?? ['<all>'])].sort()).toEqual(changed.sort());
    cur.snap = delta!;
    cur.res = res;
    cur.extra = extra;
  }

  it('DestinationRule, ServiceEntry endpoint and external ServiceDef edits: from the previous snapshot, routes built before the edit included', () => {
    const client = (w: number): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: client, namespace: other}
spec:
  hosts: [front.example.com]
  http:
  - route:
    - {destination: {host: s1.example.com, subset: v1}, weight: ${w}}
    - {destination: {host: k.default.svc.cluster.local}, weight: ${100 - w}}
    mirror: {host: s2.example.com}
`;
    const drv = (v: string): string => dr('s1', 's1.example.com').replace('{version: v1}', `{version: ${v}}`);
    const text = (ip: string, v: string): string => [mesh(4, -1, 80), se('front', 'front.example.com', '10.0.1.1'), se('s2x', 's2.example.com', ip), drv(v), client(60)].join('---\n');
    const ext = (ip: string): ServiceDef => ({ hostname: 'k.default.svc.cluster.local', namespace: 'default', ports: [{ number: 80, name: 'http', protocol: 'http' }], resolution: 'STATIC', workloads: [{ address: ip, ports: {}, labels: {}, weight: 1 }], addresses: ['10.96.0.1'], location: 'MESH_INTERNAL', origin: 'Service/default/k' });
    const other: ServiceDef = { ...ext('10.1.0.9'), hostname: 'o.default.svc.cluster.local', origin: 'Service/default/o', addresses: [] };
    const first = parse(text('10.0.2.1', 'v1'));
    const extra0 = [ext('10.1.0.1'), other];
    const cur = { snap: compile(first, { ...opts, extraServices: extra0 }), res: first, extra: extra0 };
    // Routes built before the edits: a stale ClusterDef in one would show in the comparison.
    for (const h of ['front.example.com', 's1.example.com', 's2.example.com', 'k.default.svc.cluster.local']) void cur.snap.hosts.get(h)!.vhost!.routes;
    // s1's rule: subset v1 selects other labels (s1's clusters rebuilt, and front's routes that name them).
    const s1 = ['outbound|80||s1.example.com', 'outbound|80|v1|s1.example.com', 'outbound|80|v2|s1.example.com'];
    step(cur, parse(text('10.0.2.1', 'v2')), extra0, s1);
    // s2's second ServiceEntry (shadowed by the mesh's s2: the registry keeps the first), then the mesh's own s2.
    step(cur, parse(text('10.0.2.2', 'v2')), extra0, []);
    const edited = parse(text('10.0.2.2', 'v2').replace('address: 10.0.0.3}', 'address: 10.0.3.3}'));
    step(cur, edited, extra0, ['outbound|80||s2.example.com', 'outbound|80|v1|s2.example.com', 'outbound|80|v2|s2.example.com']);
    for (const h of ['front.example.com', 's2.example.com']) void cur.snap.hosts.get(h)!.vhost!.routes;
    // An external service's endpoints (the unchanged entry keeps its identity).
    step(cur, edited, [ext('10.1.0.2'), other], ['outbound|80||k.default.svc.cluster.local']);
    // The rule removed, then added back.
    const noDr = edited.filter((r) => !(r.kind === 'DestinationRule' && r.metadata.name === 's1'));
    step(cur, noDr, cur.extra, s1);
    step(cur, edited, cur.extra, s1);
    expect(cur.snap.addresses.get('10.96.0.1')).toBe(cur.snap.hosts.get('k.default.svc.cluster.local'));
  });
});

describe('LayeredMap', () => {
  it('reads as the previous map with the changes applied, and flattens a large overlay', () => {
    const base = new Map<string, number>(Array.from({ length: 100 }, (_, i) => [`k${i}`, i] as const));
    let m: ReadonlyMap<string, number> = base;
    const model = new Map(base);
    for (let i = 0; i < 200; i++) {
      const ch = new Map<string, number | undefined>([[`k${(i * 7) % 130}`, i % 3 === 0 ? undefined : 1000 + i], [`k${(i * 13) % 130}`, 2000 + i]]);
      const before = [...m.entries()];
      const n = LayeredMap.derive(m, ch);
      expect([...m.entries()]).toEqual(before);
      for (const [k, v] of ch) if (v === undefined) model.delete(k); else model.set(k, v);
      expect(n.size).toBe(model.size);
      expect(new Map(n)).toEqual(model);
      for (let k = 0; k < 130; k++) { expect(n.get(`k${k}`)).toBe(model.get(`k${k}`)); expect(n.has(`k${k}`)).toBe(model.has(`k${k}`)); }
      m = n;
    }
    expect(LayeredMap.derive(m, new Map())).toBe(m);
  });
});
