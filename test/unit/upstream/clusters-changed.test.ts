/**
 * ClusterManager.onClustersChanged: after a snapshot compiled from the previous one, the runtimes of the changed
 * clusters take their new defs (a removed cluster's runtime is dropped) and the pools of endpoints no runtime uses any
 * more close; the runtimes and pools of other clusters are left as they were.
 */
import { describe, it, expect } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { changedClusters, compile, type CompileOptions } from '../../../src/config/compile.js';
import { compileDelta } from '../../../src/config/compile-delta.js';
import { ClusterManager } from '../../../src/upstream/cluster-manager.js';

const opts: CompileOptions = { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' };
const text = (ipA: string, subsets: boolean): string => ['a', 'b'].map((n) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${n}, namespace: default}
spec: {hosts: [${n}.example.com], ports: [{number: 80, name: http, protocol: HTTP}], resolution: STATIC, endpoints: [{address: ${n === 'a' ? ipA : '10.0.0.2'}, labels: {version: v1}}]}
`).concat(subsets ? ['apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a, namespace: default}\nspec: {host: a.example.com, subsets: [{name: v1, labels: {version: v1}}]}\n'] : []).join('---\n');

describe('ClusterManager.onClustersChanged', () => {
  it('updates, drops and closes only what the changed clusters named', () => {
    const r0 = parseDocuments(text('10.0.0.1', true), 'm.yaml').resources;
    const s0 = compile(r0, opts);
    const cm = new ClusterManager(Math.random, () => 0, { keepAliveMs: 1000, headersTimeoutMs: 0 });
    const a = s0.clusters.get('outbound|80||a.example.com')!;
    const av1 = s0.clusters.get('outbound|80|v1|a.example.com')!;
    const b = s0.clusters.get('outbound|80||b.example.com')!;
    const rtA = cm.runtime(a);
    cm.runtime(av1);
    const rtB = cm.runtime(b);
    cm.pool(a.endpoints[0]!, a.policy.pool);
    cm.pool(b.endpoints[0]!, b.policy.pool);
    expect(cm.poolCount()).toBe(2);

    // a's endpoint moves: a's clusters change, b's do not; a's old endpoint's pool closes.
    const r1 = parseDocuments(text('10.0.0.9', true), 'm.yaml').resources;
    const s1 = compileDelta(s0, r0, r1, opts)!;
    const changed = changedClusters(s1, s0)!;
    expect([...changed].sort()).toEqual(['outbound|80|v1|a.example.com', 'outbound|80||a.example.com']);
    cm.onClustersChanged(s1, changed, s0.clusters);
    expect(rtA.def).toBe(s1.clusters.get('outbound|80||a.example.com'));
    expect(rtA.def.endpoints.map((e) => e.address)).toEqual(['10.0.0.9']);
    expect(rtB.def).toBe(b);
    expect(cm.poolCount()).toBe(1);

    // The rule goes: its subset cluster is removed, and so is its runtime.
    const r2 = parseDocuments(text('10.0.0.9', false), 'm.yaml').resources;
    const s2 = compileDelta(s1, r1, r2, opts)!;
    const changed2 = changedClusters(s2, s1)!;
    expect(changed2.has('outbound|80|v1|a.example.com')).toBe(true);
    cm.onClustersChanged(s2, changed2, s1.clusters);
    expect(cm.clusters().map((rt) => rt.def.name).sort()).toEqual(['outbound|80||a.example.com', 'outbound|80||b.example.com']);
    expect(cm.poolCount()).toBe(1);
  });

  it('closes the mTLS pools of replaced clusters, and keeps those of unchanged ones', () => {
    const mtlsText = (sni: string): string => `${text('10.0.0.1', false)}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a, namespace: default}
spec: {host: a.example.com, trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: ${sni}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b, namespace: default}
spec: {host: b.example.com, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
`;
    const r0 = parseDocuments(mtlsText('a0.example.com'), 'm.yaml').resources;
    const s0 = compile(r0, opts);
    const cm = new ClusterManager(Math.random, () => 0, { keepAliveMs: 1000, headersTimeoutMs: 0 });
    cm.mtls = () => undefined; // a certificate directory is configured: ISTIO_MUTUAL clusters originate mTLS
    const a = s0.clusters.get('outbound|80||a.example.com')!;
    const b = s0.clusters.get('outbound|80||b.example.com')!;
    const poolA = cm.httpPool(cm.runtime(a).def, a.endpoints[0]!, false, false);
    const poolB = cm.httpPool(cm.runtime(b).def, b.endpoints[0]!, false, false);
    expect(cm.upstreamTls(a, a.endpoints[0]!)).toBe(true);
    expect(cm.poolCount()).toBe(2);

    // a's rule changes its SNI: a's cluster is replaced (same endpoint, same limits), b's is not.
    const r1 = parseDocuments(mtlsText('a1.example.com'), 'm.yaml').resources;
    const s1 = compileDelta(s0, r0, r1, opts)!;
    const changed = changedClusters(s1, s0)!;
    expect([...changed]).toEqual(['outbound|80||a.example.com']);
    cm.onClustersChanged(s1, changed, s0.clusters);
    expect(poolA.closed).toBe(true);
    expect(poolB.closed).toBe(false);
    expect(cm.poolCount()).toBe(1);
    const a1 = s1.clusters.get('outbound|80||a.example.com')!;
    expect(cm.httpPool(cm.runtime(a1).def, a1.endpoints[0]!, false, false)).not.toBe(poolA);
    expect(cm.httpPool(cm.runtime(b).def, b.endpoints[0]!, false, false)).toBe(poolB);

    // A full update with new defs for every cluster closes the TLS pools of the old ones.
    cm.onSnapshot(compile(r1, opts));
    expect(poolB.closed).toBe(true);
    expect(cm.poolCount()).toBe(0);
  });
});
