/**
 * A development certificate authority for `remora certs` and the tests: a root and SPIFFE workload certificates
 * made by the `openssl` command (EC P-256), laid out as cert-manager and istio-csr write them (`tls.crt` with the
 * chain, `tls.key`, `ca.crt`). Marked for development in every subject: production certificates come from
 * cert-manager (deploy/), never from here.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spiffeUri, type SpiffeId } from './spiffe.js';

export const DEV_ORG = 'Remora development CA - not for production';

export interface RootFiles { certFile: string; keyFile: string }

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

export interface WorkloadFiles { dir: string; certFile: string; keyFile: string; caFile: string }

/**
 * A workload certificate for `id`, signed by the root: `<out>/tls.crt` (the leaf), `tls.key`, `ca.crt` (the root).
 * `days` may be negative: a certificate that expired that many days ago (for tests).
 */
export function issueWorkload(root: RootFiles, id: SpiffeId, out: string, opts: { days?: number; dns?: string[] } = {}): WorkloadFiles {
  mkdirSync(out, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'remora-ca-'));
  try {
    const key = join(tmp, 'tls.key');
    const csr = join(tmp, 'tls.csr');
    const ext = join(tmp, 'ext.cnf');
    const leaf = join(tmp, 'leaf.pem');
    const sans = [`URI:${spiffeUri(id)}`, ...(opts.dns ?? []).map((d) => `DNS:${d}`)].join(',');
    writeFileSync(ext, [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=critical,${sans}`,
    ].join('\n'));
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/O=${DEV_ORG}`]);
    const days = opts.days ?? 1;
    if (days > 0) {
      openssl(['x509', '-req', '-in', csr, '-CA', root.certFile, '-CAkey', root.keyFile, '-CAcreateserial', '-out', leaf, '-days', String(days), '-extfile', ext]);
    } else {
      // Expired: validity that ended before now (openssl 3's x509 -not_before/-not_after are not in 3.0; ca is).
      const caDir = join(tmp, 'ca');
      mkdirSync(join(caDir, 'new'), { recursive: true });
      writeFileSync(join(caDir, 'index.txt'), '');
      writeFileSync(join(caDir, 'serial'), `${Date.now().toString(16).padStart(16, '0')}\n`);
      const end = new Date(Date.now() + days * 86_400_000 - 3_600_000);
      const start = new Date(end.getTime() - 86_400_000);
      const fmt = (d: Date): string => d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
      writeFileSync(join(tmp, 'ca.cnf'), [
        '[ca]', 'default_ca=dev', '[dev]', `dir=${caDir}`, 'database=$dir/index.txt', 'new_certs_dir=$dir/new', 'serial=$dir/serial',
        'default_md=sha256', 'policy=any', 'unique_subject=no', 'copy_extensions=none', '[any]', 'organizationName=optional',
      ].join('\n'));
      openssl(['ca', '-batch', '-config', join(tmp, 'ca.cnf'), '-in', csr, '-cert', root.certFile, '-keyfile', root.keyFile, '-out', leaf,
        '-startdate', fmt(start), '-enddate', fmt(end), '-extfile', ext, '-notext']);
    }
    const rootPem = readFileSync(root.certFile, 'utf8');
    const files: WorkloadFiles = { dir: out, certFile: join(out, 'tls.crt'), keyFile: join(out, 'tls.key'), caFile: join(out, 'ca.crt') };
    writeFileSync(files.keyFile, readFileSync(key), { mode: 0o600 });
    writeFileSync(files.certFile, readFileSync(leaf, 'utf8'));
    writeFileSync(files.caFile, rootPem);
    return files;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
