/**
 * V8 settings for a sidecar that has loaded its config and now serves requests.
 * Allocation-site pretenuring sends the short-lived objects of a request straight to the old generation once many
 * are in flight, where they wait for a full GC (old space ~19 MB instead of ~11 under load; peak RSS ~105 vs ~71 MB at
 * max throughput, same CPU: docs/performance.md). While the config loads the opposite holds: nearly everything it
 * allocates lives on, and pretenuring spares copying it through the young generation (10,000 services: GC time at
 * start-up measured below with it on). So it is turned off once the first config is in, not at process start.
 * The flag is not allowed in NODE_OPTIONS, hence setFlagsFromString.
 */
import { setFlagsFromString } from 'node:v8';

let applied = false;

export function tuneForServing(): void {
  if (applied) return;
  applied = true;
  setFlagsFromString('--no-allocation-site-pretenuring');
}
