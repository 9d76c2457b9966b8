/**
 * `remora injector`: runs the mutating admission webhook over HTTPS. Reloads the serving certificate
 * when its files change (cert-manager rotation); drains and exits 0 on SIGTERM/SIGINT.
 */
import { readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';
import { defaultImage } from '../inject/image.js';
import { DEFAULT_CONFIG_MAP } from '../inject/inject.js';
import { createInjectorServer, DEFAULT_MAX_BODY_BYTES } from '../inject/webhook.js';

const USAGE = `Usage: remora injector --tls-cert FILE --tls-key FILE [options]

Mutating admission webhook: POST /inject (or /mutate) takes an admission.k8s.io/v1
AdmissionReview and answers with a JSONPatch adding the Remora sidecar. GET /healthz.

Options:
      --port N            HTTPS port (default 9443; 0 picks a free one)
      --host ADDR         bind address (default 0.0.0.0)
      --tls-cert FILE     PEM serving certificate (required)
      --tls-key FILE      PEM private key (required)
      --image IMG         sidecar image (default ${defaultImage()})
      --config-map NAME   ConfigMap mounted at /etc/remora/config (default ${DEFAULT_CONFIG_MAP})
      --no-native-sidecar classic sidecar with a postStart "remora wait" hook
      --kubernetes        sidecars watch the Kubernetes API (--kubernetes of remora run)
      --inject-iptables   add the remora-init iptables container
      --certs secret|csi  workload certificates for mTLS (--cert-dir of remora run): csi = one per pod from
                          cert-manager's csi-driver-spiffe, for the pod's own service account (deploy/mtls);
                          secret = the Secret <serviceAccount>-mesh-tls; pod annotation remora.io/certs
      --max-body-bytes N  largest accepted review (default ${DEFAULT_MAX_BODY_BYTES})
      --drain-seconds N   at SIGTERM, wait this long for open requests (default 5)
  -h, --help              show this help
`;

const CERT_CHECK_MS = 30_000; // how often the certificate files are checked for rotation

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string', default: '9443' },
        host: { type: 'string', default: '0.0.0.0' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        image: { type: 'string' },
        'config-map': { type: 'string' },
        'no-native-sidecar': { type: 'boolean' },
        'inject-iptables': { type: 'boolean' },
        kubernetes: { type: 'boolean' },
        certs: { type: 'string' },
        'max-body-bytes': { type: 'string' },
        'drain-seconds': { type: 'string', default: '5' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`remora injector: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const certFile = values['tls-cert'];
  const keyFile = values['tls-key'];
  const port = Number(values.port);
  const drainMs = Number(values['drain-seconds']) * 1000;
  const maxBody = values['max-body-bytes'] === undefined ? DEFAULT_MAX_BODY_BYTES : Number(values['max-body-bytes']);
  if (certFile === undefined || keyFile === undefined) {
    process.stderr.write(`remora injector: --tls-cert and --tls-key are required\n\n${USAGE}`);
    return 2;
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535 || !Number.isFinite(drainMs) || drainMs < 0 || !Number.isInteger(maxBody) || maxBody <= 0) {
    process.stderr.write('remora injector: --port, --drain-seconds and --max-body-bytes must be non-negative numbers\n');
    return 2;
  }
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(certFile);
    key = readFileSync(keyFile);
  } catch (err) {
    process.stderr.write(`remora injector: cannot read TLS files: ${(err as Error).message}\n`);
    return 1;
  }
  let server;
  try {
    server = createInjectorServer({
      cert,
      key,
      maxBodyBytes: maxBody,
      inject: {
        image: values.image ?? defaultImage(),
        configMap: values['config-map'] ?? DEFAULT_CONFIG_MAP,
        nativeSidecar: values['no-native-sidecar'] !== true,
        iptables: values['inject-iptables'] === true,
        kubernetes: values.kubernetes === true,
        ...(values.certs === 'secret' || values.certs === 'csi' ? { certs: values.certs } : {}),
      },
      onReview: (r) => process.stdout.write(`review ${r.uid ?? '-'} ${r.pod}: ${r.result}${r.detail ? ` (${r.detail})` : ''}\n`),
    });
  } catch (err) {
    process.stderr.write(`remora injector: invalid TLS certificate or key: ${(err as Error).message}\n`);
    return 1;
  }
  const srv = server;
  try {
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, values.host, () => resolve());
    });
  } catch (err) {
    process.stderr.write(`remora injector: cannot listen on ${values.host}:${port}: ${(err as Error).message}\n`);
    return 1;
  }
  srv.on('error', (err) => process.stderr.write(`remora injector: server error: ${err.message}\n`));
  srv.on('tlsClientError', () => undefined); // probes and scanners: not worth a log line each
  const addr = srv.address() as AddressInfo;
  process.stdout.write(`remora injector listening on https://${addr.address}:${addr.port}\n`);

  const mtimes = (): string => `${statSync(certFile).mtimeMs}:${statSync(keyFile).mtimeMs}`;
  let seen = mtimes();
  const certTimer = setInterval(() => {
    try {
      const now = mtimes();
      if (now === seen) return;
      srv.setSecureContext({ cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.2' });
      seen = now;
      process.stdout.write('remora injector: reloaded TLS certificate\n');
    } catch (err) {
      // Mid-rotation (one file written, not the other) or unreadable: keep the current certificate.
      process.stderr.write(`remora injector: certificate reload failed, keeping the old one: ${(err as Error).message}\n`);
    }
  }, CERT_CHECK_MS);
  certTimer.unref();

  return await new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      process.stdout.write(`remora injector: ${signal}, draining\n`);
      clearInterval(certTimer);
      const force = setTimeout(() => srv.closeAllConnections(), drainMs);
      force.unref();
      srv.close(() => {
        clearTimeout(force);
        resolve(0);
      });
      srv.closeIdleConnections();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
