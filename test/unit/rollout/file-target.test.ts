/** The file target: finding the VirtualService's file in a config directory, writes guarded against concurrent edits. */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError, FileTarget, resolveVsFile } from '../../../src/rollout/target.js';
import type { RolloutState } from '../../../src/rollout/state.js';

const VS = (name: string, ns = 'default'): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: ${ns}}
spec:
  hosts: [${name}]
  http:
  - route:
    - destination: {host: ${name}, subset: v1}
`;

const dirs: string[] = [];
afterEach(() => { while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true }); });
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'remora-rollout-unit-'));
  dirs.push(d);
  return d;
}

describe('resolveVsFile', () => {
  it('a file is itself; a directory is searched like the config loader reads it', () => {
    const d = tmp();
    mkdirSync(join(d, 'sub'));
    mkdirSync(join(d, '..2026_01_01'));
    writeFileSync(join(d, 'a.yaml'), VS('ratings'));
    writeFileSync(join(d, 'sub', 'b.yml'), VS('reviews'));
    writeFileSync(join(d, '..2026_01_01', 'c.yaml'), VS('reviews'));
    writeFileSync(join(d, 'notes.txt'), VS('reviews'));
    expect(resolveVsFile(join(d, 'a.yaml'), 'x', 'default')).toBe(join(d, 'a.yaml'));
    expect(resolveVsFile(d, 'reviews', 'default')).toBe(join(d, 'sub', 'b.yml'));
    expect(() => resolveVsFile(d, 'reviews', 'prod')).toThrow(/no VirtualService prod\/reviews in/);
    writeFileSync(join(d, 'dup.yaml'), VS('reviews'));
    expect(() => resolveVsFile(d, 'reviews', 'default')).toThrow(/is in 2 files/);
  });
});

describe('FileTarget', () => {
  it('writes by rename with the state annotation, refuses a write over a changed file, leaves no helper files', async () => {
    const d = tmp();
    const f = join(d, 'vs.yaml');
    writeFileSync(f, `# keep me\n${VS('reviews')}`);
    const t = new FileTarget(f, 'reviews', 'default');
    const l = await t.read();
    const stale = await t.read();
    l.editor.setWeights('v1', 'v2', 10);
    await t.write(l, { version: 1, phase: 'Progressing', steps: [] } as unknown as RolloutState);
    const text = readFileSync(f, 'utf8');
    expect(text).toMatch(/^# keep me\n/);
    expect(text).toContain('remora.io/rollout:');
    expect(text).toContain('weight: 10');
    expect((await t.read()).state).toMatchObject({ phase: 'Progressing' });
    await expect(t.write(stale, { version: 1, phase: 'Progressing', steps: [] } as unknown as RolloutState)).rejects.toBeInstanceOf(ConflictError);
    await t.writeCommand({ action: 'promote', at: 'now', by: 'me' });
    expect(await t.readCommand()).toEqual({ action: 'promote', at: 'now', by: 'me' });
    expect(readdirSync(d).sort()).toEqual(['.vs.yaml.rollout-command.json', 'vs.yaml']);
    await t.writeCommand(undefined);
    expect(await t.readCommand()).toBeUndefined();
    expect(readdirSync(d)).toEqual(['vs.yaml']);
  });
});
