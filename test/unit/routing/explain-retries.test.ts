/** The `retries:` line of `remora explain` (and `/debug/route?format=text`): the compiled policy as a person reads it. */
import { describe, it, expect } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile } from '../../../src/config/compile.js';
import { compileRetryPolicy } from '../../../src/proxy/retry-policy.js';
import { describeRetries, explainRequest, formatExplanation } from '../../../src/routing/explain.js';
import type { HTTPRetry } from '../../../src/config/types.js';

const of = (raw: HTTPRetry | undefined, routeTimeoutMs = 0): string => describeRetries(compileRetryPolicy(raw, routeTimeoutMs));

describe('describeRetries', () => {
  it("Istio's default (a route without a retries block)", () => {
    expect(of(undefined)).toBe('2 attempts (3 tries at most) on connect-failure, refused-stream, 503, gRPC cancelled/unavailable; per try: no timeout; other hosts preferred');
  });

  it('off for attempts 0 (or a retries block without attempts)', () => {
    expect(of({ attempts: 0 })).toBe('off');
    expect(of({})).toBe('off');
  });

  it('names the retryOn conditions in Istio\'s words, status codes and gRPC statuses after them', () => {
    expect(of({ attempts: 3, retryOn: 'retriable-4xx,reset,5xx,gateway-error,409,429,deadline-exceeded,internal' }))
      .toBe('3 attempts (4 tries at most) on 5xx, gateway-error, reset, retriable-4xx, 409, 429, gRPC deadline-exceeded/internal; per try: no timeout; other hosts preferred');
    // reset-before-request is applied as connect-failure (the one reset provably before the request was sent).
    expect(of({ attempts: 1, retryOn: 'reset-before-request' })).toBe('1 attempt (2 tries at most) on connect-failure; per try: no timeout; other hosts preferred');
  });

  it('says so when no retryOn condition applies (the Envoy-only tokens)', () => {
    expect(of({ attempts: 2, retryOn: 'envoy-ratelimited,retriable-headers' })).toBe('2 attempts (3 tries at most) on no condition (nothing in retryOn applies here); per try: no timeout; other hosts preferred');
  });

  it('gives the per-try timeout as a duration, capped by the route timeout', () => {
    expect(of({ attempts: 2, perTryTimeout: '200ms' })).toContain('; per try: 200ms;');
    expect(of({ attempts: 2, perTryTimeout: '1.5s' })).toContain('; per try: 1.5s;');
    expect(of({ attempts: 2, perTryTimeout: '2s' })).toContain('; per try: 2s;');
    expect(of({ attempts: 2, perTryTimeout: '5s' }, 1000)).toContain('; per try: 1s;');
  });

  it('shows the backoff only when it is not the default, and the host choice either way', () => {
    expect(of({ attempts: 2, backoff: '25ms' })).not.toContain('backoff');
    expect(of({ attempts: 2, backoff: '100ms', retryIgnorePreviousHosts: false }))
      .toBe('2 attempts (3 tries at most) on connect-failure, refused-stream, 503, gRPC cancelled/unavailable; per try: no timeout; the same host may be retried; backoff 100ms (up to 1s)');
  });

  it('notes retryRemoteLocalities, which is accepted but not applied', () => {
    expect(of({ attempts: 2, retryRemoteLocalities: true })).toMatch(/; retryRemoteLocalities not applied$/);
  });
});

describe('formatExplanation', () => {
  it('prints the retries line in words, not JSON; --json keeps the policy object', () => {
    const yaml = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /off}}]
    retries: {attempts: 0}
    route: [{destination: {host: reviews}}]
  - retries: {attempts: 4, perTryTimeout: 250ms, retryOn: gateway-error}
    route: [{destination: {host: reviews}}]
`;
    const { resources, errors } = parseDocuments(yaml, 'a.yaml');
    expect(errors).toEqual([]);
    const snap = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
    const e = explainRequest(snap, { method: 'GET', url: 'http://reviews:9080/api', headers: {} });
    expect(formatExplanation(e).split('\n').filter((l) => l.startsWith('retries:'))).toEqual([
      'retries:  4 attempts (5 tries at most) on gateway-error; per try: 250ms; other hosts preferred',
    ]);
    expect(e.retries).toMatchObject({ attempts: 4, perTryTimeoutMs: 250, retryOn: { gatewayError: true } });
    const off = explainRequest(snap, { method: 'GET', url: 'http://reviews:9080/off', headers: {} });
    expect(formatExplanation(off)).toContain('\nretries:  off\n');
  });
});
