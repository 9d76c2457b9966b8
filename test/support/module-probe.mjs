// Preloaded with `node --import` (NODE_OPTIONS) by tests that check which modules a process loads: records every ES
// module URL the process resolves (through a resolve hook, in the hooks thread) and, at exit, the built-in modules it
// loaded (process.moduleLoadList), to the file named by MODULE_PROBE_OUT (and MODULE_PROBE_OUT + '.esm').
import { register } from 'node:module';
import { writeFileSync } from 'node:fs';

const out = process.env.MODULE_PROBE_OUT;
if (out) {
  register(new URL('./module-probe-hooks.mjs', import.meta.url), { data: { out: `${out}.esm` } });
  process.on('exit', () => writeFileSync(out, process.moduleLoadList.join('\n')));
}
