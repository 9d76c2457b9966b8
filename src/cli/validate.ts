/**
 * `remora validate --config PATH…`: offline check; exit 0 when valid, else 1 with one line per problem. Gateway API
 * routes in the files also get the status conditions a controller would write (Accepted, ResolvedRefs).
 */
import { loadConfig } from '../config/load.js';
import { validateResources } from '../config/validate.js';
import { formatError } from '../config/resource.js';
import { compile } from '../config/compile.js';
import { parseWithEnv, stringList } from './options.js';
import { gatewayRoutes, servicesFromFiles } from '../gateway/mesh.js';
import { formatRouteStatus, routeStatuses } from '../gateway/status.js';
import type { ServiceDef } from '../model.js';

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
  const domain = String(values['cluster-domain'] ?? 'cluster.local');
  const loaded = await loadConfig(paths, ns);
  const problems = [...loaded.errors, ...validateResources(loaded.resources, { clusterDomain: domain })];
  const errors = problems.filter((p) => p.severity !== 'warning');
  for (const p of problems) process.stdout.write(`${formatError(p)}\n`);
  const routes = gatewayRoutes(loaded.resources);
  if (routes.length > 0) {
    // The registry the routes bind to: the whole config when it compiles, else the Services written in the files.
    let services: readonly ServiceDef[] = servicesFromFiles(loaded.resources, domain) ?? [];
    if (errors.length === 0) {
      const snap = compile(loaded.resources, { namespace: ns, clusterDomain: domain, labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
      services = snap.services;
      for (const w of snap.warnings) process.stdout.write(`warning: ${w}\n`);
    }
    if (services.length === 0) process.stdout.write('note: the files define no Service: parents are reported as not found (with --kubernetes they come from the API)\n');
    const statuses = routeStatuses({ routes, errors, byHost: new Map(services.map((s) => [s.hostname, s])), clusterDomain: domain });
    for (const [r, parents] of statuses) for (const line of formatRouteStatus(r, parents)) process.stdout.write(`status: ${line}\n`);
  }
  if (!values.quiet) {
    process.stderr.write(`${loaded.files.length} file(s), ${loaded.resources.length} resource(s): ${errors.length === 0 ? 'valid' : `${errors.length} error(s)`}${problems.length > errors.length ? `, ${problems.length - errors.length} warning(s)` : ''}\n`);
  }
  return errors.length === 0 ? 0 : 1;
}
