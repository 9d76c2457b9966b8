/**
 * The two undici classes the data plane uses, loaded from their own modules: `import 'undici'` also loads fetch,
 * WebSocket, EventSource, caches and mocks (≈ 70 ms of start-up per process, measured with `require` timing),
 * none of which a sidecar uses. Types still come from the package's public typings. undici is pinned (^7) and
 * these module paths are covered by the test suite, so an upgrade that moves them fails loudly in CI.
 */
import { createRequire } from 'node:module';
import type { Client as ClientT, Pool as PoolT } from 'undici';

const require = createRequire(import.meta.url);

export const Pool = require('undici/lib/dispatcher/pool.js') as typeof PoolT;
export const Client = require('undici/lib/dispatcher/client.js') as typeof ClientT;
export type Pool = PoolT;
export type Client = ClientT;
