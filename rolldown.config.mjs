// `npm run build`, second step: bundles tsc's output (build/tsc/) into dist/, one file per CLI command plus shared
// chunks, so `remora run` loads 10 modules instead of 76. On Node 20 every ES module costs a resolve, a file read
// and a compile of its own (no compile cache before Node 22); bundling took cold start to ready from 219–342 ms to
// 181–287 ms in eight alternating pairs on 2026-12-01, 61 ms less at the median (docs/performance.md). npm packages
// stay external: they are installed next to dist/ (the Dockerfile ships production node_modules) and the heavy ones
// are imported lazily.
import { readdirSync } from 'node:fs';

const TSC = 'build/tsc';
// src/cli.ts imports `./cli/${command}.js` at run time, so every file in src/cli/ is an entry of its own.
const commands = readdirSync('src/cli').filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3));

export default {
  input: Object.fromEntries([['cli', `${TSC}/cli.js`], ...commands.map((c) => [`cli/${c}`, `${TSC}/cli/${c}.js`])]),
  platform: 'node',
  // Anything not a relative or absolute path is a package or a node: builtin.
  external: /^[^./]/,
  output: {
    dir: 'dist',
    format: 'esm',
    entryFileNames: '[name].js',
    // Two levels below the package root, as src/inject/image.ts expects of every module that reads package.json.
    chunkFileNames: 'chunks/[name]-[hash].js',
    sourcemap: true,
    // Source text stays in the heap for lazy compilation: without comments and with non-ASCII escaped (one byte per
    // character instead of two), the app chunk went from 489 to 324 KB, the idle heap 8.9 → 7.7 MB (names and source
    // maps are kept: stack traces read the same).
    charset: 'ascii',
    comments: false,
    cleanDir: true,
  },
};
