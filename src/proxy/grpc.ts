/**
 * gRPC over HTTP as a proxy sees it, pure: which requests are gRPC, the `grpc-timeout` deadline, and local errors
 * written as gRPC errors (HTTP 200 with `grpc-status` and `grpc-message`) instead of bare HTTP statuses, so a gRPC
 * client reads UNAVAILABLE or DEADLINE_EXCEEDED rather than a protocol error.
 */
import { E } from '../errors.js';

/** A gRPC call (content-type application/grpc, +proto, +json, …): local errors go to it as gRPC errors. */
export function isGrpc(headers: { 'content-type'?: string | undefined }): boolean {
  const ct = headers['content-type'];
  return ct !== undefined && ct.startsWith('application/grpc');
}

/**
 * The gRPC status of a local reply: a timeout is DEADLINE_EXCEEDED (4); otherwise the gRPC specification's HTTP →
 * gRPC mapping, as Envoy applies it (400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
 * 429/502/503/504 UNAVAILABLE, anything else UNKNOWN).
 */
export function grpcStatusForLocal(status: number, flag: string): number {
  if (flag === E.timeout.flag) return 4;
  switch (status) {
    case 400: return 13;
    case 401: return 16;
    case 403: return 7;
    case 404: return 12;
    case 429: case 502: case 503: case 504: return 14;
    default: return 2;
  }
}

/** grpc-message is percent-encoded: bytes outside printable ASCII, and '%' itself (gRPC over HTTP/2 spec). */
export function grpcMessage(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

/**
 * A local reply to a gRPC client: HTTP 200 with no body and the error in `grpc-status` / `grpc-message` (a
 * "trailers-only" response), plus `extra` headers (the caller adds `content-length: 0`). The HTTP status is 200.
 */
export function grpcLocalHeaders(status: number, flag: string, message: string, extra?: readonly string[]): { headers: string[]; grpcStatus: number } {
  const grpcStatus = grpcStatusForLocal(status, flag);
  const headers = ['content-type', 'application/grpc', 'grpc-status', String(grpcStatus), 'grpc-message', grpcMessage(message)];
  if (extra) for (const h of extra) headers.push(h);
  return { headers, grpcStatus };
}

/** What a reply the proxy makes itself consists of: its status, headers (no content-length yet) and body. */
export interface LocalReplyParts {
  status: number;
  headers: string[];
  body: Buffer;
  /** Set when the reply went out as a gRPC error (metrics label grpc_response_status). */
  grpcStatus: number | undefined;
}

const EMPTY = Buffer.alloc(0);

/**
 * A local error as the client can read it: plain text with its HTTP status, or, to a gRPC client, a 200 with
 * `grpc-status` and `grpc-message` and no body. `extra` headers go on either. The one place every listener's local
 * errors (forwarder, outbound, inbound) take this shape.
 */
export function localReplyParts(reqHeaders: { 'content-type'?: string | undefined }, status: number, flag: string, text: string, details: string, extra: readonly string[]): LocalReplyParts {
  if (isGrpc(reqHeaders)) {
    const g = grpcLocalHeaders(status, flag, text || details, extra);
    return { status: 200, headers: g.headers, body: EMPTY, grpcStatus: g.grpcStatus };
  }
  return { status, headers: ['content-type', 'text/plain', ...extra], body: Buffer.from(text), grpcStatus: undefined };
}

/**
 * The `grpc-timeout` header as milliseconds (gRPC over HTTP/2: up to 8 digits and a unit H, M, S, m, u, n);
 * undefined when absent or malformed. A proxy treats it as the call's deadline (Istio routes honour it).
 */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value.trim());
  if (m === null) return undefined;
  const n = Number(m[1]);
  switch (m[2]) {
    case 'H': return n * 3_600_000;
    case 'M': return n * 60_000;
    case 'S': return n * 1000;
    case 'm': return n;
    case 'u': return n / 1000;
    default: return n / 1_000_000;
  }
}
