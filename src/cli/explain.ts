/** `remora explain --config PATH… 'GET http://reviews/api -H end-user:jason'`. */
import { loadConfig } from '../config/load.js';
import { validateResources } from '../config/validate.js';
import { compile } from '../config/compile.js';
import { formatError } from '../config/resource.js';
import { explainRequest, formatExplanation } from '../routing/explain.js';
import { parseWithEnv, parseLabels, stringList } from './options.js';

/** Split a request line like `GET http://reviews/api -H end-user:jason -H 'x: y'`. */
export function parseRequestSpec(words: string[]): { method: string; url: string; headers: Record<string, string> } {
  const tokens = words.flatMap((w) => w.match(/(?:[^\s"']+|"[^"]*"|'[^']*')+/g) ?? []).map((t) => t.replace(/^(['"])(.*)\1$/, '$2'));
  let method = 'GET';
  let url = '';
  const headers: Record<string, string> = {};
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '-H' || t === '--header') {
      const h = tokens[++i] ?? '';
      const c = h.indexOf(':');
      if (c <= 0) throw new Error(`bad header "${h}" (want name:value)`);
      headers[h.slice(0, c).trim().toLowerCase()] = h.slice(c + 1).trim();
    } else if (/^[A-Z]+$/.test(t) && url === '') method = t;
    else url = t;
  }
  if (url === '') throw new Error('no URL in the request (e.g. "GET http://reviews/api -H end-user:jason")');
  if (!/^https?:\/\//i.test(url)) url = `http://${url}`;
  return { method, url, headers };
}

export async function main(argv: string[]): Promise<number> {
  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseWithEnv(argv, {
      config: { type: 'string', multiple: true, short: 'c' },
      namespace: { type: 'string' },
      'cluster-domain': { type: 'string' },
      labels: { type: 'string' },
      header: { type: 'string', multiple: true, short: 'H' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    }));
  } catch (err) {
    process.stderr.write(`remora explain: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help || positionals.length === 0) {
    process.stdout.write(`usage: remora explain --config PATH… [--namespace NS] [--labels k=v] [--json] 'METHOD URL [-H name:value]…'\n`);
    return values.help ? 0 : 2;
  }
  const paths = stringList(values.config);
  if (paths.length === 0) { process.stderr.write('remora explain: --config PATH is required\n'); return 2; }
  const ns = String(values.namespace ?? process.env.POD_NAMESPACE ?? 'default');
  const domain = String(values['cluster-domain'] ?? 'cluster.local');
  const loaded = await loadConfig(paths, ns);
  const problems = [...loaded.errors, ...validateResources(loaded.resources, { clusterDomain: domain })].filter((p) => p.severity !== 'warning');
  if (problems.length > 0) {
    for (const p of problems) process.stderr.write(`${formatError(p)}\n`);
    return 1;
  }
  const snap = compile(loaded.resources, { namespace: ns, clusterDomain: domain, labels: parseLabels(values.labels as string | undefined), outboundTrafficPolicy: 'ALLOW_ANY' });
  let spec;
  try {
    spec = parseRequestSpec(positionals);
  } catch (err) {
    process.stderr.write(`remora explain: ${(err as Error).message}\n`);
    return 2;
  }
  for (const h of stringList(values.header)) {
    const c = h.indexOf(':');
    if (c > 0) spec.headers[h.slice(0, c).trim().toLowerCase()] = h.slice(c + 1).trim();
  }
  const e = explainRequest(snap, spec);
  process.stdout.write(values.json ? `${JSON.stringify(e, null, 2)}\n` : formatExplanation(e));
  return 0;
}
