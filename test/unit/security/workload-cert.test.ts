// Workload certificates: SPIFFE identities, the development CA (openssl), loading and checking a directory in both
// layouts, and the store's rotation (a valid new set taken, a broken or foreign one refused while the last good one
// stays, expiry noticed).
import { mkdtempSync, rmSync, writeFileSync, renameSync, readFileSync, cpSync, mkdirSync, symlinkSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certIdentity, parseSpiffeId, principalOf, uriSans } from '../../../src/security/spiffe.js';
import { createCrl, createIntermediate, createRoot, issueWorkload, type RootFiles } from '../../../src/security/dev-ca.js';
import { loadWorkloadCert, WorkloadCertStore } from '../../../src/security/workload-cert.js';
import { waitFor } from '../../support/proxy-harness.js';

let dir: string;
let root: RootFiles;
let otherRoot: RootFiles;
const ID = { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'remora-certs-'));
  root = createRoot(join(dir, 'root'));
  otherRoot = createRoot(join(dir, 'other-root'), { trustDomain: 'evil.example' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('SPIFFE identities', () => {
  it('parses Istio-shaped IDs only, and gives the AuthorizationPolicy principal', () => {
    expect(parseSpiffeId('spiffe://cluster.local/ns/shop/sa/cart')).toEqual(ID);
    expect(principalOf(ID)).toBe('cluster.local/ns/shop/sa/cart');
    for (const bad of ['spiffe://cluster.local/ns/shop', 'https://cluster.local/ns/shop/sa/cart', 'spiffe://td/ns//sa/x', 'spiffe://td/ns/a/sa/b/c']) expect(parseSpiffeId(bad)).toBeUndefined();
  });

  it('reads URI SANs from node\'s subjectAltName, quoted or not', () => {
    expect(uriSans({ subjectAltName: 'DNS:a.example, URI:spiffe://cluster.local/ns/shop/sa/cart, IP Address:10.0.0.1' })).toEqual(['spiffe://cluster.local/ns/shop/sa/cart']);
    expect(uriSans({ subjectAltName: 'URI:"spiffe://td/ns/a, b/sa/c"' })).toEqual(['spiffe://td/ns/a, b/sa/c']);
    expect(certIdentity({ subjectAltName: 'URI:spiffe://a/ns/b/sa/c, URI:spiffe://a/ns/b/sa/d' })).toBeUndefined();
    expect(certIdentity({ subjectAltName: undefined })).toBeUndefined();
  });
});

describe('development CA and loading', () => {
  it('issues a workload certificate with one SPIFFE URI SAN, marked for development, that loads', () => {
    const w = issueWorkload(root, ID, join(dir, 'w1'), { dns: ['cart.shop.svc'] });
    const leaf = new X509Certificate(readFileSync(w.certFile));
    expect(leaf.subject).toContain('not for production');
    expect(leaf.ca).toBe(false);
    expect(leaf.subjectAltName).toContain('URI:spiffe://cluster.local/ns/shop/sa/cart');
    const r = loadWorkloadCert(w.dir);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.cert.principal).toBe('cluster.local/ns/shop/sa/cart');
    expect(r.cert.notAfter.getTime() - Date.now()).toBeGreaterThan(23 * 3600_000);
  });

  it('loads Istio\'s file layout (cert-chain.pem, key.pem, root-cert.pem) too', () => {
    const w = issueWorkload(root, ID, join(dir, 'w-src'));
    const istio = join(dir, 'istio-layout');
    mkdirSync(istio);
    cpSync(w.certFile, join(istio, 'cert-chain.pem'));
    cpSync(w.keyFile, join(istio, 'key.pem'));
    cpSync(w.caFile, join(istio, 'root-cert.pem'));
    expect(loadWorkloadCert(istio).ok).toBe(true);
  });

  it('refuses: no files, a key of another certificate, another CA, an expired certificate, garbage', () => {
    const reasons: string[] = [];
    const fail = (d: string): void => {
      const r = loadWorkloadCert(d);
      expect(r.ok).toBe(false);
      if (!r.ok) reasons.push(r.error.replace(dir, ''));
    };
    fail(join(dir, 'nothing'));
    const a = issueWorkload(root, ID, join(dir, 'mismatch'));
    const b = issueWorkload(root, ID, join(dir, 'other'));
    cpSync(b.keyFile, a.keyFile);
    fail(a.dir);
    const foreign = issueWorkload(otherRoot, ID, join(dir, 'foreign'));
    cpSync(join(dir, 'root', 'root-cert.pem'), foreign.caFile);
    fail(foreign.dir);
    fail(issueWorkload(root, ID, join(dir, 'expired'), { days: -1 }).dir);
    // A file that holds no PEM certificate at all.
    const spare = issueWorkload(root, ID, join(dir, 'spare'));
    const g = join(dir, 'garbage');
    mkdirSync(g);
    writeFileSync(join(g, 'tls.crt'), 'not a certificate');
    writeFileSync(join(g, 'tls.key'), readFileSync(spare.keyFile));
    writeFileSync(join(g, 'ca.crt'), readFileSync(spare.caFile));
    fail(g);
    expect(reasons).toEqual([
      expect.stringMatching(/^no certificate in .* \(expected tls\.crt/),
      expect.stringMatching(/tls\.key: the key does not match the certificate$/),
      expect.stringMatching(/tls\.crt: not issued by a CA in .*ca\.crt$/),
      expect.stringMatching(/tls\.crt: expired at \d{4}-/),
      expect.stringMatching(/tls\.crt: no certificate$/),
    ]);
  });
});

describe('trust bundle, intermediates and CRLs', () => {
  it('a chain through an intermediate loads against the root; a CRL beside the certificate is read, a broken one refused', () => {
    const inter = createIntermediate(root, join(dir, 'inter'));
    const w = issueWorkload(inter, ID, join(dir, 'via-inter'));
    expect(readFileSync(w.certFile, 'utf8').split('BEGIN CERTIFICATE').length - 1).toBe(2);
    const r = loadWorkloadCert(w.dir);
    expect(r.ok && r.cert.crl).toBe(undefined);
    createCrl(root, [], join(w.dir, 'ca-crl.pem'));
    const withCrl = loadWorkloadCert(w.dir);
    expect(withCrl.ok && withCrl.cert.crl).toMatch(/BEGIN X509 CRL/);
    expect(withCrl.ok && withCrl.cert.files.crl).toBe(join(w.dir, 'ca-crl.pem'));
    writeFileSync(join(w.dir, 'ca-crl.pem'), 'not a crl');
    const broken = loadWorkloadCert(w.dir);
    expect(broken.ok).toBe(false);
    expect(!broken.ok && broken.error).toMatch(/ca-crl\.pem: not a PEM certificate revocation list/);
  });

  it('a change of the trust bundle alone (a root rotation: old and new roots) is taken as a rotation', async () => {
    const live = join(dir, 'root-rotation');
    issueWorkload(root, ID, live);
    const store = new WorkloadCertStore(live, { pollMs: 50 });
    const rotated: string[] = [];
    store.on('rotated', (c: { ca: string }) => rotated.push(c.ca));
    store.start();
    try {
      const serial = store.current!.serialNumber;
      const newRoot = createRoot(join(dir, 'new-root'));
      writeFileSync(join(live, 'ca.crt.new'), readFileSync(join(dir, 'root', 'root-cert.pem'), 'utf8') + readFileSync(newRoot.certFile, 'utf8'));
      renameSync(join(live, 'ca.crt.new'), join(live, 'ca.crt'));
      await waitFor(() => rotated.length === 2, 3000);
      expect(store.current!.serialNumber).toBe(serial);
      expect(store.current!.ca.split('BEGIN CERTIFICATE').length - 1).toBe(2);
      expect(store.rotations).toBe(1);
      // A CRL appearing beside it is a change too.
      createCrl(root, [], join(live, 'ca-crl.pem'));
      await waitFor(() => rotated.length === 3, 3000);
      expect(store.current!.crl).toMatch(/BEGIN X509 CRL/);
    } finally {
      store.stop();
    }
  });
});

describe('WorkloadCertStore', () => {
  it('takes a rotated certificate, refuses a broken one while keeping the last good, and notices expiry', async () => {
    const live = join(dir, 'live');
    issueWorkload(root, ID, live);
    // The clock runs (a certificate issued mid-test is valid from its signing second on); the test moves it past
    // notAfter at the end.
    let skew = 0;
    const store = new WorkloadCertStore(live, { pollMs: 50, now: () => new Date(Date.now() + skew) });
    const rotated: string[] = [];
    const rejected: string[] = [];
    store.on('rotated', (c: { serialNumber: string }) => rotated.push(c.serialNumber));
    store.on('rejected', (e: string) => rejected.push(e));
    store.start();
    try {
      expect(store.valid).toBe(true);
      const first = store.current!.serialNumber;
      // Rotation as a Secret update: new files written aside, then moved in.
      const next = issueWorkload(root, ID, join(dir, 'next'));
      renameSync(next.keyFile, join(live, 'tls.key.new'));
      renameSync(next.certFile, join(live, 'tls.crt.new'));
      renameSync(join(live, 'tls.key.new'), join(live, 'tls.key'));
      renameSync(join(live, 'tls.crt.new'), join(live, 'tls.crt'));
      await waitFor(() => store.current!.serialNumber !== first, 10_000);
      expect(store.rotations).toBe(1);
      expect(rotated).toHaveLength(2);
      // A truncated certificate: refused, the rotated one stays.
      const good = store.current!.serialNumber;
      writeFileSync(join(live, 'tls.crt'), readFileSync(join(live, 'tls.crt'), 'utf8').slice(0, 200));
      await waitFor(() => rejected.length > 0, 10_000);
      expect(store.current!.serialNumber).toBe(good);
      expect(store.valid).toBe(true);
      expect(store.lastError).toMatch(/tls\.crt/);
      // Time passes beyond notAfter: no longer valid.
      skew = store.current!.notAfter.getTime() + 1000 - Date.now();
      expect(store.valid).toBe(false);
      expect(store.expiresInSeconds()!).toBeLessThan(0);
    } finally {
      store.stop();
    }
  });

  it('follows a Kubernetes Secret mount (..data symlink swapped)', async () => {
    const mount = join(dir, 'mount');
    mkdirSync(mount);
    const v1 = issueWorkload(root, ID, join(mount, '..v1'));
    symlinkSync('..v1', join(mount, '..data'));
    for (const f of ['tls.crt', 'tls.key', 'ca.crt']) symlinkSync(join('..data', f), join(mount, f));
    const store = new WorkloadCertStore(mount, { pollMs: 50 }).start();
    try {
      expect(store.current!.serialNumber).toBe(new X509Certificate(readFileSync(v1.certFile)).serialNumber);
      const v2 = issueWorkload(root, ID, join(mount, '..v2'));
      symlinkSync('..v2', join(mount, '..data_tmp'));
      renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
      const want = new X509Certificate(readFileSync(v2.certFile)).serialNumber;
      await waitFor(() => store.current!.serialNumber === want, 10_000);
    } finally {
      store.stop();
    }
  });
});
