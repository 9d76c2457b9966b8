/**
 * A development certificate authority for `remora certs` and the tests: roots, intermediates and SPIFFE workload
 * certificates made by the `openssl` command (EC P-256), laid out as cert-manager and istio-csr write them (`tls.crt`
 * with the chain, `tls.key`, `ca.crt`), and CRLs. Marked for development in every subject: production certificates
 * come from cert-manager (deploy/), never from here.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spiffeUri, type SpiffeId } from './spiffe.js';

export const DEV_ORG = 'Remora development CA - not for production';

/**
 * A certificate that signs others: a root, or an intermediate (or, for tests of forged chains, any certificate with
 * its key). `parents` are the PEM files above it, nearest first, the last one the root; empty or absent for a root.
 */
export interface RootFiles { certFile: string; keyFile: string; parents?: string[] }

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: 'pipe' });
  } catch (e) {
    const err = e as { code?: string; stderr?: Buffer };
    if (err.code === 'ENOENT') throw new Error('the openssl command is needed (Debian: apt-get install openssl)');
    throw new Error(`openssl ${args[0]}: ${err.stderr?.toString().trim() ?? String(e)}`);
  }
}

/** A self-signed root in `dir`: root-cert.pem, root-key.pem. Kept if already there (unless `force`). */
export function createRoot(dir: string, opts: { trustDomain?: string; days?: number; force?: boolean } = {}): RootFiles {
  mkdirSync(dir, { recursive: true });
  const certFile = join(dir, 'root-cert.pem');
  const keyFile = join(dir, 'root-key.pem');
  if (!opts.force && existsSync(certFile) && existsSync(keyFile)) return { certFile, keyFile };
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', String(opts.days ?? 3650),
    '-subj', `/O=${DEV_ORG}/CN=${opts.trustDomain ?? 'cluster.local'} root`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { certFile, keyFile };
}

/** The root a signer chains to (its trust bundle). */
export function rootOf(signer: RootFiles): string {
  const p = signer.parents ?? [];
  return p.length > 0 ? p[p.length - 1]! : signer.certFile;
}

/**
 * An intermediate CA signed by `parent`, in `dir` (ca-cert.pem, ca-key.pem). `ca: false` makes a certificate with
 * `CA:FALSE` (a chain through it must be refused).
 */
export function createIntermediate(parent: RootFiles, dir: string, opts: { days?: number; ca?: boolean } = {}): RootFiles {
  mkdirSync(dir, { recursive: true });
  const certFile = join(dir, 'ca-cert.pem');
  const keyFile = join(dir, 'ca-key.pem');
  const ca = opts.ca !== false;
  signWith(parent, {
    subject: `/O=${DEV_ORG}/CN=intermediate`,
    ext: ca ? ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'] : ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment'],
    days: opts.days ?? 365,
    keyOut: keyFile,
    certOut: certFile,
  });
  return { certFile, keyFile, parents: [parent.certFile, ...(parent.parents ?? [])] };
}

export interface WorkloadFiles { dir: string; certFile: string; keyFile: string; caFile: string }

export interface IssueOptions {
  /** Days of validity from now; negative: a certificate that expired that many days ago. Default 1. */
  days?: number;
  dns?: string[];
  /** An explicit validity window (overrides `days`): e.g. one that starts tomorrow. */
  notBefore?: Date;
  notAfter?: Date;
  /** extendedKeyUsage values; default serverAuth and clientAuth (what Istio's CA and istio-csr issue). */
  extendedKeyUsage?: string[];
  /** The URI SANs instead of the one SPIFFE ID of `id` (e.g. two identities). */
  uris?: string[];
}

/**
 * A workload certificate for `id`, signed by `signer`: `<out>/tls.crt` (the leaf, then the signer's chain up to but
 * not including the root), `tls.key`, `ca.crt` (the root).
 */
export function issueWorkload(signer: RootFiles, id: SpiffeId, out: string, opts: IssueOptions = {}): WorkloadFiles {
  mkdirSync(out, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'remora-ca-'));
  try {
    const key = join(tmp, 'tls.key');
    const leaf = join(tmp, 'leaf.pem');
    const sans = [...(opts.uris ?? [spiffeUri(id)]).map((u) => `URI:${u}`), ...(opts.dns ?? []).map((d) => `DNS:${d}`)].join(',');
    const days = opts.days ?? 1;
    let window: { start: Date; end: Date } | undefined;
    if (opts.notBefore !== undefined || opts.notAfter !== undefined) {
      const start = opts.notBefore ?? new Date(Date.now() - 3_600_000);
      window = { start, end: opts.notAfter ?? new Date(start.getTime() + 86_400_000) };
    } else if (days <= 0) {
      // Expired: validity that ended before now.
      const end = new Date(Date.now() + days * 86_400_000 - 3_600_000);
      window = { start: new Date(end.getTime() - 86_400_000), end };
    }
    signWith(signer, {
      subject: `/O=${DEV_ORG}`,
      ext: [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        `extendedKeyUsage=${(opts.extendedKeyUsage ?? ['serverAuth', 'clientAuth']).join(',')}`,
        `subjectAltName=critical,${sans}`,
      ],
      days,
      ...(window !== undefined ? { window } : {}),
      keyOut: key,
      certOut: leaf,
      tmp,
    });
    const parents = signer.parents ?? [];
    // The chain as cert-manager writes it: the leaf, then every CA below the root.
    const chain = parents.length === 0 ? [] : [signer.certFile, ...parents.slice(0, -1)];
    const files: WorkloadFiles = { dir: out, certFile: join(out, 'tls.crt'), keyFile: join(out, 'tls.key'), caFile: join(out, 'ca.crt') };
    writeFileSync(files.keyFile, readFileSync(key), { mode: 0o600 });
    writeFileSync(files.certFile, [readFileSync(leaf, 'utf8'), ...chain.map((f) => readFileSync(f, 'utf8'))].join(''));
    writeFileSync(files.caFile, readFileSync(rootOf(signer), 'utf8'));
    return files;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** A self-signed workload certificate (no CA at all) for `uri`: what an attacker makes in one command. */
export function selfSignedWorkload(uri: string, out: string): WorkloadFiles {
  mkdirSync(out, { recursive: true });
  const files: WorkloadFiles = { dir: out, certFile: join(out, 'tls.crt'), keyFile: join(out, 'tls.key'), caFile: join(out, 'ca.crt') };
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', files.keyFile, '-out', files.certFile,
    '-days', '1', '-subj', `/O=${DEV_ORG}`, '-addext', `subjectAltName=critical,URI:${uri}`,
    '-addext', 'extendedKeyUsage=serverAuth,clientAuth',
  ]);
  writeFileSync(files.caFile, readFileSync(files.certFile));
  return files;
}

/** A CRL signed by `signer` (a root or intermediate) that revokes the given certificates; written to `out` (PEM). */
export function createCrl(signer: RootFiles, revoked: readonly string[], out: string, opts: { days?: number } = {}): string {
  const tmp = mkdtempSync(join(tmpdir(), 'remora-crl-'));
  try {
    const cnf = caConfig(tmp);
    for (const certFile of revoked) openssl(['ca', '-batch', '-config', cnf, '-cert', signer.certFile, '-keyfile', signer.keyFile, '-revoke', certFile]);
    openssl(['ca', '-batch', '-config', cnf, '-cert', signer.certFile, '-keyfile', signer.keyFile, '-gencrl', '-crldays', String(opts.days ?? 1), '-out', out]);
    return out;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** An `openssl ca` configuration in `tmp` (its own database), for explicit validity windows and CRLs. */
function caConfig(tmp: string): string {
  const caDir = join(tmp, 'ca');
  mkdirSync(join(caDir, 'new'), { recursive: true });
  writeFileSync(join(caDir, 'index.txt'), '');
  writeFileSync(join(caDir, 'serial'), `${Date.now().toString(16).padStart(16, '0')}\n`);
  writeFileSync(join(caDir, 'crlnumber'), '01\n');
  const cnf = join(tmp, 'ca.cnf');
  writeFileSync(cnf, [
    '[ca]', 'default_ca=dev', '[dev]', `dir=${caDir}`, 'database=$dir/index.txt', 'new_certs_dir=$dir/new', 'serial=$dir/serial',
    'crlnumber=$dir/crlnumber', 'default_md=sha256', 'default_crl_days=1', 'policy=any', 'unique_subject=no', 'copy_extensions=none',
    '[any]', 'organizationName=optional',
  ].join('\n'));
  return cnf;
}

/** Make a key and a certificate for `subject` with extensions `ext`, signed by `signer`. */
function signWith(signer: RootFiles, o: { subject: string; ext: string[]; days: number; window?: { start: Date; end: Date }; keyOut: string; certOut: string; tmp?: string }): void {
  const tmp = o.tmp ?? mkdtempSync(join(tmpdir(), 'remora-ca-'));
  try {
    const csr = join(tmp, 'req.csr');
    const ext = join(tmp, 'ext.cnf');
    writeFileSync(ext, o.ext.join('\n'));
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', o.keyOut, '-out', csr, '-subj', o.subject]);
    if (o.window === undefined) {
      openssl(['x509', '-req', '-in', csr, '-CA', signer.certFile, '-CAkey', signer.keyFile, '-CAcreateserial', '-CAserial', join(tmp, 'serial'), '-out', o.certOut, '-days', String(o.days), '-extfile', ext]);
      return;
    }
    // An explicit window: openssl 3.0's x509 has no -not_before/-not_after, its ca command has -startdate/-enddate.
    const fmt = (d: Date): string => d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
    openssl(['ca', '-batch', '-config', caConfig(tmp), '-in', csr, '-cert', signer.certFile, '-keyfile', signer.keyFile, '-out', o.certOut,
      '-startdate', fmt(o.window.start), '-enddate', fmt(o.window.end), '-extfile', ext, '-notext']);
  } finally {
    if (o.tmp === undefined) rmSync(tmp, { recursive: true, force: true });
  }
}
