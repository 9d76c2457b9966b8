/** `remora validate` and `remora explain` as a user runs them. */
import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { CLI, configDir, REPO } from '../../support/proxy-harness.js';

const run = promisify(execFile);

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const GOOD = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}}
`;

describe('remora validate', () => {
  it('exits 0 on valid config', async () => {
    const r = await cli('validate', '--config', configDir({ 'a.yaml': GOOD }));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
  });
  it('exits 1 with file:line: Kind/ns/name: field: reason', async () => {
    const dir = configDir({ 'a.yaml': GOOD.replace('weight: 20', 'weight: twenty').replace('subset: v2}}]', 'subset: v9}}]') });
    const r = await cli('validate', '--config', dir);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines.some((l) => /a\.yaml:\d+: VirtualService\/default\/reviews: spec\.http\[1\]\.route\[1\]\.weight: /.test(l))).toBe(true);
    expect(lines.some((l) => /a\.yaml:9: VirtualService\/default\/reviews: spec\.http\[0\]\.route\[0\]\.destination\.subset: .*v9/.test(l))).toBe(true);
  });
  it('validates Istio\'s Bookinfo samples (test/fixtures/istio)', async () => {
    const bookinfo = join(REPO, 'test/fixtures/istio/istio-samples/bookinfo');
    const r = await cli('validate', '--config', join(bookinfo, 'virtual-service-reviews-80-20.yaml'), join(bookinfo, 'destination-rule-reviews.yaml'));
    expect(r.stdout).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('remora explain', () => {
  it('shows the matched route, the ones that did not match, destinations and endpoints', async () => {
    const dir = configDir({ 'a.yaml': GOOD });
    const r = await cli('explain', '--config', dir, 'GET http://reviews:9080/api -H end-user:jason');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('✔ jason');
    expect(r.stdout).toContain('outbound|9080|v2|reviews.default.svc.cluster.local');
    expect(r.stdout).toContain('10.0.0.2:9080');
    // Istio's default retry policy, in words.
    expect(r.stdout).toContain('\nretries:  2 attempts (3 tries at most) on connect-failure, refused-stream, 503, gRPC cancelled/unavailable; per try: no timeout; other hosts preferred\n');
    const r2 = await cli('explain', '--config', dir, 'GET http://reviews:9080/api');
    expect(r2.stdout).toContain('✘ jason');
    expect(r2.stdout).toContain('header end-user is absent');
    expect(r2.stdout).toMatch(/weight 80 \(80\.0%\)/);
  });
});
