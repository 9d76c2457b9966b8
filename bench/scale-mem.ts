// A process's memory from /proc/PID/status (Linux), for the scale scenarios: resident, private (anonymous) and
// file-backed (the node binary and libraries, shared by every process of the same executable), and the peak.
import { readFileSync } from 'node:fs';

export interface MemStatus {
  rssMB: number;
  anonMB: number;
  fileMB: number;
  /** VmHWM: the peak RSS since the process started (or since the last clear_refs). */
  hwmMB: number;
}


export function memStatus(pid: number): MemStatus {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) / 1024;
  return { rssMB: kb('VmRSS'), anonMB: kb('RssAnon'), fileMB: kb('RssFile'), hwmMB: kb('VmHWM') };
}
