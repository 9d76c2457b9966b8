// gRPC on the proxy path, pure parts: which requests are gRPC, grpc-timeout as a deadline, local errors as gRPC
// statuses, grpc-message encoding, and when a cluster is reached over HTTP/2.
import { describe, expect, it } from 'vitest';
import { grpcLocalHeaders, grpcMessage, grpcStatusForLocal, isGrpc, parseGrpcTimeout } from '../../../src/proxy/grpc.js';
import { upstreamIsHttp2, compileClusterPolicy } from '../../../src/upstream/policy.js';

describe('gRPC helpers', () => {
  it('recognise gRPC requests by content-type', () => {
    for (const ct of ['application/grpc', 'application/grpc+proto', 'application/grpc-web+json']) expect(isGrpc({ 'content-type': ct })).toBe(true);
    for (const ct of [undefined, 'application/json', 'text/grpc']) expect(isGrpc({ 'content-type': ct })).toBe(false);
  });

  it('read grpc-timeout in every unit, and refuse malformed values', () => {
    expect(parseGrpcTimeout('1H')).toBe(3_600_000);
    expect(parseGrpcTimeout('2M')).toBe(120_000);
    expect(parseGrpcTimeout('3S')).toBe(3000);
    expect(parseGrpcTimeout('300m')).toBe(300);
    expect(parseGrpcTimeout('1500u')).toBe(1.5);
    expect(parseGrpcTimeout('2000000n')).toBe(2);
    for (const bad of [undefined, '', '100', '123456789S', '1.5S', 'S', '10s', ['1S']]) expect(parseGrpcTimeout(bad as string)).toBeUndefined();
  });

  it('map local errors to gRPC statuses: timeouts DEADLINE_EXCEEDED, the rest as the gRPC spec maps HTTP', () => {
    expect(grpcStatusForLocal(504, 'UT')).toBe(4);
    expect(grpcStatusForLocal(503, 'UH')).toBe(14);
    expect(grpcStatusForLocal(503, 'UO')).toBe(14);
    expect(grpcStatusForLocal(502, 'NR')).toBe(14);
    expect(grpcStatusForLocal(404, 'NR')).toBe(12);
    expect(grpcStatusForLocal(403, '-')).toBe(7);
    expect(grpcStatusForLocal(401, '-')).toBe(16);
    expect(grpcStatusForLocal(400, 'DPE')).toBe(13);
    expect(grpcStatusForLocal(429, 'RL')).toBe(14);
    expect(grpcStatusForLocal(500, '-')).toBe(2);
  });

  it('percent-encode grpc-message and build a trailers-only reply', () => {
    expect(grpcMessage('no healthy upstream')).toBe('no healthy upstream');
    expect(grpcMessage('100% down\nnow é')).toBe('100%25 down%0Anow %C3%A9');
    const g = grpcLocalHeaders(503, 'UF', 'upstream connect error', ['x-remora-proxy-error', 'UF x']);
    expect(g.grpcStatus).toBe(14);
    expect(g.headers).toEqual(['content-type', 'application/grpc', 'grpc-status', '14', 'grpc-message', 'upstream connect error', 'x-remora-proxy-error', 'UF x']);
  });
});

describe('upstreamIsHttp2', () => {
  const plain = compileClusterPolicy({}, 80).pool;
  const upgrade = compileClusterPolicy({ dr: { connectionPool: { http: { h2UpgradePolicy: 'UPGRADE' } } } }, 80).pool;
  const never = compileClusterPolicy({ dr: { connectionPool: { http: { h2UpgradePolicy: 'DO_NOT_UPGRADE' } } } }, 80).pool;
  const client = compileClusterPolicy({ dr: { connectionPool: { http: { useClientProtocol: true } } } }, 80).pool;

  it('follows the declared protocol, h2UpgradePolicy and useClientProtocol', () => {
    for (const p of ['http2', 'grpc', 'grpc-web']) expect(upstreamIsHttp2(p, plain, false)).toBe(true);
    expect(upstreamIsHttp2('http', plain, false)).toBe(false);
    expect(upstreamIsHttp2('http', plain, true)).toBe(false); // Istio's default: DO_NOT_UPGRADE
    expect(upstreamIsHttp2('http', upgrade, false)).toBe(true);
    expect(upstreamIsHttp2('http', never, true)).toBe(false);
    expect(upstreamIsHttp2('http', client, true)).toBe(true);
    expect(upstreamIsHttp2('http', client, false)).toBe(false);
    // A port of unknown protocol (sniffed) follows the client, as Envoy's auto codec does.
    expect(upstreamIsHttp2('', plain, true)).toBe(true);
    expect(upstreamIsHttp2('', plain, false)).toBe(false);
  });

  it('compiles maxConcurrentStreams and http2KeepAlive', () => {
    const p = compileClusterPolicy({ dr: { connectionPool: { http: { maxConcurrentStreams: 10, http2KeepAlive: { interval: '30s', timeout: '5s' } } } } }, 80).pool;
    expect(p.maxConcurrentStreams).toBe(10);
    expect(p.h2PingIntervalMs).toBe(30_000);
    expect(p.h2PingTimeoutMs).toBe(5000);
  });
});
