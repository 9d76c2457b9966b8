/**
 * node:tls on first use: only a sidecar with a workload certificate (mTLS) or a DestinationRule that originates TLS
 * needs it, and importing it loads the TLS and most crypto bindings (~0.9 MB of private memory, docs/performance.md).
 */
import { createRequire } from 'node:module';

type Tls = typeof import('node:tls');
let mod: Tls | undefined;

export function tls(): Tls {
  mod ??= createRequire(import.meta.url)('node:tls') as Tls;
  return mod;
}
