// deploy/injector as a cluster would run it, from the slim image: the injector Deployment's pod template, exactly as
// deploy/injector/deployment.yaml writes it, run by the test kubelet with the TLS Secret gen-certs.sh makes and probed
// over HTTPS from the node; then called as the API server calls the webhook (TLS verified against the caBundle
// gen-certs.sh prints, for the Service's name): a Pod CREATE comes back with the patch `remora inject` would make.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { applyPatch, type JsonPatchOp } from '../../src/inject/json-patch.js';
import { createNetnsPair, type NetnsPair } from '../support/netns.js';
import { BASE_IMAGE, SLIM_IMAGE } from './build.js';
import { appPod, injectWithImage } from './pod-fixture.js';
import { startPod, type RunningPod } from './pod-runner.js';
import { podmanAt } from './podman.js';

const build = inject('imageBuild');
const p = podmanAt(inject('podmanDir'));
const repo = fileURLToPath(new URL('../../', import.meta.url));
const client = fileURLToPath(new URL('./pod-app.mjs', import.meta.url));

describe('the injector Deployment of deploy/injector, run from the image', () => {
  let net: NetnsPair;
  let pod: RunningPod;
  let certs: string;
  const request = (op: Record<string, unknown>): { status?: number; body?: string; error?: string } =>
    JSON.parse(net.exec(net.world, [process.execPath, client, 'request', JSON.stringify(op)]).trim().split('\n').pop()!);

  beforeAll(async () => {
    if (!build.ok) throw new Error(`the images were not built (${build.error}): see the build test`);
    net = createNetnsPair('imj', 124);
    certs = mkdtempSync(join(tmpdir(), 'remora-injector-certs-'));
    execFileSync('sh', [join(repo, 'deploy/injector/gen-certs.sh'), certs], { stdio: 'pipe', timeout: 60_000 });
    const deployment = parse(readFileSync(join(repo, 'deploy/injector/deployment.yaml'), 'utf8')) as Record<string, any>;
    const template = deployment.spec.template;
    pod = await startPod(p, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { ...template.metadata, name: 'remora-injector-0', namespace: deployment.metadata.namespace },
      spec: template.spec,
    }, {
      netns: net.pod,
      podIp: net.podIp,
      prefix: `remora-image-injector-${process.pid}`,
      configMaps: {},
      secrets: { 'remora-injector-tls': { 'tls.crt': readFileSync(join(certs, 'tls.crt'), 'utf8'), 'tls.key': readFileSync(join(certs, 'tls.key'), 'utf8') } },
      // The kubelet does not verify an HTTPS probe's certificate.
      probe: (port, path, timeoutSeconds, scheme) => request({ url: `${scheme.toLowerCase()}://${net.podIp}:${port}${path}`, insecure: true, timeoutMs: timeoutSeconds * 1000 }).status,
    });
  }, 180_000);

  afterAll(() => {
    pod?.destroy();
    net?.destroy();
    if (certs) rmSync(certs, { recursive: true, force: true });
  });

  it('runs as the Deployment asks (UID 1337, read-only root, no capabilities) and passes its HTTPS readiness probe', () => {
    const plan = pod.plan.containers.find((c) => c.name === 'injector')!;
    expect(plan.image).toBe(SLIM_IMAGE);
    expect(plan.user).toEqual({ uid: 1337, gid: 1337 });
    expect(plan.runArgs).toEqual(expect.arrayContaining(['--read-only', '--cap-drop=ALL', '--security-opt=no-new-privileges']));
    expect(plan.readinessProbe).toMatchObject({ scheme: 'HTTPS', port: 9443, path: '/healthz' });
    const status = readFileSync(`/proc/${pod.pid('injector')}/status`, 'utf8');
    expect(status).toMatch(/^Uid:\s+1337\s+1337\s+1337\s+1337$/m);
    expect(status).toMatch(/^CapEff:\s+0+$/m);
  });

  it("answers a Pod CREATE over TLS verified against gen-certs.sh's caBundle with remora inject's own patch", () => {
    const manifest = appPod(BASE_IMAGE);
    const object = parse(manifest) as Record<string, any>;
    const review = {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: 'image-test-1',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        operation: 'CREATE',
        namespace: object.metadata.namespace,
        object,
      },
    };
    // The API server dials the Service (443 → 9443); the certificate must name remora-injector.remora-system.svc.
    const r = request({
      url: `https://${net.podIp}:9443/inject`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(review),
      caFile: join(certs, 'ca.crt'),
      servername: 'remora-injector.remora-system.svc',
    });
    expect(r.status, r.error ?? r.body).toBe(200);
    const response = (JSON.parse(r.body!) as { response: { uid: string; allowed: boolean; patchType: string; patch: string } }).response;
    expect(response).toMatchObject({ uid: 'image-test-1', allowed: true, patchType: 'JSONPatch' });
    const patched = applyPatch(object, JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as JsonPatchOp[]) as Record<string, any>;
    // The same pod `remora inject` makes with the injector's flags (deployment.yaml: --image, --config-map).
    const cli = injectWithImage(p, SLIM_IMAGE, manifest, ['--image', SLIM_IMAGE, '--config-map', 'remora-config']).pod;
    expect(patched.spec).toEqual(cli.spec);
    expect(patched.spec.initContainers[0]).toMatchObject({ name: 'remora-proxy', image: SLIM_IMAGE });
  });

  it('drains and exits 0 on SIGTERM (terminationGracePeriodSeconds 15)', async () => {
    expect(pod.plan.terminationGracePeriodSeconds).toBe(15);
    const codes = await pod.terminate();
    expect(codes.injector).toBe(0);
  });
});
