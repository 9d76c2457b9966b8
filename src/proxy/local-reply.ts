/**
 * The record of a reply the proxy makes itself before any upstream (its status, flag, details and body come from the
 * one table, src/errors.ts); the reply itself carries an `x-remora-proxy-error` header so operators can tell proxy
 * failures from app failures (like Linkerd's l5d-proxy-error).
 */
import type { DownstreamRequest } from './downstream.js';
import { performance } from 'node:perf_hooks';
import type { RequestRecord } from '../model.js';

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
