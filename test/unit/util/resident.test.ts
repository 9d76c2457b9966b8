// dropStartupPages (native/resident.c via src/util/resident.ts): the clean read-only file pages of the node binary
// leave the resident set, nothing else changes, and the process goes on working (code and data it touches again
// are mapped again). Run in a child node so the test runner's own process is left alone.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findAddon } from '../../../src/net/original-dst.js';

const addon = findAddon(dirname(fileURLToPath(import.meta.url)));

const CHILD = `
const { readFileSync } = require('node:fs');
const addon = require(process.argv[1]);
const kb = (k) => Number(new RegExp('^' + k + ':\\\\s+(\\\\d+) kB', 'm').exec(readFileSync('/proc/self/status', 'utf8'))[1]);
const state = { answer: 42, list: Array.from({ length: 1000 }, (_, i) => ({ i, s: 'x' + i })) };
const before = { file: kb('RssFile'), anon: kb('RssAnon') };
const r = addon.dropStartupPages();
const after = { file: kb('RssFile'), anon: kb('RssAnon') };
// Work that needs the binary's code and data again: the compiler, ICU, crypto, a built-in module not loaded yet.
const again = {
  sum: state.list.reduce((s, x) => s + x.i, 0),
  intl: new Intl.NumberFormat('de-DE').format(1234567.891),
  hash: require('node:crypto').createHash('sha256').update('remora').digest('hex').slice(0, 12),
  zlib: require('node:zlib').gunzipSync(require('node:zlib').gzipSync('abc')).toString(),
  answer: state.answer,
};
process.stdout.write(JSON.stringify({ r, before, after, again, later: kb('RssFile') }));
`;

describe.runIf(process.platform === 'linux' && addon !== undefined)('dropStartupPages', () => {
  it('takes the start-up file pages out of the resident set and the process goes on working', () => {
    const out = JSON.parse(execFileSync(process.execPath, ['-e', CHILD, join(addon!)], { encoding: 'utf8' })) as {
      r: { mappings: number; kB: number };
      before: { file: number; anon: number };
      after: { file: number; anon: number };
      again: Record<string, unknown>;
      later: number;
    };
    expect(out.r.mappings).toBeGreaterThan(0);
    expect(out.r.kB).toBeGreaterThan(10_000); // the node binary's text and read-only data alone are ~80 MB of mappings
    // The file-backed resident set shrinks (a bare node: ~35 → ~10 MB); private memory is not touched.
    expect(out.after.file).toBeLessThan(out.before.file - 5_000);
    expect(Math.abs(out.after.anon - out.before.anon)).toBeLessThan(2_000);
    expect(out.again).toEqual({ sum: 499_500, intl: '1.234.567,891', hash: expect.stringMatching(/^[0-9a-f]{12}$/), zlib: 'abc', answer: 42 });
    expect(out.later).toBeGreaterThan(out.after.file); // what was needed again is mapped again
  });

  it('src/util/resident.ts: undefined without the addon, the advised mappings with it', async () => {
    const { dropStartupPages } = await import('../../../src/util/resident.js');
    expect(dropStartupPages('/nonexistent/remora_net.node')).toBeUndefined();
  });
});
