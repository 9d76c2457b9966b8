/**
 * Capture without iptables, for loopback tests: a stand-in original-destination reader (one answer per accepted
 * connection, in order), an outbound listener with the real capture hook, TCP proxy, cluster manager and a compiled
 * config, and a client that talks to it and collects what comes back.
 */
import net from 'node:net';
import { Http1Server, type OriginalDestination, type RequestHandler } from '../../src/http1/server.js';
import { CaptureStats, outboundCapture, type CaptureEnv } from '../../src/net/capture.js';
import type { OriginalDstReader } from '../../src/net/original-dst.js';
import { TcpProxy } from '../../src/proxy/tcp-proxy.js';
import { ClusterManager } from '../../src/upstream/cluster-manager.js';
import { Metrics, type TcpMeter } from '../../src/telemetry/metrics.js';
import type { Observer } from '../../src/proxy/observer.js';
import { parseDocuments } from '../../src/config/parse.js';
import { compile } from '../../src/config/compile.js';
import type { Snapshot } from '../../src/config/snapshot.js';
import type { RequestRecord } from '../../src/model.js';

/** Answers the accepted connections in order with the destinations the test queued (undefined = not redirected). */
export class QueueReader implements OriginalDstReader {
  readonly kind = 'native';
  readonly description = 'test';
  readonly queue: Array<OriginalDestination | undefined> = [];
  read(): OriginalDestination | undefined {
    return this.queue.shift();
  }
}

/** The sidecar's Observer over `metrics`, with every record (HTTP and L4) pushed to `logged` (the access log). */
export function testObserver(metrics: Metrics, logged: RequestRecord[]): Observer {
  return {
    record(rec) { metrics.recordRequest(rec); logged.push(rec); },
    counters: (c) => metrics.cluster(c),
    connectionOpened: (rec) => metrics.tcpOpened(rec),
    connectionClosed(rec, meter) { metrics.tcpClosed(rec, meter as TcpMeter | undefined); logged.push(rec); },
  };
}

/** A TCP server on 127.0.0.1 (half-open allowed, socket errors ignored); returns its port. */
export async function listenTcp(servers: net.Server[], onConn: (c: net.Socket) => void): Promise<number> {
  const s = net.createServer({ allowHalfOpen: true }, (c) => { c.on('error', () => {}); onConn(c); });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as net.AddressInfo).port;
}

export interface Conn { data: Buffer; ended: boolean; error?: string; firstByteMs?: number }

/** Connect, send `send` (then FIN when `end`), collect until the connection closes (bounded by `timeoutMs`). */
export async function talk(port: number, send?: Buffer | string, opts: { end?: boolean; timeoutMs?: number } = {}): Promise<Conn> {
  const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const chunks: Buffer[] = [];
  const out: Conn = { data: Buffer.alloc(0), ended: false };
  const t0 = Date.now();
  sock.on('data', (d: Buffer) => { if (out.firstByteMs === undefined) out.firstByteMs = Date.now() - t0; chunks.push(d); });
  sock.on('end', () => { out.ended = true; sock.end(); });
  sock.on('error', (e: NodeJS.ErrnoException) => { out.error = e.code ?? e.message; });
  // Written before the connection is up (net queues it): a reset may come before 'connect' is ever seen.
  if (send !== undefined) sock.write(send);
  if (opts.end) sock.end();
  const timer = setTimeout(() => sock.destroy(), opts.timeoutMs ?? 5000);
  // Not once(sock, 'close'): that rejects on the 'error' (a reset) a test may want to see.
  await new Promise((r) => sock.once('close', r));
  clearTimeout(timer);
  out.data = Buffer.concat(chunks);
  return out;
}

export interface CaptureHarness {
  port: number;
  reader: QueueReader;
  metrics: Metrics;
  clusters: ClusterManager;
  tcp: TcpProxy;
  stats: CaptureStats;
  env: CaptureEnv;
  logged: RequestRecord[];
  snap: Snapshot;
  close(): Promise<void>;
}

/** An outbound listener with the capture hook over the config in `yaml`; HTTP requests go to `http`. */
export async function startCapture(yaml: string, http: RequestHandler, opts: { labels?: Record<string, string>; snapshot?: (s: Snapshot) => Snapshot } = {}): Promise<CaptureHarness> {
  const { resources, errors } = parseDocuments(yaml, 'capture.yaml');
  if (errors.length > 0) throw new Error(JSON.stringify(errors));
  const labels = opts.labels ?? { app: 'test', version: 'v1' };
  const snap = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels, outboundTrafficPolicy: 'ALLOW_ANY' });
  const reader = new QueueReader();
  const metrics = new Metrics({ sourceWorkload: 'test', sourceNamespace: 'default' });
  const clusters = new ClusterManager(Math.random, () => performance.now(), { keepAliveMs: 4000, headersTimeoutMs: 0 });
  const logged: RequestRecord[] = [];
  const tcp = new TcpProxy({ observer: testObserver(metrics, logged), now: () => performance.now() });
  const stats = new CaptureStats();
  const env: CaptureEnv = {
    reader,
    snapshot: () => (opts.snapshot ? opts.snapshot(snap) : snap),
    clusters,
    tcp,
    sniffTimeoutMs: 100,
    self: { labels, namespace: 'default', clusterDomain: 'cluster.local' },
    rand: Math.random,
  };
  const server = new Http1Server(http, { onConnection: outboundCapture(env, stats) });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port, reader, metrics, clusters, tcp, stats, env, logged, snap,
    async close() {
      tcp.closeAll();
      server.close();
      server.closeAllConnections();
      await clusters.destroy();
    },
  };
}
