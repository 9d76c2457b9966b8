/** `remora validate --config PATH…`: offline check; exit 0 when valid, else 1 with one line per problem. */
import { loadConfig } from '../config/load.js';
import { validateResources } from '../config/validate.js';
import { formatError } from '../config/resource.js';
import { parseWithEnv, stringList } from './options.js';

export async function main(argv: string[]): Promise<number> {
  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseWithEnv(argv, {
      config: { type: 'string', multiple: true, short: 'c' },
      namespace: { type: 'string' },
      'cluster-domain': { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      help: { type: 'boolean', short: 'h' },
    }));
  } catch (err) {
    process.stderr.write(`remora validate: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write('usage: remora validate --config PATH [PATH…] [--namespace NS] [--cluster-domain D] [--quiet]\n');
    return 0;
  }
  const paths = [...stringList(values.config), ...positionals];
  if (paths.length === 0) { process.stderr.write('remora validate: --config PATH is required\n'); return 2; }
  const ns = String(values.namespace ?? process.env.POD_NAMESPACE ?? 'default');
  const loaded = await loadConfig(paths, ns);
  const problems = [...loaded.errors, ...validateResources(loaded.resources, { clusterDomain: String(values['cluster-domain'] ?? 'cluster.local') })];
  const errors = problems.filter((p) => p.severity !== 'warning');
  for (const p of problems) process.stdout.write(`${formatError(p)}\n`);
  if (!values.quiet) {
    process.stderr.write(`${loaded.files.length} file(s), ${loaded.resources.length} resource(s): ${errors.length === 0 ? 'valid' : `${errors.length} error(s)`}${problems.length > errors.length ? `, ${problems.length - errors.length} warning(s)` : ''}\n`);
  }
  return errors.length === 0 ? 0 : 1;
}
