/**
 * A VirtualService and Gateway API routes for the same host, pure. Istio turns a mesh HTTPRoute into a
 * VirtualService of its own and does not merge VirtualServices for sidecars: of the two, the older object
 * (metadata.creationTimestamp) applies and the other is ignored for that host. Objects without a timestamp (files)
 * count as newer than any that has one; between two such, the VirtualService stays in force.
 */
import type { Resource } from '../config/resource.js';
import { objectName } from '../config/resource.js';
import { createdMs } from './binding.js';
import type { MeshHost } from './mesh.js';

export function meshConflict(vs: Resource | undefined, m: MeshHost): { routesWin: boolean; warning: string } {
  const vsCreated = vs === undefined ? 0 : createdMs(vs);
  const routesWin = m.created !== 0 && (vsCreated === 0 || m.created < vsCreated);
  const vsName = vs === undefined ? 'a VirtualService' : objectName(vs);
  const routes = m.routes.join(', ');
  const warning = routesWin
    ? `${routes}: host ${m.service.hostname} is also routed by ${vsName}; the older ${m.origin} applies, ${vsName} is ignored for this host (Istio does not merge routes for sidecars)`
    : `${routes}: host ${m.service.hostname} is also routed by ${vsName}; ${vsName} applies (${vsCreated !== 0 ? 'it is older' : 'neither is older'}), the Gateway API routes are ignored for this host (Istio does not merge routes for sidecars)`;
  return { routesWin, warning };
}
