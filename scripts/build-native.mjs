#!/usr/bin/env node
// `npm install` step: builds native/ (the SO_ORIGINAL_DST addon) with node-gyp against the Node headers this machine
// has (npm's nodedir), offline. A failed build is not a failed install: Remora falls back to reading the kernel's
// conntrack table in JavaScript, and says so in its log at start-up (docs/operations.md, "Transparent capture").
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const native = join(root, 'native');
if (process.platform !== 'linux') {
  console.log('remora: native addon skipped (SO_ORIGINAL_DST is Linux-only)');
  process.exit(0);
}
// npm puts its bundled node-gyp on PATH for lifecycle scripts; outside npm, try npm's copy next to this node.
const candidates = ['node-gyp', join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js')];
// Build against the headers of the node that runs us, offline: npm's nodedir when npm runs this script, else the
// install prefix of this node when it ships its headers (Debian's nodejs, the official tarballs, the Docker image).
const prefix = join(dirname(process.execPath), '..');
const nodedir = process.env.npm_config_nodedir || (existsSync(join(prefix, 'include/node/node_api.h')) ? prefix : '');
const args = ['rebuild', '--loglevel=warn', ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
let result;
for (const c of candidates) {
  const isJs = c.endsWith('.js');
  if (isJs && !existsSync(c)) continue;
  result = spawnSync(isJs ? process.execPath : c, [...(isJs ? [c] : []), ...args], { cwd: native, stdio: ['ignore', 'inherit', 'inherit'] });
  if (!result.error) break;
}
if (result === undefined || result.error || result.status !== 0) {
  const why = result?.error ? result.error.message : `node-gyp exited with ${result?.status ?? 'nothing to run'}`;
  console.warn(`remora: native addon not built (${why}); transparent capture will read original destinations from /proc/net/nf_conntrack instead`);
} else {
  console.log('remora: native addon built (native/build/Release/remora_net.node)');
}
process.exit(0);
