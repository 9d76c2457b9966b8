/**
 * loadConfig with a ParseCache: unchanged files give the same Resource objects without being parsed again; a change
 * is seen whatever it keeps (same size, same inode, a rename over the file), including for files whose stat is
 * trusted (unchanged for a while before they were read), and a file changed just before it was read is read again.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, settleParseCache, unsettled, SETTLE_AFTER_MS, type ParseCache } from '../../../src/config/load.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

const se = (host: string): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se, namespace: default}
spec: {hosts: [${host}], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS}
`;

/** A directory with a.yaml and b.yaml (one ServiceEntry each), and an empty parse cache. */
function twoFiles(): { dir: string; a: string; b: string; cache: ParseCache } {
  const dir = mkdtempSync(join(tmpdir(), 'remora-cache-'));
  dirs.push(dir);
  const a = join(dir, 'a.yaml');
  const b = join(dir, 'b.yaml');
  writeFileSync(a, se('aa.example.com'));
  writeFileSync(b, se('bb.example.com'));
  return { dir, a, b, cache: new Map() };
}

describe('loadConfig with a parse cache', () => {
  it('parses only what changed, and sees every change, trusted stat or not', async () => {
    const { dir, a, b, cache } = twoFiles();
    const hostOf = (r: { spec: Record<string, unknown> }): unknown => (r.spec.hosts as string[])[0];

    const first = await loadConfig([dir], 'default', cache);
    expect(first.parsed).toEqual([a, b]);
    // Just written: read again (not trusted by stat), not parsed again.
    const again = await loadConfig([dir], 'default', cache);
    expect(again.parsed).toEqual([]);
    expect(again.resources[0]).toBe(first.resources[0]);
    expect(again.digest).toBe(first.digest);
    // A change of the same size right after a read is seen.
    writeFileSync(a, se('ab.example.com'));
    const changed = await loadConfig([dir], 'default', cache);
    expect(changed.parsed).toEqual([a]);
    expect(hostOf(changed.resources[0]!)).toBe('ab.example.com');
    expect(changed.resources[1]).toBe(first.resources[1]);

    // Left alone long enough, the next read trusts the stat; every kind of change is still seen.
    await new Promise((r) => setTimeout(r, 2100));
    const settled = await loadConfig([dir], 'default', cache);
    expect(settled.parsed).toEqual([]);
    expect(cache.get(a)!.stat).toBeDefined();
    const trusted = await loadConfig([dir], 'default', cache);
    expect(trusted.parsed).toEqual([]);
    expect(trusted.resources).toEqual(settled.resources);
    expect(trusted.resources[0]).toBe(settled.resources[0]);
    expect(trusted.digest).toBe(settled.digest);

    writeFileSync(a, se('ac.example.com')); // same size, same inode
    const sameSize = await loadConfig([dir], 'default', cache);
    expect(sameSize.parsed).toEqual([a]);
    expect(hostOf(sameSize.resources[0]!)).toBe('ac.example.com');
    expect(sameSize.digest).not.toBe(trusted.digest);

    writeFileSync(join(dir, 'tmp'), se('bc.example.com'));
    renameSync(join(dir, 'tmp'), b); // a ConfigMap-style swap: new inode
    const renamed = await loadConfig([dir], 'default', cache);
    expect(renamed.parsed).toEqual([b]);
    expect(hostOf(renamed.resources[1]!)).toBe('bc.example.com');

    rmSync(a);
    const removed = await loadConfig([dir], 'default', cache);
    expect(removed.resources.map(hostOf)).toEqual(['bc.example.com']);
    expect(cache.has(a)).toBe(false);
  });
  it('settles files read just after they changed once they have aged: a stat key when the text is still the one parsed', async () => {
    const { dir, a, b, cache } = twoFiles();
    const first = await loadConfig([dir], 'default', cache);
    expect(unsettled(cache)).toBe(true);
    // Too young yet: nothing settled, both counted as left.
    expect(await settleParseCache(cache)).toBe(2);
    expect(cache.get(a)!.stat).toBeUndefined();
    await new Promise((r) => setTimeout(r, SETTLE_AFTER_MS + 50));
    // b changed since it was read (not yet reloaded): it keeps no key; a gets one.
    writeFileSync(b, se('bc.example.com'));
    await new Promise((r) => setTimeout(r, SETTLE_AFTER_MS + 50));
    expect(await settleParseCache(cache)).toBe(1);
    expect(cache.get(a)!.stat).toBeDefined();
    expect(cache.get(b)!.stat).toBeUndefined();
    expect(unsettled(cache)).toBe(true);
    // The reload sees b's change (and keeps a's objects); a later change of a is seen through its key.
    const next = await loadConfig([dir], 'default', cache);
    expect(next.parsed).toEqual([b]);
    expect(next.resources[0]).toBe(first.resources[0]);
    writeFileSync(a, se('ab.example.com'));
    const last = await loadConfig([dir], 'default', cache);
    expect(last.parsed).toEqual([a]);
    expect((last.resources[0]!.spec.hosts as string[])[0]).toBe('ab.example.com');
  });
});
