/**
 * The sidecar's workload certificate, read from a directory and hot-rotated: the layouts cert-manager (a Secret or
 * the CSI driver) and istio-csr write (`tls.crt`, `tls.key`, `ca.crt`), and Istio's own file-mounted layout
 * (`cert-chain.pem`, `key.pem`, `root-cert.pem`), with an optional CRL beside them (`ca-crl.pem`, the name of Istio's
 * plugged-in CA CRL, or `ca.crl`). A new set of files is taken only when it is whole and valid (the key matches the
 * certificate, the certificate chains to the trust bundle, it is within its validity, and it carries exactly one
 * SPIFFE identity); otherwise the last good one stays and the failure is counted and reported. A change of the trust
 * bundle or the CRL alone (a root rotation) is a rotation too. Kubernetes updates mounted Secrets by swapping a
 * `..data` symlink, so the directory is polled (cheap: file sizes and modification times) as well as watched.
 */
import { EventEmitter } from 'node:events';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { tls as loadTls } from '../util/lazy-tls.js';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { certIdentity, principalOf, spiffeUri, type SpiffeId } from './spiffe.js';

export const LAYOUTS = [
  { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt' },
  { cert: 'cert-chain.pem', key: 'key.pem', ca: 'root-cert.pem' },
] as const;

/** CRL files read beside the certificate, first found wins: Istio's plugged-in CA name, then a plain one. */
export const CRL_FILES = ['ca-crl.pem', 'ca.crl'] as const;

export interface WorkloadCert {
  identity: SpiffeId;
  spiffeId: string;
  /** `td/ns/x/sa/y`, as AuthorizationPolicy principals. */
  principal: string;
  /** PEM: the certificate chain (leaf first), the key, the trust bundle. */
  cert: string;
  key: string;
  ca: string;
  /** PEM: revocation lists of the bundle's CAs, when a CRL file is present (applied to peers' chains). */
  crl?: string;
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
  /** Files it came from. */
  files: { cert: string; key: string; ca: string; crl?: string };
}

export type LoadOutcome = { ok: true; cert: WorkloadCert } | { ok: false; error: string };

/** Split a PEM bundle into its certificates. */
function pemCerts(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** Read and check one directory now (`now` for the validity window). Pure apart from reading the files. */
export function loadWorkloadCert(dir: string, now: Date = new Date()): LoadOutcome {
  const layout = LAYOUTS.find((l) => exists(join(dir, l.cert)) && exists(join(dir, l.key)));
  if (layout === undefined) return { ok: false, error: `no certificate in ${dir} (expected tls.crt + tls.key + ca.crt, or cert-chain.pem + key.pem + root-cert.pem)` };
  const files = { cert: join(dir, layout.cert), key: join(dir, layout.key), ca: join(dir, layout.ca) };
  let certPem: string;
  let keyPem: string;
  let caPem: string;
  try {
    certPem = readFileSync(files.cert, 'utf8');
    keyPem = readFileSync(files.key, 'utf8');
    caPem = readFileSync(files.ca, 'utf8');
  } catch (e) {
    return { ok: false, error: `reading ${dir}: ${(e as Error).message}` };
  }
  let chain: X509Certificate[];
  let roots: X509Certificate[];
  try {
    chain = pemCerts(certPem);
    roots = pemCerts(caPem);
  } catch (e) {
    return { ok: false, error: `${files.cert}: not a PEM certificate (${(e as Error).message})` };
  }
  let crl: string | undefined;
  let crlFile: string | undefined;
  for (const f of CRL_FILES) {
    const path = join(dir, f);
    if (!exists(path)) continue;
    try {
      crl = readFileSync(path, 'utf8');
      // OpenSSL is the judge of the format (it applies the list); a file it cannot read is refused whole.
      loadTls().createSecureContext({ crl });
    } catch (e) {
      return { ok: false, error: `${path}: not a PEM certificate revocation list (${(e as Error).message})` };
    }
    crlFile = path;
    break;
  }
  if (chain.length === 0) return { ok: false, error: `${files.cert}: no certificate` };
  if (roots.length === 0) return { ok: false, error: `${files.ca}: no CA certificate (the trust bundle)` };
  const leaf = chain[0]!;
  try {
    const key = createPrivateKey(keyPem);
    if (!leaf.checkPrivateKey(key)) return { ok: false, error: `${files.key}: the key does not match the certificate` };
  } catch (e) {
    return { ok: false, error: `${files.key}: not a private key (${(e as Error).message})` };
  }
  // The chain: each certificate signed by the next, the last by a root of the bundle.
  for (let i = 0; i < chain.length - 1; i++) {
    if (!chain[i]!.verify(chain[i + 1]!.publicKey)) return { ok: false, error: `${files.cert}: certificate ${i} is not signed by certificate ${i + 1}` };
  }
  const top = chain[chain.length - 1]!;
  const anchored = roots.some((r) => r.fingerprint256 === top.fingerprint256 || (top.checkIssued(r) && top.verify(r.publicKey)));
  if (!anchored) return { ok: false, error: `${files.cert}: not issued by a CA in ${files.ca}` };
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now < notBefore) return { ok: false, error: `${files.cert}: not valid before ${notBefore.toISOString()}` };
  if (now >= notAfter) return { ok: false, error: `${files.cert}: expired at ${notAfter.toISOString()}` };
  const identity = certIdentity(leaf);
  if (identity === undefined) return { ok: false, error: `${files.cert}: no SPIFFE identity (one URI SAN spiffe://<trust-domain>/ns/<ns>/sa/<sa>)` };
  return {
    ok: true,
    cert: {
      identity, spiffeId: spiffeUri(identity), principal: principalOf(identity), cert: certPem, key: keyPem, ca: caPem,
      ...(crl !== undefined ? { crl } : {}), notBefore, notAfter, serialNumber: leaf.serialNumber,
      files: crlFile !== undefined ? { ...files, crl: crlFile } : files,
    },
  };
}

function exists(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

export interface WorkloadCertStoreOptions {
  /** How often the files are checked for a change (ms). Default 5,000. */
  pollMs?: number;
  now?: () => Date;
}

/**
 * The current certificate and its rotations. Events: 'rotated' (WorkloadCert) when a new valid certificate is taken,
 * 'rejected' (error string) when a changed set of files is not usable (the last good one stays), 'expired' when the
 * current one runs out with nothing newer.
 */
export class WorkloadCertStore extends EventEmitter {
  current: WorkloadCert | undefined;
  lastError: string | undefined;
  rotations = 0;
  failures = 0;
  private stamp = '';
  private timer: NodeJS.Timeout | undefined;
  private watcher: FSWatcher | undefined;

  constructor(readonly dir: string, private readonly opts: WorkloadCertStoreOptions = {}) {
    super();
  }

  /** Load once now; true when a valid certificate is in place afterwards. */
  refresh(): boolean {
    const stamp = this.fileStamp();
    if (stamp === this.stamp && this.current !== undefined) return this.checkExpiry();
    this.stamp = stamp;
    const r = loadWorkloadCert(this.dir, this.now());
    if (r.ok) {
      // The leaf, its key, the trust bundle or the CRL: any of them changed is a new TLS context (a root rotation
      // changes ca.crt alone).
      const c = this.current;
      const changed = c === undefined || c.serialNumber !== r.cert.serialNumber || c.cert !== r.cert.cert || c.key !== r.cert.key || c.ca !== r.cert.ca || c.crl !== r.cert.crl;
      this.lastError = undefined;
      if (changed) {
        const first = this.current === undefined;
        this.current = r.cert;
        if (!first) this.rotations++;
        this.emit('rotated', r.cert);
      }
      return true;
    }
    this.failures++;
    this.lastError = r.error;
    this.emit('rejected', r.error);
    return this.checkExpiry();
  }

  /** Watch the directory and poll it; refresh() on every change. */
  start(): this {
    this.refresh();
    const poll = this.opts.pollMs ?? 5000;
    this.timer = setInterval(() => this.refresh(), poll);
    this.timer.unref();
    try {
      this.watcher = watch(this.dir, () => {
        // Let a writer finish its files (Secrets update by swapping a symlink; other writers may write in steps).
        setTimeout(() => this.refresh(), 50).unref();
      });
      this.watcher.on('error', () => { /* polling goes on */ });
      this.watcher.unref();
    } catch {
      // A directory that is not there yet: polling finds it.
    }
    return this;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.watcher?.close();
  }

  /** Seconds until the current certificate expires (negative once expired); undefined without one. */
  expiresInSeconds(): number | undefined {
    return this.current === undefined ? undefined : (this.current.notAfter.getTime() - this.now().getTime()) / 1000;
  }

  /** Whether a certificate that is valid right now is loaded. */
  get valid(): boolean {
    const c = this.current;
    if (c === undefined) return false;
    const now = this.now();
    return now >= c.notBefore && now < c.notAfter;
  }

  private checkExpiry(): boolean {
    if (this.current !== undefined && !this.valid) {
      this.emit('expired', this.current);
      return false;
    }
    return this.current !== undefined;
  }

  private now(): Date {
    return this.opts.now?.() ?? new Date();
  }

  /** Sizes and modification times of the files of both layouts (what changes when any of them is replaced). */
  private fileStamp(): string {
    const parts: string[] = [];
    for (const l of [...LAYOUTS.map((x) => [x.cert, x.key, x.ca]), CRL_FILES]) {
      for (const f of l) {
        try {
          const st = statSync(join(this.dir, f));
          parts.push(`${f}:${st.size}:${st.mtimeMs}:${st.ino}`);
        } catch {
          parts.push(`${f}:-`);
        }
      }
    }
    return parts.join('|');
  }
}
