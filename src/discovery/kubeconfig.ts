/**
 * How to reach the Kubernetes API server: the kubeconfig or in-cluster service account → a server URL and the TLS and
 * auth options of each request. The common cases (in-cluster token, kubeconfig token/tokenFile, client certificate,
 * basic auth, CA, insecure-skip-tls-verify) are read here; anything else (exec and auth-provider plugins,
 * impersonation, proxies, several KUBECONFIG files merged) is handed to @kubernetes/client-node's KubeConfig, imported
 * only then — it costs ~60 MB of private memory a sidecar otherwise never needs (docs/scale.md).
 */
import { readFileSync } from 'node:fs';
import type https from 'node:https';
import { isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { loadYaml } from '../util/yaml.js';

/** A server and how to authenticate to it. `options()` is asked before every request (a token file may rotate). */
export interface ApiAccess {
  readonly server: string;
  /** TLS and auth options for node:https/node:http (headers include Authorization when there is a token). */
  options(): Promise<https.RequestOptions>;
  /** Where the settings came from, for error messages. */
  readonly from: string;
}

const SA = '/var/run/secrets/kubernetes.io/serviceaccount';
/** A token file is read again after this long (bound service-account tokens rotate; the kubelet refreshes the file). */
const TOKEN_FILE_TTL_MS = 60_000;

export class KubeconfigError extends Error {}

/** The environment variables that locate the API server (passed in by the CLI). */
export interface KubeEnv {
  KUBECONFIG?: string;
  KUBERNETES_SERVICE_HOST?: string;
  KUBERNETES_SERVICE_PORT?: string;
  HOME?: string;
}

/**
 * The API access of `--kubeconfig PATH`, else `KUBECONFIG`, else the in-cluster service account
 * (`KUBERNETES_SERVICE_HOST`), else `~/.kube/config` — the order `remora run --kubernetes` documents.
 */
export async function loadApiAccess(path: string | undefined, env: KubeEnv = {}): Promise<ApiAccess> {
  if (path !== undefined) return fromKubeconfigFile(path);
  if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(':').filter((f) => f !== '');
    if (files.length === 1) return fromKubeconfigFile(files[0]!);
    return viaClientNode((kc) => kc.loadFromDefault(), `KUBECONFIG=${env.KUBECONFIG}`);
  }
  if (env.KUBERNETES_SERVICE_HOST) return inCluster(env);
  return fromKubeconfigFile(join(env.HOME ?? homedir(), '.kube', 'config'));
}

function inCluster(env: KubeEnv, root = SA): ApiAccess {
  const host = env.KUBERNETES_SERVICE_HOST!;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const scheme = port === '80' || port === '8080' || port === '8001' ? 'http' : 'https';
  const server = `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  let ca: Buffer | undefined;
  try {
    ca = readFileSync(join(root, 'ca.crt'));
  } catch {
    ca = undefined; // the system's roots then
  }
  const token = tokenFile(join(root, 'token'));
  return {
    server,
    from: 'the in-cluster service account',
    async options() {
      return { ...(ca !== undefined ? { ca } : {}), headers: { authorization: `Bearer ${token()}` } };
    },
  };
}

/** A token file's content, read again once TOKEN_FILE_TTL_MS old (and every time while it cannot be read). */
function tokenFile(file: string): () => string {
  let value = '';
  let readAt = -Infinity;
  return () => {
    const now = Date.now();
    if (now - readAt >= TOKEN_FILE_TTL_MS) {
      try {
        value = readFileSync(file, 'utf8').trim();
        readAt = now;
      } catch (e) {
        if (value === '') throw new KubeconfigError(`cannot read the token file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    }
    return value;
  };
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function named(list: unknown, name: string | undefined, field: string): Obj | undefined {
  if (!Array.isArray(list) || name === undefined) return undefined;
  for (const e of list) if (obj(e)?.name === name) return obj(obj(e)![field]);
  return undefined;
}

/** The kubeconfig's current context, read here when it uses only what this reader supports, else by client-node. */
async function fromKubeconfigFile(file: string): Promise<ApiAccess> {
  let doc: Obj | undefined;
  try {
    doc = obj(loadYaml(readFileSync(file, 'utf8')));
  } catch (e) {
    throw new KubeconfigError(`kubernetes: cannot read kubeconfig ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (doc === undefined) throw new KubeconfigError(`kubernetes: kubeconfig ${file} is not a mapping`);
  const ctx = named(doc.contexts, str(doc['current-context']), 'context');
  const cluster = named(doc.clusters, str(ctx?.cluster), 'cluster');
  const user = named(doc.users, str(ctx?.user), 'user') ?? {};
  const server = str(cluster?.server);
  if (ctx === undefined || cluster === undefined || server === undefined) throw new KubeconfigError(`kubernetes: no cluster configured (kubeconfig ${file} has no current context with a cluster and a server)`);
  const simpleUser = Object.keys(user).every((k) => ['token', 'tokenFile', 'client-certificate', 'client-certificate-data', 'client-key', 'client-key-data', 'username', 'password'].includes(k));
  const simpleCluster = Object.keys(cluster).every((k) => ['server', 'certificate-authority', 'certificate-authority-data', 'insecure-skip-tls-verify', 'tls-server-name', 'extensions'].includes(k));
  if (!simpleUser || !simpleCluster) return viaClientNode((kc) => kc.loadFromFile(file), `kubeconfig ${file}`);
  const base = dirname(file);
  const readAt = (p: string): Buffer => readFileSync(isAbsolute(p) ? p : join(base, p));
  const data = (inline: unknown, path: unknown): Buffer | undefined => (str(inline) !== undefined ? Buffer.from(str(inline)!, 'base64') : str(path) !== undefined ? readAt(str(path)!) : undefined);
  const insecure = cluster['insecure-skip-tls-verify'] === true;
  if (server.startsWith('http://') && !insecure) throw new KubeconfigError(`kubernetes: ${server} is plain http: set insecure-skip-tls-verify: true in kubeconfig ${file} to use it`);
  let tls: https.RequestOptions;
  try {
    const ca = data(cluster['certificate-authority-data'], cluster['certificate-authority']);
    const cert = data(user['client-certificate-data'], user['client-certificate']);
    const key = data(user['client-key-data'], user['client-key']);
    tls = {
      ...(ca !== undefined ? { ca } : {}),
      ...(cert !== undefined ? { cert } : {}),
      ...(key !== undefined ? { key } : {}),
      ...(insecure ? { rejectUnauthorized: false } : {}),
      ...(str(cluster['tls-server-name']) !== undefined ? { servername: str(cluster['tls-server-name']) } : {}),
    };
  } catch (e) {
    throw new KubeconfigError(`kubernetes: kubeconfig ${file}: ${(e as Error).message}`);
  }
  const token = str(user.token);
  const fromFile = str(user.tokenFile) !== undefined ? tokenFile(isAbsolute(str(user.tokenFile)!) ? str(user.tokenFile)! : join(base, str(user.tokenFile)!)) : undefined;
  const basic = str(user.username) !== undefined ? `Basic ${Buffer.from(`${str(user.username)}:${str(user.password) ?? ''}`).toString('base64')}` : undefined;
  return {
    server: server.replace(/\/+$/, ''),
    from: `kubeconfig ${file}`,
    async options() {
      const auth = token !== undefined ? `Bearer ${token}` : fromFile !== undefined ? `Bearer ${fromFile()}` : basic;
      return { ...tls, headers: auth !== undefined ? { authorization: auth } : {} };
    },
  };
}

/** client-node's KubeConfig for what this reader leaves to it (imported now, not before). */
async function viaClientNode(load: (kc: import('@kubernetes/client-node').KubeConfig) => void, from: string): Promise<ApiAccess> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  try {
    load(kc);
  } catch (e) {
    throw new KubeconfigError(`kubernetes: cannot read ${from}: ${(e as Error).message}`);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KubeconfigError(`kubernetes: no cluster configured (${from})`);
  return {
    server: cluster.server.replace(/\/+$/, ''),
    from,
    async options() {
      const o: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(o);
      return o;
    },
  };
}

/** For tests: the in-cluster access with the service-account files under `root`. */
export function inClusterAt(env: KubeEnv, root: string): ApiAccess {
  return inCluster(env, root);
}

/**
 * A @kubernetes/client-node KubeConfig for the same API server as loadApiAccess, in the same order, for code that needs
 * client-node's typed APIs (the Gateway status writer and its Lease, `remora rollout --kube`): `--kubeconfig PATH`,
 * else `KUBECONFIG` (several files: merged by client-node, which reads the variable itself), else the in-cluster service account, else client-node's
 * default (~/.kube/config). Imported on this call: a sidecar that never needs it never pays for it. A file client-node
 * cannot read throws its error; no current cluster throws a KubeconfigError.
 */
export async function clientNodeKubeConfig(path: string | undefined, env: KubeEnv = {}): Promise<import('@kubernetes/client-node').KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  const files = (env.KUBECONFIG ?? '').split(':').filter((f) => f !== '');
  if (path !== undefined) kc.loadFromFile(path);
  else if (files.length === 1) kc.loadFromFile(files[0]!);
  else if (files.length > 1) kc.loadFromDefault();
  else if (env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new KubeconfigError(`kubernetes: no cluster configured (${path !== undefined ? `kubeconfig ${path}` : '--kubeconfig, KUBECONFIG, in-cluster or ~/.kube/config'})`);
  return kc;
}
