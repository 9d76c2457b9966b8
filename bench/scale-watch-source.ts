// The Kubernetes source alone, in this process, against the fake API server (same process) holding the scale-watch
// cluster (bench/scale-k8s.ts; 10,000 Services by default): start() time, then probe moves (one service's slice to
// another address, 30 ms apart) timed from the API server's write to the source's current() showing it. No store,
// no compile, no proxy: what the source adds to event → serving. `--baseline DIR` runs a built checkout's source too
// (DIR/build/src/discovery/k8s-source.js, as `npx tsc -p tsconfig.bench.json` leaves it).
// Usage: node build/bench/scale-watch-source.js [--services 10000] [--probes 20] [--baseline DIR]
import { parseArgs } from 'node:util';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeKubeApiServer, writeKubeconfig } from '../test/support/fake-kube-apiserver.js';
import { clusterObjs, probeIp, probeSlice, svcName, type ClusterShape } from './scale-k8s.js';

const { values: argv } = parseArgs({ options: { services: { type: 'string' }, probes: { type: 'string' }, baseline: { type: 'string' } } });
const shape: ClusterShape = { services: Number(argv.services ?? 10_000), endpointsPerService: 5, targetPort: 8080 };
const PROBES = Number(argv.probes ?? 20);
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

interface Source {
  start(): Promise<void>;
  stop(): void;
  current(): { services: Array<{ hostname: string; workloads: Array<{ address: string }> }> };
  on(ev: 'change', f: () => void): unknown;
  off(ev: 'change', f: () => void): unknown;
}
type SourceClass = new (o: { kubeconfig: string; clusterDomain: string }) => Source;

const api = await new FakeKubeApiServer({}).start();
api.logRequests = false;
api.applyAll([...clusterObjs(shape)] as Parameters<FakeKubeApiServer['applyAll']>[0]);
const kc = writeKubeconfig(api.url);
const builds: Array<[string, string]> = [['now', repo], ...(argv.baseline ? [['base', resolve(argv.baseline)] as [string, string]] : [])];
for (const [label, dir] of builds) {
  const { KubernetesSource } = (await import(`${dir}/build/src/discovery/k8s-source.js`)) as { KubernetesSource: SourceClass };
  const src = new KubernetesSource({ kubeconfig: kc.path, clusterDomain: 'cluster.local' });
  const t0 = performance.now();
  await src.start();
  const startMs = performance.now() - t0;
  const lat: number[] = [];
  for (let k = 0; k < PROBES; k++) {
    const i = Math.floor((k * shape.services) / PROBES);
    const host = `${svcName(i)}.`;
    const want = probeIp(i, (k + (label === 'now' ? 0 : 1)) % 2);
    const t = performance.now();
    api.apply(probeSlice(i, shape, (k + (label === 'now' ? 0 : 1)) % 2) as Parameters<FakeKubeApiServer['apply']>[0]);
    await new Promise<void>((res) => {
      const h = (): void => {
        const s = src.current().services.find((x) => x.hostname.startsWith(host));
        if (s?.workloads[0]?.address === want) {
          src.off('change', h);
          res();
        }
      };
      src.on('change', h);
    });
    lat.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 30));
  }
  const sorted = lat.slice().sort((a, b) => a - b);
  process.stdout.write(`${label}: start ${startMs.toFixed(0)} ms; event → current() over ${PROBES} probe moves: min ${sorted[0]!.toFixed(1)}, p50 ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)}, max ${sorted.at(-1)!.toFixed(1)} ms\n`);
  src.stop();
}
await api.close();
kc.cleanup();
