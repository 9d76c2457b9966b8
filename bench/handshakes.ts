// New mutual-TLS connections per second against one server: each connection does a full handshake with a client
// certificate (no session resumption), one HTTP/1.1 request with `Connection: close`, and its response — what a
// caller that does not pool pays. A closed loop with a few connections in flight for a fixed time; the server's CPU
// (its processes' utime + stime from /proc) per handshake is reported beside the rate.
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { clockTicksPerSec, parseStatCpuTicks } from '../src/bench/proc.js';

export interface HandshakeResult {
  name: string;
  /** Completed connections (handshake + request + response) per second. */
  perSecond: number;
  completed: number;
  failed: number;
  /** Server CPU (its pids) per handshake, ms; null when /proc could not be read. */
  cpuMsPerHandshake: number | null;
}

export interface HandshakeTarget {
  name: string;
  port: number;
  /** The client certificate directory (tls.crt, tls.key). */
  certDir: string;
  alpn: string[];
  /** Host header of the request. */
  host: string;
  pids: number[];
}

function cpuTicks(pids: readonly number[]): number | null {
  let sum = 0;
  for (const pid of pids) {
    try {
      sum += parseStatCpuTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return null;
    }
  }
  return sum;
}

/** One connection: handshake, request, the whole response; resolves true when a 2xx came back. */
function once(t: HandshakeTarget, cert: Buffer, key: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    let data = '';
    const s = tls.connect({ port: t.port, host: '127.0.0.1', cert, key, rejectUnauthorized: false, ALPNProtocols: t.alpn, servername: t.host }, () => {
      s.write(`GET / HTTP/1.1\r\nhost: ${t.host}\r\nconnection: close\r\n\r\n`);
    });
    const timer = setTimeout(() => s.destroy(), 5000);
    s.on('data', (d: Buffer) => { data += d.toString('latin1'); });
    s.on('error', () => { /* counted as failed below */ });
    s.on('close', () => { clearTimeout(timer); resolve(/^HTTP\/1\.1 2\d\d/.test(data)); });
  });
}

export async function handshakeRate(t: HandshakeTarget, durationMs: number, inFlight = 8): Promise<HandshakeResult> {
  const cert = readFileSync(`${t.certDir}/tls.crt`);
  const key = readFileSync(`${t.certDir}/tls.key`);
  let completed = 0;
  let failed = 0;
  const c0 = cpuTicks(t.pids);
  const t0 = performance.now();
  const end = t0 + durationMs;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (performance.now() < end) {
      if (await once(t, cert, key)) completed++;
      else failed++;
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  const c1 = cpuTicks(t.pids);
  const cpuMs = c0 === null || c1 === null ? null : ((c1 - c0) * 1000) / clockTicksPerSec();
  return { name: t.name, perSecond: completed / seconds, completed, failed, cpuMsPerHandshake: cpuMs === null || completed === 0 ? null : cpuMs / completed };
}
