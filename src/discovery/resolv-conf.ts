/**
 * The pod resolver's view of short names: parse `/etc/resolv.conf` (`search`/`domain`, `options ndots:N`) and
 * list the names to try in glibc's order, so `http://reviews` resolves the way the app's own resolver would.
 * Pure except readResolvConf(), the one small I/O function.
 */
import { readFile } from 'node:fs/promises';

export interface ResolvConf {
  /** Search domains, without trailing dots (a Kubernetes pod: `<ns>.svc.cluster.local svc.cluster.local cluster.local`). */
  search: string[];
  /** `options ndots:N` (glibc default 1, capped at 15; Kubernetes pods get 5). */
  ndots: number;
  nameservers: string[];
}

/** glibc defaults when the file is absent or silent. */
export const DEFAULT_NDOTS = 1;
const MAX_NDOTS = 15;

function applyOptions(conf: ResolvConf, tokens: string[]): void {
  for (const opt of tokens) {
    const m = /^ndots:(\d+)$/.exec(opt);
    if (m) conf.ndots = Math.min(MAX_NDOTS, Number(m[1]));
  }
}

export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { search: [], ndots: DEFAULT_NDOTS, nameservers: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (line === '') continue;
    const [keyword, ...args] = line.split(/\s+/);
    switch (keyword) {
      // `domain` and `search` are mutually exclusive: the last one in the file wins.
      case 'search':
        conf.search = args.map(stripDot).filter((d) => d !== '');
        break;
      case 'domain':
        conf.search = args[0] ? [stripDot(args[0])] : [];
        break;
      case 'nameserver':
        if (args[0]) conf.nameservers.push(args[0]);
        break;
      case 'options':
        applyOptions(conf, args);
        break;
    }
  }
  return conf;
}

/** Environment overrides glibc honours: `LOCALDOMAIN` (search list) and `RES_OPTIONS` (options). */
export function applyResolverEnv(conf: ResolvConf, env: Readonly<Record<string, string | undefined>>): ResolvConf {
  const out: ResolvConf = { ...conf, search: [...conf.search], nameservers: [...conf.nameservers] };
  if (env.LOCALDOMAIN !== undefined) out.search = env.LOCALDOMAIN.split(/\s+/).map(stripDot).filter((d) => d !== '');
  if (env.RES_OPTIONS) applyOptions(out, env.RES_OPTIONS.split(/\s+/));
  return out;
}

function stripDot(d: string): string {
  return d.endsWith('.') ? d.slice(0, -1) : d;
}

/**
 * Names to look up for `name`, in glibc `res_search` order: a name ending in '.' is absolute (only itself);
 * a name with at least `ndots` dots is tried as-is first, then with each search domain; otherwise the search
 * domains come first and the name as-is last. Returned without trailing dots, deduplicated.
 */
export function candidateNames(name: string, search: readonly string[], ndots: number): string[] {
  if (name.endsWith('.')) return [name.slice(0, -1)];
  const dots = name.split('.').length - 1;
  const expanded = search.map((d) => `${name}.${d}`);
  const order = dots >= ndots ? [name, ...expanded] : [...expanded, name];
  return [...new Set(order)];
}

/** Read and parse the resolver config (default `/etc/resolv.conf`); a missing file gives glibc defaults. */
export async function readResolvConf(
  path = '/etc/resolv.conf',
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<ResolvConf> {
  let text = '';
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return applyResolverEnv(parseResolvConf(text), env);
}
