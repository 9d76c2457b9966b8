// bench/mem-probe.mjs's in-process part (--import): V8 spaces, heap and code statistics at the highest RSS seen.
import v8 from 'node:v8';
import { writeFileSync } from 'node:fs';
let best = null;
const t = setInterval(() => {
  const m = process.memoryUsage();
  if (!best || m.rss > best.mu.rss) {
    const spaces = {};
    for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = { size: s.space_size, used: s.space_used_size, phys: s.physical_space_size };
    const hs = v8.getHeapStatistics();
    best = { mu: m, spaces, malloced: hs.malloced_memory, peakMalloced: hs.peak_malloced_memory, external: hs.external_memory, code: v8.getHeapCodeStatistics() };
    writeFileSync(process.env.PROBE_OUT, JSON.stringify(best));
  }
}, 100);
t.unref();
