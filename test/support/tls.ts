/**
 * A throwaway self-signed EC P-256 certificate made by openssl (installed by .ci/run), valid one day: written to
 * `<dir>/<name>.key` and `<dir>/<name>.crt` and returned with their contents.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SelfSigned { keyFile: string; certFile: string; key: Buffer; cert: Buffer }

export function selfSignedCert(dir: string, name: string, subject: { cn: string; subjectAltName?: string }): SelfSigned {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', `/CN=${subject.cn}`,
    ...(subject.subjectAltName ? ['-addext', `subjectAltName=${subject.subjectAltName}`] : []),
  ], { stdio: 'pipe' });
  return { keyFile, certFile, key: readFileSync(keyFile), cert: readFileSync(certFile) };
}
