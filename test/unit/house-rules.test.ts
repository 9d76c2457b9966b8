/**
 * The rules of the house (docs/architecture.md, "Rules of the house") hold over src/, checked by
 * scripts/check-imports.mjs as `npm test` runs this file; and the checker catches each kind of violation, shown on a
 * small tree written for the purpose.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { checkHouse } from '../../scripts/check-imports.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

describe('the house rules hold over src/', () => {
  it('no import cycle, no forbidden import, pure modules without I/O, process.env in cli/ only, one YAML adapter, one kubeconfig loader, one flag table', () => {
    const { modules, problems } = checkHouse(ROOT);
    expect(modules).toBeGreaterThan(100);
    expect(problems).toEqual([]);
  });
});

describe('the checker', () => {
  const dir = mkdtempSync(join(tmpdir(), 'remora-house-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (files: Record<string, string>): string => {
    const root = mkdtempSync(join(dir, 't-'));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    return root;
  };

  it('finds a runtime cycle, and a type-only one only with types counted', () => {
    const root = write({
      'src/a.ts': "import { b } from './b.js';\nexport const a = b;\n",
      'src/b.ts': "import { c } from './c.js';\nexport const b = c;\n",
      'src/c.ts': "import type { A } from './d.js';\nimport { a } from './a.js';\nexport const c = 1; export type C = A; void a;\n",
      'src/d.ts': "import type { C } from './c.js';\nexport type A = C;\n",
    });
    expect(checkHouse(root).problems).toEqual(['cycle: src/a.ts ↔ src/b.ts ↔ src/c.ts']);
    expect(checkHouse(root, { types: true }).problems).toEqual(['cycle: src/a.ts ↔ src/b.ts ↔ src/c.ts ↔ src/d.ts']);
  });

  it('finds proxy/ importing net/, and a pure module reaching node I/O through another module', () => {
    const root = write({
      'src/net/capture.ts': "import { handle } from '../proxy/l4.js';\nexport const accept = handle;\n",
      'src/proxy/l4.ts': "import type { X } from '../net/types.js';\nimport { sniff } from '../net/protocol.js';\nexport const handle = sniff; export type Y = X;\n",
      'src/net/protocol.ts': "export const sniff = 1;\n",
      'src/net/types.ts': 'export type X = 1;\n',
      'src/routing/route.ts': "import { isIP } from 'node:net';\nimport { helper } from '../util/helper.js';\nexport const r = [isIP, helper];\n",
      'src/util/helper.ts': "import { readFileSync } from 'node:fs';\nexport const helper = readFileSync;\n",
      'src/authz/cidr.ts': "import { isIPv4, isIPv6 } from 'node:net';\nexport const ok = [isIPv4, isIPv6];\n",
    });
    expect(checkHouse(root).problems.sort()).toEqual([
      'forbidden: src/proxy/l4.ts imports src/net/protocol.ts (net/ accepts connections and calls into proxy/; proxy/ never calls back)',
      'impure: src/routing/route.ts is pure but reaches node I/O: src/routing/route.ts → src/util/helper.ts → node:fs',
    ]);
  });

  it('finds process.env outside the CLI layer (not in comments), yaml outside the adapter, a kubeconfig loaded elsewhere, a flag literal outside the table', () => {
    const root = write({
      'src/cli/run.ts': 'export const e = process.env.POD_NAME;\n',
      'src/cli.ts': 'export const a = process.argv;\n',
      'src/app.ts': '// reads nothing from process.env itself\nexport const port = Number(process.env.PORT);\n',
      'src/util/yaml.ts': "import { load } from 'js-yaml';\nexport const y = load;\n",
      'src/rollout/edit.ts': "import { Document } from 'yaml';\nexport const d = Document;\n",
      'src/cli/rollout.ts': "export async function kc(k: { loadFromDefault(): void }): Promise<void> { k.loadFromDefault(); }\n",
      'src/errors.ts': "export const E = { timeout: { flag: 'UT' } };\n",
      'src/proxy/tcp.ts': "export function refuse(set: (f: string) => void): void { set('UF'); /* 'UH' in a comment is fine */ }\n",
    });
    expect(checkHouse(root).problems.sort()).toEqual([
      'environment: src/app.ts reads process.env or process.argv (only src/cli.ts and src/cli/ do; pass options down)',
      "flags: src/proxy/tcp.ts writes the response flag 'UF' (take it from src/errors.ts)",
      'kubeconfig: src/cli/rollout.ts loads a kubeconfig itself (use src/discovery/kubeconfig.ts)',
      'yaml: src/rollout/edit.ts imports yaml (YAML goes through src/util/yaml.ts)',
    ]);
  });
});
