/**
 * The process's own metrics (`process_*`, `nodejs_heap_*`): what node reports of CPU, memory and start time, read at
 * scrape time and rendered as Prometheus client libraries name them.
 */
import { formatValue } from './exposition.js';

export interface ProcessInfo {
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
  residentMemoryBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  startTimeSeconds: number;
}

const startTimeSeconds = Math.round((Date.now() / 1000 - process.uptime()) * 1000) / 1000;
export function defaultProcessInfo(): ProcessInfo {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return {
    cpuUserSeconds: cpu.user / 1e6,
    cpuSystemSeconds: cpu.system / 1e6,
    residentMemoryBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
    heapTotalBytes: mem.heapTotal,
    startTimeSeconds,
  };
}

export function renderProcess(out: string[], p: ProcessInfo): void {
  out.push(
    '# HELP process_cpu_user_seconds_total User CPU time spent in seconds.\n# TYPE process_cpu_user_seconds_total counter\n' +
      `process_cpu_user_seconds_total ${formatValue(p.cpuUserSeconds)}\n` +
      '# HELP process_cpu_system_seconds_total System CPU time spent in seconds.\n# TYPE process_cpu_system_seconds_total counter\n' +
      `process_cpu_system_seconds_total ${formatValue(p.cpuSystemSeconds)}\n` +
      '# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\n' +
      `process_cpu_seconds_total ${formatValue(p.cpuUserSeconds + p.cpuSystemSeconds)}\n` +
      '# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\n' +
      `process_resident_memory_bytes ${formatValue(p.residentMemoryBytes)}\n` +
      '# HELP nodejs_heap_size_used_bytes V8 heap used in bytes.\n# TYPE nodejs_heap_size_used_bytes gauge\n' +
      `nodejs_heap_size_used_bytes ${formatValue(p.heapUsedBytes)}\n` +
      '# HELP nodejs_heap_size_total_bytes V8 heap size in bytes.\n# TYPE nodejs_heap_size_total_bytes gauge\n' +
      `nodejs_heap_size_total_bytes ${formatValue(p.heapTotalBytes)}\n` +
      '# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\n' +
      `process_start_time_seconds ${formatValue(p.startTimeSeconds)}\n`,
  );
}
