/**
 * `remora certs`: development certificates for local meshes and tests, made with the openssl command — a root and
 * SPIFFE workload certificates in the layout cert-manager writes. Not for production (see docs/security.md:
 * cert-manager issues the real ones), and every certificate says so in its subject.
 *
 *   remora certs root --out DIR [--trust-domain cluster.local] [--days 3650]
 *   remora certs workload --root DIR --namespace NS --service-account SA --out DIR [--days 1] [--trust-domain TD]
 *   remora certs inspect --dir DIR     what a sidecar would load from DIR (identity, validity, bundle, CRL), or why not
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { createRoot, issueWorkload } from '../security/dev-ca.js';
import { loadWorkloadCert } from '../security/workload-cert.js';

const USAGE = `usage: remora certs root --out DIR [--trust-domain TD] [--days N] [--force]
       remora certs workload --root DIR --namespace NS --service-account SA --out DIR [--trust-domain TD] [--days N] [--dns NAME…]
       remora certs inspect --dir DIR

Development certificates (openssl, EC P-256), marked "not for production": a root (root-cert.pem, root-key.pem) and
workload certificates with the URI SAN spiffe://TD/ns/NS/sa/SA, written as cert-manager does (tls.crt, tls.key,
ca.crt). In production use cert-manager (docs/security.md).
`;

export async function main(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(USAGE);
    return sub === undefined ? 2 : 0;
  }
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        out: { type: 'string' },
        root: { type: 'string' },
        dir: { type: 'string' },
        'trust-domain': { type: 'string' },
        namespace: { type: 'string' },
        'service-account': { type: 'string' },
        days: { type: 'string' },
        dns: { type: 'string', multiple: true },
        force: { type: 'boolean' },
      },
    }));
  } catch (e) {
    process.stderr.write(`remora certs: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const td = String(values['trust-domain'] ?? 'cluster.local');
  const days = values.days === undefined ? undefined : Number(values.days);
  if (days !== undefined && (!Number.isInteger(days) || days === 0)) {
    process.stderr.write('remora certs: --days must be a non-zero whole number\n');
    return 2;
  }
  try {
    switch (sub) {
      case 'root': {
        if (typeof values.out !== 'string') throw new UsageError('--out DIR is required');
        const r = createRoot(values.out, { trustDomain: td, ...(days !== undefined ? { days } : {}), force: values.force === true });
        process.stdout.write(`root: ${r.certFile} (key ${r.keyFile}); development only\n`);
        return 0;
      }
      case 'workload': {
        for (const f of ['root', 'namespace', 'service-account', 'out'] as const) {
          if (typeof values[f] !== 'string' || values[f] === '') throw new UsageError(`--${f} is required`);
        }
        const rootDir = String(values.root);
        const w = issueWorkload(
          { certFile: join(rootDir, 'root-cert.pem'), keyFile: join(rootDir, 'root-key.pem') },
          { trustDomain: td, namespace: String(values.namespace), serviceAccount: String(values['service-account']) },
          String(values.out),
          { ...(days !== undefined ? { days } : {}), dns: (values.dns as string[] | undefined) ?? [] },
        );
        const check = loadWorkloadCert(w.dir);
        if (!check.ok && days !== undefined && days > 0) throw new Error(`the new certificate does not load: ${check.error}`);
        process.stdout.write(`workload: ${w.certFile}, ${w.keyFile}, ${w.caFile}${check.ok ? ` (${check.cert.spiffeId}, until ${check.cert.notAfter.toISOString()})` : ` (${check.error})`}\n`);
        return 0;
      }
      case 'inspect': {
        if (typeof values.dir !== 'string') throw new UsageError('--dir DIR is required');
        const r = loadWorkloadCert(values.dir);
        if (!r.ok) {
          process.stdout.write(`not usable: ${r.error}\n`);
          return 1;
        }
        const c = r.cert;
        const roots = c.ca.split('-----BEGIN CERTIFICATE-----').length - 1;
        process.stdout.write(`identity:  ${c.spiffeId}\nprincipal: ${c.principal}\nvalid:     ${c.notBefore.toISOString()} .. ${c.notAfter.toISOString()}\nserial:    ${c.serialNumber}\nfiles:     ${c.files.cert}, ${c.files.key}, ${c.files.ca}\nbundle:    ${roots} CA certificate${roots === 1 ? '' : 's'} (peers must chain to one)\ncrl:       ${c.files.crl ?? 'none'}\n`);
        return 0;
      }
      default:
        throw new UsageError(`unknown subcommand "${sub}"`);
    }
  } catch (e) {
    process.stderr.write(`remora certs: ${(e as Error).message}\n${e instanceof UsageError ? `\n${USAGE}` : ''}`);
    return e instanceof UsageError ? 2 : 1;
  }
}

class UsageError extends Error {}
