/**
 * Once the sidecar serves, take out of its resident set the pages of the node binary (and the libraries) that only
 * start-up touched: the ICU data, V8's start-up snapshot, Node's built-in JavaScript sources, the code that ran while
 * loading. The remora_net addon (native/resident.c) calls madvise(MADV_DONTNEED) on every clean, private, read-only
 * file mapping: the pages stay in the page cache, shared with every other node process, and one touched again is
 * mapped again on first use (a minor fault). What stays resident is what serving uses: the binary's file pages at
 * max throughput 39 → 24 MB, idle RSS 52 → 26 MB, at no measurable cost per request (docs/performance.md, "Memory
 * per service, and a sidecar that stays small"). Without the addon (not Linux, not built) nothing happens.
 */
import { createRequire } from 'node:module';
import { findAddon } from '../net/original-dst.js';

interface ResidentAddon {
  dropStartupPages?: () => { mappings: number; kB: number };
}

/** The mappings advised and their size in kB (not what was resident), or undefined when the addon cannot. */
export function dropStartupPages(addonPath: string | undefined = findAddon()): { mappings: number; kB: number } | undefined {
  if (addonPath === undefined || process.platform !== 'linux') return undefined;
  try {
    const addon = createRequire(import.meta.url)(addonPath) as ResidentAddon;
    return addon.dropStartupPages?.();
  } catch {
    return undefined;
  }
}
