/**
 * Replies the proxy makes itself, with Envoy's status codes, bodies and response flags, plus an
 * `x-remora-proxy-error` header so operators can tell proxy failures from app failures (like Linkerd's l5d-proxy-error).
 */
import type { DownstreamRequest } from './downstream.js';
import { performance } from 'node:perf_hooks';
import type { RequestRecord, ResponseFlag } from '../model.js';

export interface LocalError {
  status: number;
  flag: ResponseFlag | '-';
  details: string;
  body: string;
}

/** One table of local errors (STYLE.md §5.5). */
export const E = {
  noRoute: { status: 404, flag: 'NR', details: 'route_not_found', body: '' },
  registryOnly: { status: 502, flag: 'NR', details: 'registry_only_blackhole', body: '' },
  noCluster: { status: 503, flag: 'NC', details: 'cluster_not_found', body: 'no cluster' },
  noHealthy: { status: 503, flag: 'UH', details: 'no_healthy_upstream', body: 'no healthy upstream' },
  overflow: { status: 503, flag: 'UO', details: 'upstream_reset_before_response_started{overflow}', body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow' },
  connectFailure: { status: 503, flag: 'UF', details: 'upstream_reset_before_response_started{connection_failure}', body: 'upstream connect error or disconnect/reset before headers. reset reason: connection failure' },
  reset: { status: 503, flag: 'UC', details: 'upstream_reset_before_response_started{connection_termination}', body: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination' },
  timeout: { status: 504, flag: 'UT', details: 'upstream_response_timeout', body: 'upstream request timeout' },
  protocolError: { status: 502, flag: 'UPE', details: 'upstream_reset_before_response_started{protocol_error}', body: 'upstream connect error or disconnect/reset before headers. reset reason: protocol error' },
  faultAbort: { status: 503, flag: 'FI', details: 'fault_filter_abort', body: 'fault filter abort' },
  badRequest: { status: 400, flag: 'DPE', details: 'http1.codec_error', body: 'Bad Request' },
  notImplemented: { status: 501, flag: 'DPE', details: 'http1.invalid_transfer_encoding', body: 'Not Implemented' },
} as const satisfies Record<string, LocalError>;

/** The RequestRecord of a reply the proxy made itself (no upstream attempt), on either listener. */
export function localReplyRecord(
  req: DownstreamRequest,
  r: { direction: 'outbound' | 'inbound'; startTime: number; startHr: number; authority: string | undefined; requestId: string; status: number; flag: string; details: string; bytesSent: number },
): RequestRecord {
  return {
    direction: r.direction,
    startTime: r.startTime,
    durationMs: performance.now() - r.startHr,
    method: req.method ?? '',
    path: req.url ?? '',
    protocol: req.httpVersion === '1.0' ? 'HTTP/1.0' : req.httpVersion === '2.0' ? 'HTTP/2' : 'HTTP/1.1',
    authority: r.authority ?? (req.headers.host ?? ''),
    requestId: r.requestId,
    status: r.status,
    flags: r.flag,
    details: r.details,
    bytesReceived: 0,
    bytesSent: r.bytesSent,
    attempts: 0,
    downstreamRemoteAddress: req.remoteKey,
    downstreamLocalAddress: req.localKey,
    requestHeaders: req.headers,
  };
}
