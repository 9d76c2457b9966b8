/**
 * The file watcher on real directories: a rename into place (a ConfigMap's `..data` swap, `mv`) is read at once, a
 * file written in place is read only once its writer has been quiet for debounceMs, so a slow writer is never read
 * (and rejected) halfway; with the config store behind it, such a write is one accepted reload.
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileWatcher } from '../../../src/discovery/file-watcher.js';
import { ConfigStore } from '../../../src/discovery/config-store.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'remora-watch-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A watcher whose callback records what `read` returns at that moment. */
async function watching<T>(paths: string[], read: () => T, debounceMs: number): Promise<{ w: FileWatcher; seen: Array<{ at: number; value: T }> }> {
  const seen: Array<{ at: number; value: T }> = [];
  const w = new FileWatcher(paths, () => seen.push({ at: performance.now(), value: read() }), debounceMs, 60_000);
  await w.start();
  cleanups.push(() => w.stop());
  return { w, seen };
}

async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('FileWatcher', () => {
  it('a ConfigMap update (the ..data symlink swapped by rename) is read at once, not after the write debounce', async () => {
    const dir = tempDir();
    // The kubelet's layout: ..<timestamp>/ holds the files, ..data links to it, each key links through ..data.
    mkdirSync(join(dir, '..2026_12_07_a'));
    writeFileSync(join(dir, '..2026_12_07_a', 'mesh.yaml'), 'version: a\n');
    symlinkSync('..2026_12_07_a', join(dir, '..data'));
    symlinkSync('..data/mesh.yaml', join(dir, 'mesh.yaml'));
    const { seen } = await watching([dir], () => readFileSync(join(dir, 'mesh.yaml'), 'utf8'), 3000);

    // The kubelet's atomic writer: new directory, files in it, ..data_tmp → it, renamed over ..data, old one removed.
    mkdirSync(join(dir, '..2026_12_07_b'));
    writeFileSync(join(dir, '..2026_12_07_b', 'mesh.yaml'), 'version: b\n');
    symlinkSync('..2026_12_07_b', join(dir, '..data_tmp'));
    const swapped = performance.now();
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    rmSync(join(dir, '..2026_12_07_a'), { recursive: true });

    await until('the new version read', () => seen.some((s) => s.value === 'version: b\n'));
    const first = seen.find((s) => s.value === 'version: b\n')!;
    // A 'change' debounce would be 3,000 ms here.
    expect(first.at - swapped).toBeLessThan(1500);
  });

  it('a file written elsewhere and moved into place (mv) is read at once', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'mesh.yaml'), 'version: a\n');
    const { seen } = await watching([dir], () => readFileSync(join(dir, 'mesh.yaml'), 'utf8'), 3000);
    // The temporary file is in the watched directory too, as editors and `sed -i` do: its writes are not waited for once it is moved.
    writeFileSync(join(dir, '.mesh.yaml.tmp'), 'version: b\n');
    const moved = performance.now();
    renameSync(join(dir, '.mesh.yaml.tmp'), join(dir, 'mesh.yaml'));
    await until('the moved file read', () => seen.some((s) => s.value === 'version: b\n'));
    expect(seen.find((s) => s.value === 'version: b\n')!.at - moved).toBeLessThan(1500);
  });

  it('a file written in place slowly is read once, complete, debounceMs after its last write', async () => {
    const dir = tempDir();
    const file = join(dir, 'mesh.yaml');
    writeFileSync(file, 'version: a\n');
    const { seen } = await watching([dir], () => readFileSync(file, 'utf8'), 200);
    const parts = ['kind: VirtualService\n', 'metadata:\n  name: slow\n', 'spec:\n  hosts: [slow]\n'];
    writeFileSync(file, parts[0]!); // truncated and rewritten in place: 'change' events only
    for (const p of parts.slice(1)) {
      await pause(60); // a slow writer: each write well within the debounce of the one before
      appendFileSync(file, p);
    }
    const done = performance.now();
    await until('read after the writer stopped', () => seen.length > 0);
    expect(seen.map((s) => s.value)).toEqual([parts.join('')]);
    expect(seen[0]!.at - done).toBeGreaterThanOrEqual(150);
  });

  it('a new file created and then written slowly is not read halfway either', async () => {
    const dir = tempDir();
    const file = join(dir, 'new.yaml');
    const { seen } = await watching([dir], () => readFileSync(file, 'utf8'), 200);
    const parts = ['a: 1\n', 'b: 2\n', 'c: 3\n'];
    writeFileSync(file, parts[0]!); // created ('rename'), then written ('change')
    for (const p of parts.slice(1)) {
      await pause(60);
      appendFileSync(file, p);
    }
    await until('read', () => seen.length > 0);
    expect(seen.map((s) => s.value)).toEqual([parts.join('')]);
  });

  it('with the config store: a slow in-place write of a VirtualService is one accepted reload, no rejection', async () => {
    const dir = tempDir();
    const file = join(dir, 'mesh.yaml');
    const vs = (host: string) => `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r\n  namespace: default\nspec:\n  hosts: [${host}]\n  http:\n  - route:\n    - destination:\n        host: ${host}\n`;
    writeFileSync(file, vs('a.example.com'));
    const store = new ConfigStore({ paths: [dir], namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY', log: () => {} });
    expect(await store.reloadFiles(true)).toBe(true);
    const reloadsBefore = store.reloads;
    const w = new FileWatcher([dir], () => { void store.reloadFiles(); }, 200, 60_000);
    await w.start();
    cleanups.push(() => w.stop());
    const text = vs('b.example.com');
    // Written in three pieces 60 ms apart: read at any moment in between, it would not parse.
    const cut = [text.indexOf('spec:'), text.indexOf('  - route:')];
    writeFileSync(file, text.slice(0, cut[0]));
    await pause(60);
    appendFileSync(file, text.slice(cut[0], cut[1]));
    await pause(60);
    appendFileSync(file, text.slice(cut[1]));
    await until('the edit applied', () => store.reloads > reloadsBefore);
    expect(store.current!.resources.map((r) => r.spec.hosts)).toEqual([['b.example.com']]);
    expect(store.reloadFailures).toBe(0);
    expect(store.lastError).toBeUndefined();
    expect(store.reloads).toBe(reloadsBefore + 1);
    expect(w.fired).toBe(1);
  });
  it('a change the poll saw does not hold a rename back for the write debounce', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'mesh.yaml'), 'version: a\n');
    const seen: Array<{ at: number; value: string }> = [];
    // Poll every 40 ms; writes in place wait 3 s.
    const w = new FileWatcher([dir], () => seen.push({ at: performance.now(), value: readFileSync(join(dir, 'mesh.yaml'), 'utf8') }), 3000, 40);
    await w.start();
    cleanups.push(() => w.stop());
    const replace = (v: string): number => {
      writeFileSync(join(dir, '.mesh.yaml.new'), `version: ${v}\n`);
      const at = performance.now();
      renameSync(join(dir, '.mesh.yaml.new'), join(dir, 'mesh.yaml'));
      return at;
    };
    replace('b');
    await until('the first rename read', () => seen.length === 1);
    // The poll now sees the same change (its signature moved) and marks an unknown file as written: read in 3 s.
    await pause(150);
    const t = replace('c');
    await until('the second rename read', () => seen.some((x) => x.value === 'version: c\n'), 2500);
    const read = seen.find((x) => x.value === 'version: c\n')!;
    expect(read.at - t).toBeLessThan(1000);
  });
  it('a new subdirectory gets its own watch; an edit renamed into place does not list the directories again', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'mesh.yaml'), 'version: a\n');
    const sub = join(dir, 'team-a');
    const { w, seen } = await watching([dir], () => { try { return readFileSync(join(sub, 'vs.yaml'), 'utf8'); } catch { return ''; } }, 3000);
    mkdirSync(sub);
    await until('the new directory read', () => w.fired === 1);
    await until('the directories listed again', () => w.listings === 2);
    writeFileSync(join(sub, '.vs.yaml.new'), 'version: b\n');
    const t = performance.now();
    renameSync(join(sub, '.vs.yaml.new'), join(sub, 'vs.yaml'));
    await until('the file in the new directory read', () => seen.some((x) => x.value === 'version: b\n'), 2500);
    expect(seen.find((x) => x.value === 'version: b\n')!.at - t).toBeLessThan(1000);
    await pause(50);
    expect(w.listings).toBe(2);
  });
});
