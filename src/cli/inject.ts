/**
 * `remora inject -f FILE|-`: like `istioctl kube-inject`, prints the manifests with the sidecar added
 * to every pod template; other documents pass through byte for byte. Exit 1 on unreadable or invalid input.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { defaultImage } from '../inject/image.js';
import { DEFAULT_CONFIG_MAP } from '../inject/inject.js';
import { injectYaml } from '../inject/yaml-inject.js';

const USAGE = `Usage: remora inject -f FILE|- [options]

Adds the Remora sidecar to every pod template (Pod, Deployment, StatefulSet, DaemonSet,
ReplicaSet, ReplicationController, Job, CronJob, and List items) and prints all documents.

Options:
  -f, --filename FILE     manifest file, or - for standard input (required)
  -o, --output FILE       write the result to FILE instead of standard output
      --image IMG         sidecar image (default ${defaultImage()})
      --config-map NAME   ConfigMap mounted at /etc/remora/config (default ${DEFAULT_CONFIG_MAP})
      --no-native-sidecar classic sidecar: first in containers, with a postStart "remora wait" hook
      --kubernetes        sidecars watch the Kubernetes API (--kubernetes of remora run)
      --inject-iptables   add the remora-init container with the iptables capture rules
      --certs secret|csi  workload certificates for mTLS (--cert-dir of remora run): csi = one per pod from
                          cert-manager's csi-driver-spiffe, for the pod's own service account (deploy/mtls);
                          secret = the Secret <serviceAccount>-mesh-tls; pod annotation remora.io/certs
      --no-rewrite-probes leave the app's httpGet probes alone
  -h, --help              show this help
`;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        filename: { type: 'string', short: 'f' },
        output: { type: 'string', short: 'o' },
        image: { type: 'string' },
        'config-map': { type: 'string' },
        'no-native-sidecar': { type: 'boolean' },
        'inject-iptables': { type: 'boolean' },
        'no-rewrite-probes': { type: 'boolean' },
        kubernetes: { type: 'boolean' },
        certs: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`remora inject: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const file = values.filename;
  if (file === undefined) {
    process.stderr.write(`remora inject: -f FILE or -f - is required\n\n${USAGE}`);
    return 2;
  }
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    process.stderr.write(`remora inject: cannot read ${file}: ${why}\n`);
    return 1;
  }
  const name = file === '-' ? '<stdin>' : file;
  if (values.certs !== undefined && values.certs !== 'secret' && values.certs !== 'csi') {
    process.stderr.write(`remora inject: --certs must be secret or csi, not ${values.certs}\n`);
    return 2;
  }
  let result;
  try {
    result = injectYaml(text, {
      ...(values.certs !== undefined ? { certs: values.certs as 'secret' | 'csi' } : {}),
      image: values.image ?? defaultImage(),
      configMap: values['config-map'] ?? DEFAULT_CONFIG_MAP,
      nativeSidecar: values['no-native-sidecar'] !== true,
      iptables: values['inject-iptables'] === true,
        kubernetes: values.kubernetes === true,
      rewriteProbes: values['no-rewrite-probes'] !== true,
    });
  } catch (err) {
    process.stderr.write(`remora inject: ${name}: ${(err as Error).message}\n`);
    return 1;
  }
  if (result.errors.length > 0) {
    for (const e of result.errors) process.stderr.write(`remora inject: ${name}:${e.line}: ${e.message}\n`);
    return 1;
  }
  if (values.output !== undefined) {
    try {
      await writeFile(values.output, result.output);
    } catch (err) {
      process.stderr.write(`remora inject: cannot write ${values.output}: ${(err as Error).message}\n`);
      return 1;
    }
  } else {
    await new Promise<void>((resolve, reject) => process.stdout.write(result.output, (e) => (e ? reject(e) : resolve())));
  }
  return 0;
}
