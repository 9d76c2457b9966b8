// deploy/ as `kubectl apply` (strict field validation) would take it: no unknown or misspelt field in any built-in
// object, nor in what `remora inject` adds to the sample workloads; and every image pinned to a version, Remora's to
// the one `remora inject` and the injector put in pods. (Schemas and types: deploy-manifests.test.ts.)
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { defaultImage } from '../../src/inject/image.js';
import { injectObject } from '../../src/inject/inject.js';
import { hasModel, unknownFields } from '../support/k8s-strict.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const docs = walk(join(root, 'deploy'))
  .filter((f) => /\.ya?ml$/.test(f) && !/kustomization\.ya?ml$/.test(f))
  .flatMap((file) => parseAllDocuments(readFileSync(file, 'utf8')).map((d, i) => ({ where: `${relative(root, file)}#${i}`, obj: d.toJS() as Record<string, any> })));

/** Every container of a workload or pod template, init containers included. */
function containers(obj: Record<string, any>): Array<Record<string, any>> {
  const spec = obj.kind === 'Pod' ? obj.spec : obj.spec?.template?.spec;
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
}

describe('deploy/ under strict field validation', () => {
  it('finds a misspelt field (so an empty result below means something)', () => {
    const dep = structuredClone(docs.find((d) => d.obj.kind === 'Deployment')!.obj);
    dep.spec.replica = 2;
    dep.spec.template.spec.containers[0].imagePullPolcy = 'Always';
    expect(unknownFields(dep as { apiVersion: string; kind: string }).sort()).toEqual([
      'spec.replica: unknown field (V1DeploymentSpec)',
      'spec.template.spec.containers[0].imagePullPolcy: unknown field (V1Container)',
    ]);
  });

  for (const d of docs.filter((x) => hasModel(x.obj.apiVersion, x.obj.kind))) {
    it(`${d.where} ${d.obj.kind}/${d.obj.metadata?.name} has no unknown field`, () => {
      expect(unknownFields(d.obj as { apiVersion: string; kind: string })).toEqual([]);
    });
  }

  it('what remora inject adds to the sample workloads has no unknown field, in every injection mode', () => {
    const workloads = docs.filter((d) => d.obj.metadata?.namespace === 'remora-demo' && d.obj.kind === 'Deployment');
    expect(workloads.length).toBeGreaterThan(0);
    for (const d of workloads) {
      for (const opts of [{}, { iptables: true }, { nativeSidecar: false, iptables: true }, { certs: 'secret' as const }, { certs: 'csi' as const, kubernetes: true }]) {
        const r = injectObject(d.obj, { image: defaultImage(), ...opts });
        expect(r.changed).toBe(true);
        expect(unknownFields(r.object as { apiVersion: string; kind: string }), `${d.where} ${JSON.stringify(opts)}`).toEqual([]);
      }
    }
  });
});

describe('deploy/ images', () => {
  const images = docs.flatMap((d) => containers(d.obj).flatMap((c) => {
    // The injector's own image, and the one it injects (--image=…).
    const injected = (c.args ?? []).filter((a: string) => a.startsWith('--image=')).map((a: string) => a.slice('--image='.length));
    return [c.image as string, ...injected].map((image) => ({ where: `${d.where} ${c.name}`, image }));
  }));

  it('are all pinned to a version tag (no latest, no bare name)', () => {
    expect(images.length).toBeGreaterThan(0);
    for (const { where, image } of images) {
      const tag = /:([^/:@]+)$/.exec(image)?.[1];
      expect(tag, `${where}: ${image}`).toMatch(/^v?\d+\.\d+\.\d+([-.][\w.]+)?$/);
    }
  });

  it("Remora's are the image remora inject and the injector use by default (this package's version)", () => {
    const remora = images.filter((i) => i.image.startsWith('ghcr.io/remora-mesh/remora:'));
    expect(remora.map((i) => i.where).sort()).toEqual(['deploy/injector/deployment.yaml#0 injector', 'deploy/injector/deployment.yaml#0 injector']);
    for (const { image } of remora) expect(image).toBe(defaultImage());
  });
});
