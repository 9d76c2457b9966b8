/**
 * The rollout's Kubernetes target through client-node against the fake API server: reads the VirtualService,
 * writes weights and state with server-side apply (field manager remora-rollout, force, resourceVersion as
 * precondition → 409 on a stale read), and abort/promote requests with a JSON merge patch. Watchers see MODIFIED.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KubeConfig, KubernetesObjectApi } from '@kubernetes/client-node';
import { FakeKubeApiServer, writeKubeconfig } from '../../support/fake-kube-apiserver.js';
import { ConflictError, KubeTarget, type KubeObjectApi } from '../../../src/rollout/target.js';
import { ANNOTATION, COMMAND_ANNOTATION, type RolloutState } from '../../../src/rollout/state.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { while (cleanups.length > 0) await cleanups.pop()!(); });

const VS = {
  apiVersion: 'networking.istio.io/v1', kind: 'VirtualService',
  metadata: { name: 'reviews', namespace: 'default', labels: { team: 'a' } },
  spec: { hosts: ['reviews'], gateways: ['mesh'], http: [{ name: 'main', timeout: '3s', route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] },
};

async function setup(): Promise<{ api: FakeKubeApiServer; target: KubeTarget }> {
  const api = await new FakeKubeApiServer().start();
  cleanups.push(() => api.close());
  const kc = writeKubeconfig(api.url);
  cleanups.push(kc.cleanup);
  api.apply(VS);
  const config = new KubeConfig();
  config.loadFromFile(kc.path);
  return { api, target: new KubeTarget(KubernetesObjectApi.makeApiClient(config) as unknown as KubeObjectApi, 'reviews', 'default') };
}

const STATE = { version: 1, phase: 'Progressing', steps: [], stable: 'v1', canary: 'v2' } as unknown as RolloutState;

describe('KubeTarget against the fake API server', () => {
  it('server-side apply of spec.http and the state annotation; other fields stay; a stale resourceVersion is a conflict', async () => {
    const { api, target } = await setup();
    const l = await target.read();
    const stale = await target.read();
    expect(l.state).toBeUndefined();
    const readVersion = l.version;
    expect(readVersion).toBe(String(api.resourceVersion));
    l.editor.setWeights('v1', 'v2', 10);
    await target.write(l, STATE);
    const patches = api.requests.filter((r) => r.method === 'PATCH');
    expect(patches).toHaveLength(1);
    expect(patches[0]).toMatchObject({ path: '/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews', status: 200, contentType: 'application/apply-patch+yaml' });
    expect(patches[0]!.query).toMatchObject({ fieldManager: 'remora-rollout', force: 'true' });
    const sent = JSON.parse(patches[0]!.body!) as Record<string, any>;
    expect(Object.keys(sent.spec)).toEqual(['http']);
    expect(sent.metadata.resourceVersion).toBe(readVersion);
    expect(l.version).toBe(String(api.resourceVersion));

    const now = await target.read();
    expect(now.state).toEqual(STATE);
    const obj = now.editor.toObject() as typeof VS;
    expect(obj.metadata.labels).toEqual({ team: 'a' });
    expect(obj.spec.gateways).toEqual(['mesh']);
    expect(obj.spec.http).toEqual([{ name: 'main', timeout: '3s', route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 90 }, { destination: { host: 'reviews', subset: 'v2' }, weight: 10 }] }]);

    // A read from before the write is stale now: its write is refused.
    await expect(target.write(stale, STATE)).rejects.toBeInstanceOf(ConflictError);
    expect(api.requests.filter((r) => r.method === 'PATCH').at(-1)!.status).toBe(409);
  });

  it('commands go in their own annotation by merge patch, and are removed with null', async () => {
    const { api, target } = await setup();
    await target.writeCommand({ action: 'abort', at: 'now', by: 'ops' });
    expect(await target.readCommand()).toEqual({ action: 'abort', at: 'now', by: 'ops' });
    const p = api.requests.filter((r) => r.method === 'PATCH').at(-1)!;
    expect(p.contentType).toBe('application/merge-patch+json');
    expect(JSON.parse(p.body!)).toEqual({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'default', annotations: { [COMMAND_ANNOTATION]: JSON.stringify({ action: 'abort', at: 'now', by: 'ops' }) } } });
    await target.writeCommand(undefined);
    expect(await target.readCommand()).toBeUndefined();
    const l = await target.read();
    expect(l.editor.annotation(COMMAND_ANNOTATION)).toBeUndefined();
    expect(l.editor.annotation(ANNOTATION)).toBeUndefined();
  });
});
