// `remora certs` through the real CLI: a development root, a workload certificate, and inspect.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI } from '../../support/proxy-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'remora-certs-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const run = (...args: string[]): { code: number | null; out: string; err: string } => {
  const r = spawnSync(process.execPath, [CLI, 'certs', ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

describe('remora certs', () => {
  it('root, workload, inspect', () => {
    expect(run('root', '--out', join(dir, 'root'))).toMatchObject({ code: 0, out: expect.stringContaining('development only') });
    const w = run('workload', '--root', join(dir, 'root'), '--namespace', 'shop', '--service-account', 'cart', '--out', join(dir, 'cart'));
    expect(w.code).toBe(0);
    expect(w.out).toContain('spiffe://cluster.local/ns/shop/sa/cart');
    const i = run('inspect', '--dir', join(dir, 'cart'));
    expect(i.code).toBe(0);
    expect(i.out).toMatch(/^identity: {2}spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart\nprincipal: cluster\.local\/ns\/shop\/sa\/cart\n/);
    expect(i.out).toMatch(/\nbundle: {4}1 CA certificate \(peers must chain to one\)\ncrl: {7}none\n$/);
    // openssl agrees the chain verifies.
    expect(execFileSync('openssl', ['verify', '-CAfile', join(dir, 'cart', 'ca.crt'), join(dir, 'cart', 'tls.crt')], { encoding: 'utf8' })).toContain(': OK');
  });

  it('usage errors exit 2; an unusable directory exits 1 with the reason', () => {
    expect(run('workload', '--root', join(dir, 'root')).code).toBe(2);
    expect(run('nope').code).toBe(2);
    const i = run('inspect', '--dir', join(dir, 'root'));
    expect(i).toMatchObject({ code: 1, out: expect.stringContaining('not usable: no certificate in') });
  });
});
