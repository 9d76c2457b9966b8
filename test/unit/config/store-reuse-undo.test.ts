/**
 * A file edit the store rejects leaves the config in use saying where its resources are in the text it was read from:
 * the edit moved the documents it reused (lines added above them), and the rejected load is taken back, so a later
 * build (another source's event) reports the lines a store built from that text reports.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigStore, type StoreOptions } from '../../../src/discovery/config-store.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

function opts(dir: string, warned: string[]): StoreOptions {
  return { paths: [dir], namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY', log: (level, msg) => { if (level === 'warn') warned.push(msg); } };
}

/** Two VirtualServices claiming one host in one namespace: the second gets a warning naming the first's line. */
const vs = (name: string, extra = ''): string =>
  `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ${name}, namespace: default}\nspec:\n  hosts: [h.example.com]\n  http:\n  - route:\n    - destination: {host: h.example.com}\n${extra}`;

describe('ConfigStore with per-document reuse', () => {
  it('a rejected edit that moved reused documents leaves their lines as in the text in use', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-undo-'));
    dirs.push(dir);
    const file = join(dir, 'm.yaml');
    const good = `---\n${vs('a')}---\n${vs('b')}`;
    writeFileSync(file, good);
    // The store logs a warning when it first appears (validation warnings carry file:line).
    const warned: string[] = [];
    const store = new ConfigStore(opts(dir, warned));
    expect(await store.reloadFiles(true)).toBe(true);
    const claim = `${file}:15: VirtualService/default/b: spec.hosts[0]: warning: VirtualService default/a (${file}:2) also defines host h.example.com`;
    expect(warned.filter((w) => w.startsWith(claim))).toHaveLength(1);
    // Rejected: an invalid timeout, four lines more in the first document (the second is reused, four lines down).
    writeFileSync(file, `---\n${vs('a', '    timeout: 3 parsecs\n# one\n# two\n# three\n')}---\n${vs('b')}`);
    expect(await store.reloadFiles()).toBe(false);
    expect(store.lastError!.errors).toHaveLength(1);
    expect(store.lastError!.errors[0]!.startsWith(`${file}:10: VirtualService/default/a: spec.http[0].timeout: `)).toBe(true);
    // Another source's event builds again from the inputs in use: the same warning, naming the lines of `good` (a
    // warning with other lines would be a new one, and logged).
    warned.length = 0;
    expect(store.setExternal('kubernetes', { resources: [], services: [] })).toBe(true);
    expect(warned).toEqual([]);
    const refWarned: string[] = [];
    const ref = new ConfigStore(opts(dir, refWarned));
    writeFileSync(file, good);
    expect(await ref.reloadFiles(true)).toBe(true);
    expect(refWarned.filter((w) => w.startsWith(claim))).toHaveLength(1);
    // The good text again: nothing new.
    expect(await store.reloadFiles()).toBe(true);
    expect(warned).toEqual([]);
    store.stop();
    ref.stop();
  });
});
