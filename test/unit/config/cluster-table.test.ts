/**
 * ClusterTable: the snapshot's clusters are named at compile time and built on first use; a built def is kept and
 * returned again, iteration builds without keeping, and a delta's flattening (LayeredMap → rebase) leaves unbuilt
 * clusters unbuilt. The defs equal those the eager build (serviceClusters) makes.
 */
import { describe, it, expect } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile, type CompileOptions } from '../../../src/config/compile.js';
import { ClusterTable, type ClusterSeed } from '../../../src/config/cluster-table.js';
import { LayeredMap } from '../../../src/config/layered-map.js';
import { serviceClusters, type ClusterEnv } from '../../../src/config/compile-clusters.js';
import { ClusterPolicyCache, compileClusterPolicy } from '../../../src/upstream/policy.js';
import type { ClusterDef } from '../../../src/model.js';

const opts: CompileOptions = { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' };
const mesh = (n: number): string => Array.from({ length: n }, (_, i) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: s${i}, namespace: default}
spec: {hosts: [s${i}.example.com], ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: grpc, protocol: GRPC}], resolution: STATIC, endpoints: [{address: 10.0.${i}.1, labels: {version: v1}}, {address: 10.0.${i}.2, labels: {version: v2}}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: s${i}, namespace: default}
spec: {host: s${i}.example.com, trafficPolicy: {loadBalancer: {simple: RANDOM}}, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}]}
`).join('---\n');

describe('ClusterTable', () => {
  it('names every cluster at once and builds each on first use', () => {
    const snap = compile(parseDocuments(mesh(3), 'm.yaml').resources, opts);
    const t = snap.clusters as ClusterTable;
    expect(t).toBeInstanceOf(ClusterTable);
    expect(t.size).toBe(3 * 2 * 3);
    expect([...t.keys()].slice(0, 6)).toEqual(['outbound|80||s0.example.com', 'outbound|80|v1|s0.example.com', 'outbound|80|v2|s0.example.com', 'outbound|81||s0.example.com', 'outbound|81|v1|s0.example.com', 'outbound|81|v2|s0.example.com']);
    expect([...t.keys()].some((k) => t.built(k))).toBe(false);
    const v2 = t.get('outbound|81|v2|s1.example.com')!;
    expect(v2).toMatchObject({ host: 's1.example.com', port: 81, subset: 'v2', protocol: 'grpc' });
    expect(v2.endpoints.map((e) => e.address)).toEqual(['10.0.1.2']);
    expect(v2.policy.lb.kind).toBe('ROUND_ROBIN');
    expect(t.get('outbound|81|v2|s1.example.com')).toBe(v2);
    expect([...t.keys()].filter((k) => t.built(k))).toEqual(['outbound|81|v2|s1.example.com']);
    expect(t.has('outbound|82||s1.example.com')).toBe(false);
    for (const bogus of ['outbound|080||s1.example.com', 'inbound|80||s1.example.com', 'outbound|80|v3|s1.example.com', 'outbound|80||s9.example.com', 'outbound|80|', 'outbound|80']) {
      expect(t.has(bogus), bogus).toBe(false);
      expect(t.get(bogus), bogus).toBeUndefined();
    }
    expect(t.get('outbound|82||s1.example.com')).toBeUndefined();
    // Iteration builds what is not built, and keeps nothing.
    const all = [...t.values()];
    expect(all).toHaveLength(18);
    expect(all).toContain(v2);
    expect([...t.keys()].filter((k) => t.built(k))).toEqual(['outbound|81|v2|s1.example.com']);
  });

  it('builds what the eager build makes', () => {
    const resources = parseDocuments(mesh(2), 'm.yaml').resources;
    const snap = compile(resources, opts);
    const env: ClusterEnv = { dns: undefined, defaultPolicyFor: (p) => compileClusterPolicy({}, p), policies: new ClusterPolicyCache(), recent: { lists: [] } };
    const eager = new Map<string, ClusterDef>();
    for (const svc of snap.services) serviceClusters(svc, resources.find((r) => r.kind === 'DestinationRule' && (r.spec as { host: string }).host === svc.hostname), env, eager);
    expect([...snap.clusters.keys()]).toEqual([...eager.keys()]);
    for (const [name, def] of eager) expect(JSON.parse(JSON.stringify(snap.clusters.get(name)))).toEqual(JSON.parse(JSON.stringify(def)));
  });

  it('stays unbuilt through a LayeredMap flattening', () => {
    const snap = compile(parseDocuments(mesh(200), 'm.yaml').resources, opts);
    const t = snap.clusters as ClusterTable;
    const kept = t.get('outbound|80||s0.example.com')!;
    // More changes than a sixteenth of the base (and 64): the derivation flattens, through the table.
    const changes = new Map<string, ClusterDef | undefined>();
    for (let i = 1; i < 80; i++) changes.set(`outbound|80||s${i}.example.com`, { ...kept, name: `outbound|80||s${i}.example.com` });
    for (let i = 80; i < 90; i++) changes.set(`outbound|81||s${i}.example.com`, undefined);
    changes.set('outbound|80||new.example.com', { ...kept, name: 'outbound|80||new.example.com' });
    const d = LayeredMap.derive(t, changes);
    expect(d).toBeInstanceOf(ClusterTable);
    const dt = d as ClusterTable;
    expect(dt.size).toBe(t.size - 10 + 1);
    expect(dt.get('outbound|80||s0.example.com')).toBe(kept);
    expect(dt.get('outbound|80||s5.example.com')).toBe(changes.get('outbound|80||s5.example.com'));
    expect(dt.has('outbound|81||s85.example.com')).toBe(false);
    expect([...dt.keys()].at(-1)).toBe('outbound|80||new.example.com');
    expect(dt.built('outbound|80|v1|s7.example.com')).toBe(false);
    expect(dt.get('outbound|80|v1|s7.example.com')!.endpoints.map((e) => e.address)).toEqual(['10.0.7.1']);
    // The original table is left as it was.
    expect(t.size).toBe(1200);
    expect(t.get('outbound|81||s85.example.com')).toBeDefined();
  });

  it('finds a subset whose name holds a bar, and keeps the order through removals and additions', () => {
    const text = mesh(2).replace('{name: v2, labels: {version: v2}', "{name: 'a|b', labels: {version: v2}");
    const snap = compile(parseDocuments(text, 'm.yaml').resources, opts);
    const t = snap.clusters as ClusterTable;
    expect(t.get('outbound|80|a|b|s0.example.com')!.endpoints.map((e) => e.address)).toEqual(['10.0.0.2']);
    expect(t.has('outbound|80|a|b|s1.example.com')).toBe(false);
    const names = [...t.keys()];
    const some = t.get(names[1]!)!;
    const r = t.rebase(new Map<string, ClusterDef | undefined>([[names[0]!, undefined], [names[1]!, { ...some, subset: 'x' }], ['outbound|1|z|new', some]]));
    expect([...r.keys()]).toEqual([...names.slice(1), 'outbound|1|z|new']);
    expect(r.size).toBe(names.length);
    expect(r.get(names[1]!)!.subset).toBe('x');
    const back = r.rebase(new Map<string, ClusterDef | undefined>([[names[0]!, some], ['outbound|1|z|new', undefined]]));
    expect([...back.keys()]).toEqual(names);
    expect(back.get(names[0]!)).toBe(some);
  });
  it('reseed: the changed hosts get new seeds (their built defs dropped, built again on use), the others keep theirs', () => {
    const snap = compile(parseDocuments(mesh(3), 'm.yaml').resources, opts);
    const t = snap.clusters as ClusterTable;
    const kept = t.get('outbound|80|v1|s0.example.com')!;
    const old = t.get('outbound|80|v1|s1.example.com')!;
    // s1 as a full compile of the edited mesh has it: one subset less, endpoints moved.
    const edited = mesh(3).replace('10.0.1.1', '10.9.1.1').replace(/(name: s1, namespace: default\}\nspec: \{host: s1.example.com, trafficPolicy: \{loadBalancer: \{simple: RANDOM\}\}, subsets: \[\{name: v1, labels: \{version: v1\}\}), \{name: v2[^\]]*\]/, '$1]');
    const full = compile(parseDocuments(edited, 'm.yaml').resources, opts).clusters as ClusterTable;
    const seedOf = (table: ClusterTable, host: string) => (table as unknown as { seeds: ReadonlyMap<string, ClusterSeed> }).seeds.get(host)!;
    const next = t.reseed(new Map([['s1.example.com', seedOf(full, 's1.example.com')]]))!;
    expect(next.size).toBe(full.size);
    expect(next.size).toBe(t.size - 2);
    expect([...next.keys()]).toEqual([...full.keys()]);
    expect(next.get('outbound|80|v1|s0.example.com')).toBe(kept);
    expect(next.built('outbound|80|v1|s1.example.com')).toBe(false);
    const rebuilt = next.get('outbound|80|v1|s1.example.com')!;
    expect(rebuilt).not.toBe(old);
    expect(rebuilt.endpoints.map((e) => e.address)).toEqual(['10.9.1.1']);
    expect(next.has('outbound|80|v2|s1.example.com')).toBe(false);
    for (const [k, v] of full) expect(next.get(k), k).toEqual(v);
    // The table it came from is unchanged.
    expect(t.get('outbound|80|v1|s1.example.com')).toBe(old);
    expect(t.has('outbound|80|v2|s1.example.com')).toBe(true);
    expect(t.reseed(new Map())).toBe(t);
  });
});
