/**
 * Resources read from files keep no copy of their text: the line of a later error is found by reading the file again
 * (when its content is unchanged), else the document's first line is given. The error lines of `remora validate` and
 * of a rejected reload are the same as when the text was kept.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../src/config/load.js';
import { validateResources } from '../../../src/config/validate.js';
import { errorAt } from '../../../src/config/resource.js';

const YAML = `# two documents; the second has an error deep inside
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: a
  namespace: default
spec:
  hosts: [a.example.com]
  http:
  - route:
    - destination:
        host: a.example.com
      weight: 80
    timeout: 3 parsecs
`;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function fileWith(text: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'remora-lines-'));
  dirs.push(dir);
  const file = join(dir, 'mesh.yaml');
  writeFileSync(file, text);
  return { dir, file };
}

const lineOfText = (text: string, needle: string): number => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

describe('line numbers of resources read from files', () => {
  it('an error points at its field, found by reading the unchanged file again', async () => {
    const { dir, file } = fileWith(YAML);
    const loaded = await loadConfig([dir], 'default');
    expect(loaded.errors).toEqual([]);
    const errors = validateResources(loaded.resources).filter((e) => e.severity !== 'warning');
    expect(errors.map((e) => [e.file, e.line, e.field])).toEqual([[file, lineOfText(YAML, 'timeout: 3 parsecs'), 'spec.http[0].timeout']]);
    // Asked again (a later rebuild), the same answer.
    const vs = loaded.resources[1]!;
    expect(vs.lineOf(['spec', 'http', 0, 'route', 0, 'weight'])).toBe(lineOfText(YAML, 'weight: 80'));
  });

  it('the file changed since it was read: the document\'s first line, never a line of the new text', async () => {
    const { dir, file } = fileWith(YAML);
    const loaded = await loadConfig([dir], 'default');
    writeFileSync(file, `# rewritten\n\n\n${YAML}`);
    const vs = loaded.resources[1]!;
    expect(vs.source.line).toBe(lineOfText(YAML, 'kind: VirtualService') - 1);
    expect(errorAt(vs, ['spec', 'http', 0, 'timeout'], 'x').line).toBe(vs.source.line);
    rmSync(file);
    expect(loaded.resources[0]!.lineOf(['spec', 'hosts'])).toBe(loaded.resources[0]!.source.line);
  });

  it('the digest still tells a changed file from an unchanged one', async () => {
    const { dir, file } = fileWith(YAML);
    const a = await loadConfig([dir], 'default');
    const b = await loadConfig([dir], 'default');
    expect(b.digest).toBe(a.digest);
    writeFileSync(file, YAML.replace('weight: 80', 'weight: 81'));
    expect((await loadConfig([dir], 'default')).digest).not.toBe(a.digest);
  });
});
