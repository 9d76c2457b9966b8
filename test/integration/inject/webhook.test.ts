// The admission webhook over real HTTPS on 127.0.0.1:0, with a self-signed certificate made by openssl.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInjectorServer } from '../../../src/inject/webhook.js';
import { injectObject } from '../../../src/inject/inject.js';
import { applyPatch, type JsonPatchOp } from '../../../src/inject/json-patch.js';
import { selfSignedCert } from '../../support/tls.js';

const dir = mkdtempSync(join(tmpdir(), 'remora-webhook-'));
let cert: Buffer;
let key: Buffer;
let port = 0;
const reviews: string[] = [];
const injectOpts = { image: 'registry.test/remora:1', configMap: 'remora-config' };
const server = (() => {
  const tls = selfSignedCert(dir, 'injector', { cn: 'remora-injector', subjectAltName: 'IP:127.0.0.1,DNS:localhost' });
  ({ cert, key } = tls);
  return createInjectorServer({
    cert,
    key,
    inject: injectOpts,
    maxBodyBytes: 64 * 1024,
    onReview: (r) => reviews.push(`${r.pod}:${r.result}`),
  });
})();

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function call(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; text: string; json?: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, ca: cert, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const fixturePod = (): Record<string, any> => {
  const text = readFileSync(new URL('../../fixtures/inject/deployment.yaml', import.meta.url), 'utf8');
  const dep = parseAllDocuments(text).map((d) => d.toJS()).find((d) => d.kind === 'Deployment');
  return { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'reviews-v1-abc-', ...dep.spec.template.metadata }, spec: dep.spec.template.spec };
};

function admissionReview(request: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request });
}

describe('remora injector over HTTPS', () => {
  it('answers a Pod CREATE with a JSONPatch that yields injectObject’s result', async () => {
    const pod = fixturePod();
    const res = await call('POST', '/inject', admissionReview({ uid: 'u-1', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'demo', object: pod }));
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u-1', allowed: true, patchType: 'JSONPatch' } });
    const patch = JSON.parse(Buffer.from(res.json.response.patch, 'base64').toString('utf8')) as JsonPatchOp[];
    expect(patch.length).toBeGreaterThan(0);
    expect(patch.every((op) => op.path.startsWith('/metadata/') || op.path.startsWith('/spec/'))).toBe(true);
    expect(patch.some((op) => op.path === '/metadata/annotations' || op.path.includes('remora.io~1status'))).toBe(true);
    expect(applyPatch(pod, patch)).toEqual(injectObject(pod, injectOpts).object);
    expect(reviews).toContain('demo/reviews-v1-abc-*:injected');
  });

  it('serves /mutate too and answers a pod without kind on the object', async () => {
    const pod = fixturePod();
    delete pod.kind;
    delete pod.apiVersion;
    const res = await call('POST', '/mutate', admissionReview({ uid: 'u-2', kind: { kind: 'Pod' }, operation: 'CREATE', object: pod }));
    expect(res.json.response).toMatchObject({ uid: 'u-2', allowed: true, patchType: 'JSONPatch' });
    const patched = applyPatch(pod, JSON.parse(Buffer.from(res.json.response.patch, 'base64').toString('utf8'))) as Record<string, any>;
    expect(patched.kind).toBeUndefined();
    expect(patched.spec.initContainers[0].name).toBe('remora-proxy');
  });

  it('passes opted-out and already-injected pods without a patch', async () => {
    const pod = fixturePod();
    pod.metadata.annotations = { 'sidecar.istio.io/inject': 'false' };
    const res = await call('POST', '/inject', admissionReview({ uid: 'u-3', kind: { kind: 'Pod' }, operation: 'CREATE', object: pod }));
    expect(res.json.response).toEqual({ uid: 'u-3', allowed: true });
    const injected = injectObject(fixturePod(), injectOpts).object;
    const res2 = await call('POST', '/inject', admissionReview({ uid: 'u-4', kind: { kind: 'Pod' }, operation: 'CREATE', object: injected }));
    expect(res2.json.response).toEqual({ uid: 'u-4', allowed: true });
  });

  it('allows non-pod kinds and non-CREATE operations unchanged', async () => {
    const dep = await call('POST', '/inject', admissionReview({ uid: 'u-5', kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, operation: 'CREATE', object: { kind: 'Deployment' } }));
    expect(dep.status).toBe(200);
    expect(dep.json.response.uid).toBe('u-5');
    expect(dep.json.response.allowed).toBe(true);
    expect(dep.json.response.patch).toBeUndefined();
    expect(dep.json.response.warnings[0]).toMatch(/only Pods/);
    const upd = await call('POST', '/inject', admissionReview({ uid: 'u-6', kind: { kind: 'Pod' }, operation: 'UPDATE', object: fixturePod() }));
    expect(upd.json.response).toEqual({ uid: 'u-6', allowed: true });
  });

  it('denies a pod whose capture annotation is malformed when iptables injection is on', async () => {
    const strict = createInjectorServer({ cert, key, inject: { ...injectOpts, iptables: true } });
    await new Promise<void>((resolve) => strict.listen(0, '127.0.0.1', resolve));
    const saved = port;
    port = (strict.address() as AddressInfo).port;
    try {
      const pod = fixturePod();
      pod.metadata.annotations = { 'traffic.sidecar.istio.io/excludeOutboundPorts': 'db' };
      const res = await call('POST', '/inject', admissionReview({ uid: 'u-7', kind: { kind: 'Pod' }, operation: 'CREATE', object: pod }));
      expect(res.json.response).toMatchObject({ uid: 'u-7', allowed: false, status: { code: 400 } });
      expect(res.json.response.status.message).toMatch(/excludeOutboundPorts: "db" is not a port/);
    } finally {
      port = saved;
      strict.closeAllConnections();
      await new Promise<void>((resolve) => strict.close(() => resolve()));
    }
  });

  it('answers malformed bodies with 400 and keeps serving', async () => {
    const cases: Array<[string, string]> = [
      ['not json', '{"apiVersion": "admission.k8s.io/v1", '],
      ['json but not a review', '[1,2,3]'],
      ['wrong kind', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'Pod' })],
      ['wrong apiVersion', JSON.stringify({ apiVersion: 'admission.k8s.io/v2', kind: 'AdmissionReview', request: { uid: 'x' } })],
      ['missing request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' })],
      ['missing uid', admissionReview({ kind: { kind: 'Pod' }, operation: 'CREATE', object: fixturePod() })],
      ['empty body', ''],
    ];
    for (const [what, body] of cases) {
      const res = await call('POST', '/inject', body);
      expect(res.status, what).toBe(400);
    }
    const ok = await call('GET', '/healthz');
    expect(ok).toMatchObject({ status: 200, text: 'ok\n' });
  });

  it('answers a review with no object with allowed and a warning', async () => {
    const res = await call('POST', '/inject', admissionReview({ uid: 'u-8', kind: { kind: 'Pod' }, operation: 'CREATE' }));
    expect(res.status).toBe(200);
    expect(res.json.response).toMatchObject({ uid: 'u-8', allowed: true });
    expect(res.json.response.warnings).toHaveLength(1);
  });

  it('refuses oversized bodies with 413, by declared length and by streamed size', async () => {
    const big = Buffer.alloc(100 * 1024, 'a');
    const declared = await call('POST', '/inject', big);
    expect(declared.status).toBe(413);
    const streamed = await call('POST', '/inject', big, { 'transfer-encoding': 'chunked' });
    expect(streamed.status).toBe(413);
    expect((await call('GET', '/healthz')).status).toBe(200);
  });

  it('answers 404 for other paths and 405 for GET /inject', async () => {
    expect((await call('GET', '/nope')).status).toBe(404);
    expect((await call('GET', '/inject')).status).toBe(405);
  });
});
