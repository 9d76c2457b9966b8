/**
 * The compile context (compile.ts) outlives its compilation: adoptContext hands it to every snapshot a delta derives
 * from it. It must not keep the registry entries of other sources it was first compiled with (the API watch replaces
 * them one Service at a time): docs/scale.md, "RSS after the churn".
 */
import { describe, expect, it } from 'vitest';
import { compile, compileContext, type CompileOptions } from '../../../src/config/compile.js';
import type { ServiceDef } from '../../../src/model.js';

const opts: CompileOptions = { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' };

const def = (host: string, ip: string): ServiceDef => ({
  hostname: host, namespace: 'default', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC',
  workloads: [{ address: ip, ports: {}, labels: {}, weight: 1 }], addresses: [], location: 'MESH_INTERNAL', origin: `Service/default/${host}`,
} as ServiceDef);

describe('compile context', () => {
  it('keeps the options but not the extra services array it was compiled with', () => {
    const extra = [def('a.default.svc.cluster.local', '10.0.0.1'), def('b.default.svc.cluster.local', '10.0.0.2')];
    const snap = compile([], { ...opts, extraServices: extra });
    const ctx = compileContext(snap)!;
    expect(ctx).toBeDefined();
    expect(ctx.opts.extraServices).toBeUndefined();
    expect(ctx.opts.namespace).toBe('default');
    expect(ctx.opts.clusterDomain).toBe('cluster.local');
    // The registry itself is still there, by host (compile-delta replaces changed hosts in it).
    expect(ctx.byHost.get('a.default.svc.cluster.local')).toBe(extra[0]);
  });
});
