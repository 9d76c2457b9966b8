/**
 * Inbound NetworkPolicy / AuthorizationPolicy and Sidecar egress scoping, end to end: `remora run --kubernetes`
 * against the fake API server; "pods" are HTTP clients bound to distinct loopback addresses (127.0.0.2 is the
 * productpage pod, 127.0.0.3 another pod) calling the inbound port in front of a local app.
 */
import { request as httpRequest } from 'node:http';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeKubeApiServer, writeKubeconfig } from '../../support/fake-kube-apiserver.js';
import { endpointSlice, pod, service } from '../../support/k8s-objects.js';
import { CLI, startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { fakeUpstream, type UpstreamBuilder } from '../../support/fake-upstream.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Start a fake upstream, closed after the test; its port. */
async function listen(upstream: UpstreamBuilder): Promise<number> {
  const u = await upstream.start();
  cleanups.push(() => u.close());
  return u.port;
}

/** The app behind the sidecar: answers with the path it got. */
async function startApp(): Promise<number> {
  return listen(fakeUpstream().route('*', 200, (r) => `app ${r.url}`));
}

/** One request from `from` (a pod's address) to the sidecar's inbound port. */
function call(from: string, port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, localAddress: from, agent: false, headers: { host: 'reviews.default.svc.cluster.local' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs = 1000): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
}

const PRODUCTPAGE = '127.0.0.2';
const OTHER = '127.0.0.3';

const onlyProductpage = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'reviews-from-productpage', namespace: 'default' },
  spec: {
    podSelector: { matchLabels: { app: 'reviews' } },
    policyTypes: ['Ingress'],
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'productpage' } } }] }],
  },
};

const denyPaths = (paths: string[]) => ({
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'deny-admin', namespace: 'default' },
  spec: { selector: { matchLabels: { app: 'reviews' } }, action: 'DENY', rules: [{ to: [{ operation: { paths } }] }] },
});

async function setup(extraArgs: string[] = [], files: Record<string, string> = {}) {
  const appPort = await startApp();
  const api = await new FakeKubeApiServer().start();
  cleanups.push(() => api.close());
  const kc = writeKubeconfig(api.url);
  cleanups.push(kc.cleanup);
  api.apply(pod('productpage-0', 'default', PRODUCTPAGE, { app: 'productpage' }));
  api.apply(pod('other-0', 'default', OTHER, { app: 'other' }));
  const proxy: RunningProxy = await startProxy(files, [
    '--kubernetes', '--app-port', String(appPort), '--labels', 'app=reviews', '--namespace', 'default',
    '--access-log', 'stdout', ...extraArgs,
  ], { env: { KUBECONFIG: kc.path } });
  cleanups.push(() => proxy.stop());
  const inbound = proxy.info.inbound;
  const metric = async (name: string): Promise<number> => {
    const r = await proxy.admin('/stats/prometheus');
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(r.body);
    return m ? Number(m[1]) : NaN;
  };
  return { api, proxy, inbound, metric };
}

describe.skipIf(!existsSync(CLI))('inbound NetworkPolicy and AuthorizationPolicy through remora run --kubernetes', () => {
  it('no policy: every peer is allowed and nothing is counted', async () => {
    const { inbound, metric } = await setup();
    expect(await call(PRODUCTPAGE, inbound, '/products')).toEqual({ status: 200, body: 'app /products' });
    expect(await call(OTHER, inbound, '/admin')).toEqual({ status: 200, body: 'app /admin' });
    expect(await metric('remora_inbound_authz_denied_total')).toBe(0);
    expect(await metric('remora_inbound_authz_allowed_total')).toBe(0);
  });

  it('NetworkPolicy allows only productpage pods; AuthorizationPolicy DENY on /admin*; MODIFIED and DELETED apply within a second', async () => {
    const { api, proxy, inbound, metric } = await setup();

    api.apply(onlyProductpage);
    const t1 = await waitFor('NetworkPolicy enforced', async () => (await call(OTHER, inbound)).status === 403);
    expect(t1).toBeLessThan(1000);
    expect(await call(OTHER, inbound, '/products')).toEqual({ status: 403, body: 'RBAC: access denied' });
    expect(await call(PRODUCTPAGE, inbound, '/products')).toEqual({ status: 200, body: 'app /products' });
    expect(await call(PRODUCTPAGE, inbound, '/admin/users')).toEqual({ status: 200, body: 'app /admin/users' });

    api.apply(denyPaths(['/admin*']));
    const t2 = await waitFor('AuthorizationPolicy enforced', async () => (await call(PRODUCTPAGE, inbound, '/admin/users')).status === 403);
    expect(t2).toBeLessThan(1000);
    expect(await call(PRODUCTPAGE, inbound, '/admin')).toEqual({ status: 403, body: 'RBAC: access denied' });
    expect(await call(PRODUCTPAGE, inbound, '/products?admin=1')).toEqual({ status: 200, body: 'app /products?admin=1' });

    // MODIFIED: the DENY moves to /internal*.
    api.apply(denyPaths(['/internal*']));
    const t3 = await waitFor('modified policy applied', async () => (await call(PRODUCTPAGE, inbound, '/admin/users')).status === 200);
    expect(t3).toBeLessThan(1000);
    expect((await call(PRODUCTPAGE, inbound, '/internal/x')).status).toBe(403);
    expect((await call(OTHER, inbound, '/products')).status).toBe(403);

    // DELETED: with no policy left, authorization is off again.
    api.delete('NetworkPolicy', 'default', onlyProductpage.metadata.name);
    api.delete('AuthorizationPolicy', 'default', 'deny-admin');
    const t4 = await waitFor('policies removed', async () => (await call(OTHER, inbound, '/internal/x')).status === 200);
    expect(t4).toBeLessThan(1000);

    expect(await metric('remora_inbound_authz_denied_total')).toBeGreaterThanOrEqual(7);
    expect(await metric('remora_inbound_authz_allowed_total')).toBeGreaterThanOrEqual(4);
    // Access log: Envoy's RBAC details, no response flag; the deny rule is named.
    await waitFor('access log flushed', async () => proxy.stdout.includes('rbac_access_denied_matched_policy[ns[default]-policy[deny-admin]-rule[0]]'), 2000);
    const denied = proxy.stdout.split('\n').filter((l) => l.includes('rbac_access_denied_matched_policy'));
    expect(denied.some((l) => l.includes('rbac_access_denied_matched_policy[none]') && / 403 - /.test(l))).toBe(true);
    // Denials are logged once per (policy, peer) per minute, not once per request.
    expect(proxy.stderr.match(/inbound request denied by NetworkPolicy default\/reviews-from-productpage/g)?.length ?? 0).toBe(1);
  });

  it('a pod that is not Running is not recognised as productpage', async () => {
    const { api, inbound } = await setup();
    api.apply(onlyProductpage);
    await waitFor('NetworkPolicy enforced', async () => (await call(OTHER, inbound)).status === 403);
    expect((await call(PRODUCTPAGE, inbound)).status).toBe(200);
    const p = pod('productpage-0', 'default', PRODUCTPAGE, { app: 'productpage' });
    api.apply({ ...p, status: { ...p.status, phase: 'Succeeded' } });
    await waitFor('completed pod no longer matches', async () => (await call(PRODUCTPAGE, inbound)).status === 403);
  });
});

describe.skipIf(!existsSync(CLI))('Sidecar egress scoping through remora run --kubernetes', () => {
  it('keeps only the hosts the Sidecar reaches and applies its outboundTrafficPolicy', async () => {
    const upstreamPort = await listen(fakeUpstream().on('127.0.0.4').route('*', 200, 'reached'));
    const { api, proxy } = await setup();
    const addService = (name: string, ns: string) => {
      api.apply(service(name, ns, [{ name: 'http', port: 80, targetPort: upstreamPort }]));
      api.apply(endpointSlice(`${name}-1`, ns, name, [{ ip: '127.0.0.4' }], [{ name: 'http', port: upstreamPort }]));
    };
    addService('ratings', 'default');
    addService('db', 'data');
    const get = async (host: string) => (await proxy.get('/', { host })).status;
    await waitFor('both services known', async () => (await get('ratings.default.svc.cluster.local')) === 200 && (await get('db.data.svc.cluster.local')) === 200, 3000);

    api.apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'Sidecar',
      metadata: { name: 'default', namespace: 'default' },
      spec: { egress: [{ hosts: ['./*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } },
    });
    // db.data is out of scope: unknown to this sidecar, and REGISTRY_ONLY (from the Sidecar) blackholes it.
    const t = await waitFor('db out of scope', async () => (await get('db.data.svc.cluster.local')) === 502);
    expect(t).toBeLessThan(1000);
    expect(await get('ratings.default.svc.cluster.local')).toBe(200);
    const dump = JSON.parse((await proxy.admin('/config_dump')).body) as { clusters: Array<{ name: string }> };
    const names = dump.clusters.map((c) => c.name);
    expect(names.some((n) => n.includes('ratings.default.svc.cluster.local'))).toBe(true);
    expect(names.some((n) => n.includes('db.data.svc.cluster.local'))).toBe(false);

    // Widen the egress with a MODIFIED event: db comes back.
    api.apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'Sidecar',
      metadata: { name: 'default', namespace: 'default' },
      spec: { egress: [{ hosts: ['./*', 'data/*'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } },
    });
    await waitFor('db back in scope', async () => (await get('db.data.svc.cluster.local')) === 200);
  });
});

describe.skipIf(!existsSync(CLI))('AuthorizationPolicy from a config file, without an API server', () => {
  it('ipBlocks work on peer addresses alone; the policy file is validated like routing config', async () => {
    const appPort = await startApp();
    const proxy = await startProxy({
      'authz.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-other, namespace: default}
spec:
  action: DENY
  rules:
  - from: [{source: {ipBlocks: ["${OTHER}/32"]}}]
`,
    }, ['--app-port', String(appPort), '--labels', 'app=reviews', '--namespace', 'default']);
    cleanups.push(() => proxy.stop());
    expect(await call(OTHER, proxy.info.inbound)).toEqual({ status: 403, body: 'RBAC: access denied' });
    expect(await call(PRODUCTPAGE, proxy.info.inbound, '/x')).toEqual({ status: 200, body: 'app /x' });
  });
});

describe.skipIf(!existsSync(CLI))('a Sidecar from a config file scopes the API-server input', () => {
  it('applies at start and follows edits of the file', async () => {
    const upstreamPort = await listen(fakeUpstream().on('127.0.0.4').route('*', 200, 'reached'));
    const sidecarYaml = (hosts: string[]) => `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{hosts: ${JSON.stringify(hosts)}}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`;
    const { api, proxy } = await setup([], { 'sidecar.yaml': sidecarYaml(['./*']) });
    for (const [name, ns] of [['ratings', 'default'], ['db', 'data']] as const) {
      api.apply(service(name, ns, [{ name: 'http', port: 80, targetPort: upstreamPort }]));
      api.apply(endpointSlice(`${name}-1`, ns, name, [{ ip: '127.0.0.4' }], [{ name: 'http', port: upstreamPort }]));
    }
    const get = async (host: string) => (await proxy.get('/', { host })).status;
    await waitFor('ratings reachable', async () => (await get('ratings.default.svc.cluster.local')) === 200, 3000);
    expect(await get('db.data.svc.cluster.local')).toBe(502);
    proxy.writeConfig('sidecar.yaml', sidecarYaml(['./*', 'data/db.data.svc.cluster.local']));
    await waitFor('db reachable after the file edit', async () => (await get('db.data.svc.cluster.local')) === 200, 3000);
  });
});
