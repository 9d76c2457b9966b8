/**
 * The store's incremental path (files parsed again only when their text changed, validation kept across builds and
 * fed only what changed) gives, after every step of a random sequence of 1,000 edits — files rewritten, created,
 * deleted, and API-server objects added, changed and removed — exactly what a store building the same inputs from
 * nothing gives: the same acceptance, the same rejection messages, and a snapshot equal through a canonical
 * serialization (routes forced). A rejected edit leaves the last accepted snapshot serving.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, unlinkSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigStore, type StoreOptions } from '../../../src/discovery/config-store.js';
import { parseDocuments } from '../../../src/config/parse.js';
import type { Resource } from '../../../src/config/resource.js';
import { dump } from 'js-yaml';
import { Gen, docText, fileText } from '../../support/random-mesh.js';
import { canonSnapshot } from '../../support/snapshot-canon.js';
import { mulberry32 } from '../../../src/bench/schedule.js';
import type { ServiceDef } from '../../../src/model.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

function storeOpts(dir: string): StoreOptions {
  return { paths: [dir], namespace: 'default', clusterDomain: 'cluster.local', labels: { app: 'a' }, outboundTrafficPolicy: 'ALLOW_ANY', log: () => {} };
}

/** An object as the Kubernetes source hands it: a new object on every event, its resourceVersion telling what changed. */
function fromApi(text: string, rv: string): Resource | undefined {
  const [r] = parseDocuments(text, 'api.yaml').resources;
  if (r === undefined) return undefined;
  return { ...r, metadata: { ...r.metadata, resourceVersion: rv }, source: { file: 'kubernetes', line: 0 }, lineOf: () => 0 };
}

/**
 * Files f0…f5 of random documents, f6 and f7 coming and going, and VirtualService-only files v0, v1 (the edit a
 * compile from the previous snapshot handles). `plain`: no Sidecar and no Gateway API route in the mix (either makes
 * every build a full compile), so that path is exercised too.
 */
/**
 * A file of registry objects edited in place, as endpoints churn: ServiceEntries whose endpoints move, DestinationRules
 * whose subsets or policies change (or that come and go), a Kubernetes Service whose EndpointSlice changes, and a
 * VirtualService in another namespace routing and mirroring to them. Its hosts are among the random documents' hosts.
 */
interface RegistryState { seIp: number[]; drVariant: number[]; drOn: boolean[]; slice: number[] }

function registryText(st: RegistryState): string {
  const ses = [['x.example.com'], ['a'], ['z.example.com', 'b']].map((hosts, i) => ({
    apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: `r-se${i}`, namespace: 'default' },
    spec: { hosts, ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', location: 'MESH_INTERNAL',
      ...(i === 2 ? { addresses: ['240.0.1.1'] } : {}),
      endpoints: [{ address: `10.2.${i}.${st.seIp[i]}`, labels: { version: 'v1' } }, { address: `10.2.${i}.100`, labels: { version: st.seIp[i]! % 2 === 0 ? 'v2' : 'v1' } }] },
  }));
  const drs = ['x.example.com', 'a', 'web.default.svc.cluster.local'].map((host, i) => {
    const v = st.drVariant[i]!;
    return {
      apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: `r-dr${i}`, namespace: 'default' },
      spec: { host, subsets: [{ name: 'v1', labels: { version: v % 2 === 0 ? 'v1' : 'v2' } }, ...(v % 3 === 0 ? [] : [{ name: 'v2', labels: { version: 'v2' } }])],
        ...(v % 4 === 1 ? { trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } } : v % 4 === 2 ? { trafficPolicy: { connectionPool: { http: { http1MaxPendingRequests: v } } } } : {}) },
    };
  }).filter((_, i) => st.drOn[i]);
  const k8s = [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: { clusterIP: '10.96.1.1', ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } },
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'web-r', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4',
      endpoints: st.slice.map((i) => ({ addresses: [`10.3.0.${i}`], conditions: { ready: i % 3 !== 0 } })), ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] },
  ];
  const front = {
    apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r-front', namespace: 'prod' },
    spec: { hosts: ['front.example.com'], http: [{ route: [{ destination: { host: 'x.example.com', subset: 'v1' }, weight: 50 }, { destination: { host: 'web.default.svc.cluster.local' }, weight: 50 }], mirror: { host: 'a.default.svc.cluster.local' } }] },
  };
  return fileText([...ses, ...drs, ...k8s, front].map((d) => dump(d)));
}

/** Registry entries of another source (the API watch, the environment): replaced one at a time, the others kept. */
function externalService(i: number, ip: number): ServiceDef {
  const hosts = ['api.prod.svc.cluster.local', 'web.prod.svc.cluster.local', 'c.default.svc.cluster.local'];
  return { hostname: hosts[i]!, namespace: i === 2 ? 'default' : 'prod', ports: [{ number: 80, name: 'http', protocol: 'http' }], resolution: 'STATIC',
    workloads: [{ address: `10.4.${i}.${ip}`, ports: {}, labels: { version: ip % 2 === 0 ? 'v1' : 'v2' }, weight: 1 }], addresses: i === 0 ? ['10.96.2.1'] : [], location: 'MESH_INTERNAL', origin: `Service/${i === 2 ? 'default' : 'prod'}/e${i}` };
}

async function randomEdits(seed: number, plain: boolean, steps: number): Promise<{ store: ConfigStore; accepted: number; rejected: number; touched: number }> {
    const dir = mkdtempSync(join(tmpdir(), 'remora-incr-'));
    dirs.push(dir);
    const g = new Gen(mulberry32(seed));
    const FILES = 6;
    const anyDoc = (): Record<string, unknown> => {
      for (;;) {
        const d = g.doc();
        if (!plain || (d.kind !== 'Sidecar' && !String(d.apiVersion ?? '').startsWith('gateway.networking.k8s.io'))) return d;
      }
    };
    const fileDocs = (): string => fileText(Array.from({ length: 1 + g.int(5) }, () => docText(anyDoc(), g.rand)));
    const vsDocs = (): string => fileText(Array.from({ length: 1 + g.int(3) }, () => docText(g.chance(0.05) ? g.spoil(g.virtualService()) : g.virtualService(), g.rand)));
    const incr = new ConfigStore(storeOpts(dir));
    // A first configuration that is accepted (a rejected change is reverted below, so the files on disk are always
    // the store's inputs).
    let reg: RegistryState = { seIp: [1, 1, 1], drVariant: [0, 0, 0], drOn: [true, true, true], slice: [1, 2] };
    const regFile = join(dir, 'r.yaml');
    if (plain) writeFileSync(regFile, registryText(reg));
    let ext = [externalService(0, 1), externalService(1, 1), externalService(2, 1)];
    do for (let f = 0; f < FILES; f++) writeFileSync(join(dir, `f${f}.yaml`), fileDocs());
    while (!(await incr.reloadFiles(true)));
    // The API objects: texts by key with their version; each event hands the whole list again, as new objects.
    const api = new Map<string, { text: string; rv: number }>();
    let rvSeq = 0;
    let apiOn = false;
    let extOn = false;
    const apiList = (): Resource[] => [...api.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, v]) => fromApi(v.text, String(v.rv))).filter((r): r is Resource => r !== undefined);
    let lastGood: string | undefined = canonSnapshot(incr.current!);
    let lastHash = incr.current!.hash;
    let lastHashed = lastGood;
    let accepted = 0;
    let touched = 0;
    let rejected = 0;
    for (let step = 0; step < steps; step++) {
      const op = g.int(10);
      let ok: boolean;
      let revert: () => void;
      if (plain && g.chance(0.4)) {
        // The registry file edited in place, or one external registry entry replaced.
        const kind = g.int(5);
        if (kind === 4) {
          const before = ext;
          revert = () => { ext = before; };
          const i = g.int(3);
          ext = ext.map((s, j) => (j === i ? externalService(i, 1 + g.int(6)) : s));
          extOn = true;
          ok = incr.setExternal('registry', { resources: [], services: ext });
        } else {
          const before = reg;
          revert = () => { reg = before; writeFileSync(regFile, registryText(reg)); };
          const i = g.int(3);
          const set = <T,>(xs: T[], v: T): T[] => xs.map((x, j) => (j === i ? v : x));
          if (kind === 0) reg = { ...reg, seIp: set(reg.seIp, 1 + g.int(8)) };
          else if (kind === 1) reg = { ...reg, drVariant: set(reg.drVariant, g.int(12)) };
          else if (kind === 2) reg = { ...reg, drOn: set(reg.drOn, !reg.drOn[i]) };
          else reg = { ...reg, slice: g.some([1, 2, 3, 4, 5, 6], 3, 1) };
          writeFileSync(regFile, registryText(reg));
          ok = await incr.reloadFiles();
        }
      } else if (op < 7) {
        const vsOnly = g.chance(plain ? 0.8 : 0.5);
        const f = join(dir, vsOnly ? `v${g.int(2)}.yaml` : `f${g.int(FILES + 2)}.yaml`);
        const before = existsSync(f) ? readFileSync(f, 'utf8') : undefined;
        revert = () => { if (before === undefined) unlinkSync(f); else writeFileSync(f, before); };
        if (g.chance(0.15) && before !== undefined) unlinkSync(f); else writeFileSync(f, vsOnly ? vsDocs() : fileDocs());
        ok = await incr.reloadFiles();
      } else {
        const before = new Map(api);
        revert = () => { api.clear(); for (const [k, v] of before) api.set(k, v); };
        const keys = [...api.keys()];
        const k = op === 9 && keys.length > 0 ? g.pick(keys) : `k${g.int(6)}`;
        if (op === 9 && keys.length > 0 && g.chance(0.5)) api.delete(k);
        else api.set(k, { text: docText(g.chance(0.5) ? g.virtualService() : g.destinationRule(), g.rand), rv: ++rvSeq });
        apiOn = true;
        ok = incr.setExternal('kubernetes', { resources: apiList(), services: [] });
      }
      touched += incr.validation.lastTouched;
      // The reference: the same inputs, built from nothing (parse, validate, compile).
      const ref = new ConfigStore(storeOpts(dir));
      ref.incremental = false;
      if (apiOn) ref.seedExternal('kubernetes', { resources: apiList(), services: [] });
      if (extOn) ref.seedExternal('registry', { resources: [], services: ext });
      const refOk = await ref.reloadFiles(true);
      expect(ok, `step ${step}`).toBe(refOk);
      if (refOk) {
        accepted++;
        lastGood = canonSnapshot(ref.current!);
        expect(firstDifference(canonSnapshot(incr.current!), lastGood), `step ${step}`).toBe('');
        // The hash is of the inputs: the same on both paths, and new when an input changed.
        expect(incr.current!.hash, `step ${step}`).toBe(ref.current!.hash);
        if (incr.current!.hash === lastHash) expect(lastGood, `step ${step}: same hash, same snapshot`).toBe(lastHashed);
        lastHash = incr.current!.hash;
        lastHashed = lastGood;
      } else {
        rejected++;
        expect(incr.lastError?.errors, `step ${step}`).toEqual(ref.lastError?.errors);
        // The last good config keeps serving.
        expect(firstDifference(canonSnapshot(incr.current!), lastGood), `step ${step}`).toBe('');
        // The change is taken back (the store kept the previous inputs; now the disk and API say so too).
        revert();
      }
      ref.stop();
    }
    incr.stop();
    return { store: incr, accepted, rejected, touched };
}

describe('ConfigStore incremental builds', () => {
  for (const plain of [false, true]) {
    it(`equal a build from nothing after each of ${plain ? '2,000 random edits (no Sidecar, no Gateway API routes)' : '1,000 random edits'}`, async () => {
      const { store, accepted, rejected, touched } = await randomEdits(plain ? 27 : 26, plain, plain ? 2000 : 1000);
      console.log(`accepted ${accepted}, rejected ${rejected}, compiles ${JSON.stringify(store.compiles)}`);
      // The incremental path was the one taken (never restarted from nothing), and it looked at few resources per step.
      expect(store.validation.rebuilds).toBe(0);
      expect(touched / (plain ? 2000 : 1000)).toBeLessThan(20);
      // Both outcomes were exercised, and (without Sidecars and routes) compiles from the previous snapshot.
      expect(accepted).toBeGreaterThan(50);
      expect(rejected).toBeGreaterThan(50);
      if (plain) {
        expect(store.compiles.delta).toBeGreaterThan(120);
        // Each kind of change went through the delta (after each, the snapshot equalled a full build, routes forced).
        for (const k of ['VirtualService', 'DestinationRule', 'ServiceEntry', 'file-k8s', 'external'] as const) expect(store.compiles.byKind[k] ?? 0, k).toBeGreaterThan(20);
      }
    }, 300_000);
  }
});

/** '' when equal, else the two texts around their first difference (a whole snapshot is too long to read). */
function firstDifference(a: string, b: string): string {
  if (a === b) return '';
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return `at ${i}:\n  got  ${a.slice(Math.max(0, i - 300), i + 200)}\n  want ${b.slice(Math.max(0, i - 300), i + 200)}`;
}
