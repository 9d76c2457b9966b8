/** Builders of RequestRecords for telemetry tests: one realistic default, overridden per case. */
import type { RequestRecord } from '../../../src/model.js';

export const REVIEWS_V1 = 'outbound|9080|v1|reviews.default.svc.cluster.local';

export function record(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    direction: 'outbound',
    startTime: Date.UTC(2024, 4, 1, 12, 30, 45, 123),
    durationMs: 3.4,
    method: 'GET',
    path: '/reviews/1?x=1',
    protocol: 'HTTP/1.1',
    authority: 'reviews:9080',
    requestId: 'req-1',
    status: 200,
    flags: '-',
    details: 'via_upstream',
    bytesReceived: 0,
    bytesSent: 295,
    upstreamServiceTimeMs: 2.7,
    upstreamHost: '10.0.0.7:9080',
    upstreamCluster: REVIEWS_V1,
    attempts: 1,
    routeName: 'reviews.default.svc.cluster.local:9080/default',
    downstreamRemoteAddress: '127.0.0.1:51234',
    downstreamLocalAddress: '127.0.0.1:15001',
    destinationService: 'reviews.default.svc.cluster.local',
    destinationServiceName: 'reviews',
    destinationServiceNamespace: 'default',
    destinationVersion: 'v1',
    requestHeaders: { 'x-request-id': 'req-1', 'user-agent': 'curl/8.0', ':authority': 'reviews:9080' },
    responseHeaders: { 'content-type': 'application/json' },
    ...over,
  };
}
