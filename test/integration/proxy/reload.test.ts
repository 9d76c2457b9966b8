/**
 * Hot reload through the real CLI: changed, added and removed files; a ConfigMap-style atomic `..data`
 * symlink swap; an invalid change rejected whole while the last good config keeps serving.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';

let a: FakeUpstream;
let b: FakeUpstream;

const se = (): string => `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: app, namespace: default}
spec:
  hosts: [app.default.svc.cluster.local]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: ${a.port}}, labels: {v: a}}
  - {address: 127.0.0.1, ports: {http: ${b.port}}, labels: {v: b}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: app, namespace: default}
spec:
  host: app
  subsets: [{name: a, labels: {v: a}}, {name: b, labels: {v: b}}]
`;
const vs = (subset: string): string => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: default}
spec:
  hosts: [app]
  http: [{route: [{destination: {host: app, subset: ${subset}}}]}]
`;

beforeAll(async () => {
  a = await fakeUpstream('a');
  b = await fakeUpstream('b');
});
afterAll(async () => {
  await Promise.all([a.close(), b.close()]);
});

async function who(p: RunningProxy): Promise<string> {
  const r = await p.get('/', { host: 'app' });
  return r.status === 200 ? r.json().id : `status ${r.status}`;
}

describe('hot reload of a config directory', () => {
  let p: RunningProxy;
  beforeAll(async () => { p = await startProxy({ 'se.yaml': se(), 'vs.yaml': vs('a') }); });
  afterAll(async () => { await p.stop(); });

  it('applies a changed file within a second', async () => {
    expect(await who(p)).toBe('a');
    const t0 = Date.now();
    p.writeConfig('vs.yaml', vs('b'));
    await waitFor(async () => (await who(p)) === 'b', 3000);
    expect(Date.now() - t0).toBeLessThan(1500);
    const dump = JSON.parse((await p.admin('/config_dump')).body);
    expect(dump.version).toBeGreaterThanOrEqual(2);
  });

  it('rejects an invalid change whole, keeps serving, and reports it', async () => {
    const before = JSON.parse((await p.admin('/config_dump')).body).version;
    p.writeConfig('vs.yaml', vs('a').replace('subset: a', 'subset: nope'));
    p.writeConfig('extra.yaml', 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad}\nspec:\n  hosts: [x]\n  http: [{route: [{destination: {host: app}, weight: -1}]}]\n');
    await waitFor(async () => JSON.parse((await p.admin('/config_dump')).body).lastError !== null, 3000);
    const dump = JSON.parse((await p.admin('/config_dump')).body);
    expect(dump.version).toBe(before);
    expect(dump.lastError.errors.join('\n')).toMatch(/vs\.yaml:\d+: VirtualService\/default\/app: spec\.http\[0\]\.route\[0\]\.destination\.subset/);
    expect(await who(p)).toBe('b');
    expect((await p.admin('/ready')).status).toBe(200);
    // Fix it: the next good config applies.
    rmSync(join(p.dir, 'extra.yaml'));
    p.writeConfig('vs.yaml', vs('a'));
    await waitFor(async () => (await who(p)) === 'a', 3000);
  });

  it('removing a file removes its resources', async () => {
    rmSync(join(p.dir, 'vs.yaml'));
    // Without the VirtualService, the default route balances over both endpoints.
    const seen = new Set<string>();
    await waitFor(async () => { seen.add(await who(p)); return seen.has('a') && seen.has('b'); }, 4000);
  });
});

describe('Kubernetes ConfigMap mount (atomic ..data symlink swap)', () => {
  it('reloads when ..data is swapped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-cm-'));
    const writeVersion = (name: string, files: Record<string, string>): void => {
      mkdirSync(join(dir, name));
      for (const [f, c] of Object.entries(files)) writeFileSync(join(dir, name, f), c);
    };
    writeVersion('..2026_11_22_00_00_00.1', { 'se.yaml': se(), 'vs.yaml': vs('a') });
    symlinkSync('..2026_11_22_00_00_00.1', join(dir, '..data'));
    symlinkSync('..data/se.yaml', join(dir, 'se.yaml'));
    symlinkSync('..data/vs.yaml', join(dir, 'vs.yaml'));
    const p = await startProxy(dir);
    try {
      expect(await who(p)).toBe('a');
      // kubelet: write the new version dir, point a temp link at it, rename it over ..data
      writeVersion('..2026_11_22_00_00_01.2', { 'se.yaml': se(), 'vs.yaml': vs('b') });
      symlinkSync('..2026_11_22_00_00_01.2', join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
      rmSync(join(dir, '..2026_11_22_00_00_00.1'), { recursive: true });
      await waitFor(async () => (await who(p)) === 'b', 4000);
    } finally {
      await p.stop();
    }
  });
});

describe('startup', () => {
  it('refuses to start on an invalid config with file:line messages', async () => {
    const err = await startProxy({ 'vs.yaml': vs('a').replace('hosts: [app]', 'hosts: [app]\n  bogus: 1') }).catch((e: Error & { code?: number; stderr?: string }) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as { code?: number }).code).toBe(1);
    expect((err as { stderr?: string }).stderr).toMatch(/vs\.yaml:\d+: VirtualService\/default\/app: spec\.bogus/);
  });
});
