/**
 * `remora demo` (`npm start`): two versions of a small "reviews" app, Remora between them with an
 * 80/20 VirtualService and a header rule (end-user: jason → v2), and a traffic driver printing the
 * live split and latency every second until Ctrl-C. The config lives in a temp directory and is
 * hot-reloaded: edit the weights there and watch the split move.
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { Sidecar } from '../app.js';
import { runOptionsFrom } from './run.js';
import { parseWithEnv } from './options.js';

function app(version: string): Server {
  return createServer((req, res) => {
    const body = JSON.stringify({ service: 'reviews', version, path: req.url, user: req.headers['end-user'] ?? null, requestId: req.headers['x-request-id'] });
    res.writeHead(200, { 'content-type': 'application/json', 'x-version': version });
    res.end(body);
  });
}

async function listen(s: Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

export function demoConfig(v1Port: number, v2Port: number, weights: [number, number] = [80, 20]): string {
  return `# Remora demo: edit the weights below while \`npm start\` runs; the change applies within a second.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: ${v1Port}}, labels: {app: reviews, version: v1}}
  - {address: 127.0.0.1, ports: {http: ${v2Port}}, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews]
  http:
  - name: jason-to-v2
    match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
  - name: canary
    route:
    - destination: {host: reviews, subset: v1}
      weight: ${weights[0]}
    - destination: {host: reviews, subset: v2}
      weight: ${weights[1]}
`;
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseWithEnv(argv, {
    duration: { type: 'string' },
    rate: { type: 'string' },
    port: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write('usage: remora demo [--rate 200] [--duration SECONDS] [--port 15001]\n');
    return 0;
  }
  const rate = Number(values.rate ?? 200);
  const durationS = values.duration !== undefined ? Number(values.duration) : Infinity;
  const v1 = app('v1');
  const v2 = app('v2');
  const [p1, p2] = [await listen(v1), await listen(v2)];
  const dir = mkdtempSync(join(tmpdir(), 'remora-demo-'));
  const cfg = join(dir, 'reviews.yaml');
  writeFileSync(cfg, demoConfig(p1, p2));
  const opts = runOptionsFrom(['--config', dir, '--outbound-port', String(values.port ?? 0), '--admin-port', '0', '--stats-port', '0', '--health-port', '0', '--inbound-port', '0', '--labels', 'app=productpage,version=v1', '--log-level', 'warn'], {});
  if (opts === 'help') return 0;
  const sidecar = new Sidecar(opts);
  await sidecar.start();
  const port = sidecar.port('outbound');
  const out = process.stdout;
  out.write(`Remora demo\n`);
  out.write(`  app reviews v1 on 127.0.0.1:${p1}, v2 on 127.0.0.1:${p2}\n`);
  out.write(`  Remora outbound on 127.0.0.1:${port}, admin on http://127.0.0.1:${sidecar.port('admin')}/ (try /clusters, /config_dump, /stats/prometheus)\n`);
  out.write(`  config (hot-reloaded; edit the weights): ${cfg}\n`);
  out.write(`  try: curl -H 'Host: reviews:9080' http://127.0.0.1:${port}/reviews/1\n`);
  out.write(`       node dist/cli.js explain --config ${dir} 'GET http://reviews:9080/ -H end-user:jason'\n`);
  out.write(`  sending ${rate} req/s (every 10th as end-user: jason), Ctrl-C to stop\n\n`);

  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 16 });
  let window = { n: 0, v1: 0, v2: 0, other: 0, jason: 0, jasonV2: 0, lat: [] as number[] };
  let total = 0;
  let seq = 0;
  const started = Date.now();
  const shoot = async (): Promise<void> => {
    const jason = seq++ % 10 === 9;
    const t0 = performance.now();
    try {
      const r = await pool.request({ path: '/reviews/1', method: 'GET', headers: jason ? { host: 'reviews:9080', 'end-user': 'jason' } : { host: 'reviews:9080' } });
      const v = r.headers['x-version'];
      await r.body.dump();
      const w = window;
      w.n++; total++;
      w.lat.push(performance.now() - t0);
      if (jason) { w.jason++; if (v === 'v2') w.jasonV2++; }
      else if (v === 'v1') w.v1++;
      else if (v === 'v2') w.v2++;
      else w.other++;
    } catch {
      window.other++;
    }
  };
  // Open loop: every 10 ms, send what is due so far (timers alone cannot fire every 5 ms reliably).
  let sent = 0;
  const tick = setInterval(() => {
    const due = Math.floor(((Date.now() - started) / 1000) * rate);
    for (; sent < due; sent++) void shoot();
  }, 10);
  const report = setInterval(() => {
    const w = window;
    window = { n: 0, v1: 0, v2: 0, other: 0, jason: 0, jasonV2: 0, lat: [] };
    const plain = w.v1 + w.v2;
    const lat = w.lat.sort((a, b) => a - b);
    const q = (p: number): string => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!.toFixed(2) : '-');
    const snap = sidecar.store.current;
    out.write(`[${new Date().toISOString().slice(11, 19)}] config v${snap?.version} | ${w.n} req/s | v1 ${plain ? ((w.v1 / plain) * 100).toFixed(1) : '-'}%  v2 ${plain ? ((w.v2 / plain) * 100).toFixed(1) : '-'}% | jason→v2 ${w.jasonV2}/${w.jason} | errors ${w.other} | p50 ${q(0.5)} ms  p99 ${q(0.99)} ms | total ${total}\n`);
  }, 1000);
  return new Promise<number>((resolve) => {
    const stop = async (): Promise<void> => {
      clearInterval(tick);
      clearInterval(report);
      await pool.close().catch(() => {});
      await sidecar.stop();
      v1.close(); v2.close();
      v1.closeAllConnections(); v2.closeAllConnections();
      rmSync(dir, { recursive: true, force: true });
      out.write(`\nstopped after ${((Date.now() - started) / 1000).toFixed(1)} s, ${total} requests\n`);
      resolve(0);
    };
    process.once('SIGINT', () => { void stop(); });
    process.once('SIGTERM', () => { void stop(); });
    if (Number.isFinite(durationS)) setTimeout(() => { void stop(); }, durationS * 1000).unref();
  });
}
