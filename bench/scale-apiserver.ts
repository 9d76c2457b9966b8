// The fake API server of the Kubernetes scale measurements in a process of its own (on the generator's CPU), driven
// over IPC by bench/scale-watch.ts: seed a cluster, apply probe events (acknowledged once written to the watches),
// churn (random endpoint readiness flips at a rate), drop or compact watches, and report what it sent.
import { FakeKubeApiServer } from '../test/support/fake-kube-apiserver.js';
import { churnSlice, clusterObjs, probeSlice, type ClusterShape } from './scale-k8s.js';
import { mulberry32 } from '../src/bench/schedule.js';

type Msg =
  | { id: number; cmd: 'seed'; shape: ClusterShape; extra?: Array<Record<string, unknown>> }
  | { id: number; cmd: 'apply'; objs: Array<Record<string, unknown>> }
  | { id: number; cmd: 'probe'; service: number; b: number }
  | { id: number; cmd: 'churn'; rate: number; seconds: number; exclude: number[]; seed: number }
  | { id: number; cmd: 'stats' }
  | { id: number; cmd: 'resetStats' }
  | { id: number; cmd: 'drop' }
  | { id: number; cmd: 'compact' };

const api = await new FakeKubeApiServer().start();
api.logRequests = false;
let shape: ClusterShape | undefined;

const reply = (id: number, body: unknown): void => void process.send!({ id, ...(body as object) });

process.on('message', (m: Msg) => {
  switch (m.cmd) {
    case 'seed': {
      shape = m.shape;
      const t0 = performance.now();
      api.applyAll(clusterObjs(m.shape) as Iterable<never>);
      if (m.extra) api.applyAll(m.extra as never[]);
      reply(m.id, { ms: performance.now() - t0, rv: api.resourceVersion });
      break;
    }
    case 'apply':
      api.applyAll(m.objs as never[]);
      reply(m.id, { rv: api.resourceVersion });
      break;
    case 'probe':
      api.apply(probeSlice(m.service, shape!, m.b) as never);
      reply(m.id, { at: Date.now() });
      break;
    case 'churn': {
      // m.rate events per second for m.seconds, over the services not excluded (the probe ones), each a readiness flip.
      const rand = mulberry32(m.seed);
      const excluded = new Set(m.exclude);
      const flipped = new Map<number, number>();
      const total = Math.round(m.rate * m.seconds);
      const started = performance.now();
      let sent = 0;
      const tick = setInterval(() => {
        const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * m.rate));
        while (sent < due) {
          let i: number;
          do i = Math.floor(rand() * shape!.services); while (excluded.has(i));
          const down = flipped.get(i);
          if (down === undefined) {
            const k = Math.floor(rand() * shape!.endpointsPerService);
            flipped.set(i, k);
            api.apply(churnSlice(i, shape!, k, false) as never);
          } else {
            flipped.delete(i);
            api.apply(churnSlice(i, shape!, down, true) as never);
          }
          sent++;
        }
        if (sent >= total) {
          clearInterval(tick);
          reply(m.id, { sent, ms: performance.now() - started });
        }
      }, 5);
      break;
    }
    case 'stats':
      reply(m.id, { stats: { ...api.stats }, openWatches: api.openWatches, watches: api.watchTraffic(), rv: api.resourceVersion });
      break;
    case 'resetStats':
      api.resetStats();
      reply(m.id, {});
      break;
    case 'drop':
      reply(m.id, { dropped: api.dropWatches() });
      break;
    case 'compact':
      api.compactHistory();
      reply(m.id, {});
      break;
  }
});
process.stdout.write(`scale-apiserver ready ${JSON.stringify({ url: api.url, pid: process.pid })}\n`);
process.on('disconnect', () => process.exit(0));
