/**
 * What an upstream try came to, read from the pools' errors and response headers: connect failure, reset or
 * timeout (the retry and outlier vocabulary of model.ts), and a gRPC status. Pure; shared by the forwarder's attempts
 * and by shadow requests (./mirror.ts).
 */
import type { AttemptOutcome } from '../model.js';

/** Pool errors that are the proxy's own doing (pool closed by a reload or shutdown), not an upstream reset. */
export const LOCAL_CODES: ReadonlySet<string> = new Set(['UND_ERR_CLOSED', 'UND_ERR_DESTROYED', 'UND_ERR_ABORTED']);
const CONNECT_CODES = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ECONNABORTED']);

export function classify(err: Error): AttemptOutcome {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (CONNECT_CODES.has(code)) return { kind: 'connect-failure' };
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return { kind: 'timeout' };
  return { kind: 'reset' };
}

/** The `grpc-status` of a flat header (or trailer) list, if it has a numeric one. */
export function grpcStatusOf(raw: readonly string[]): number | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    if (k.length === 11 && k.toLowerCase() === 'grpc-status') {
      const n = Number(raw[i + 1]!);
      return Number.isFinite(n) ? n : undefined;
    }
  }
  return undefined;
}
