/**
 * Shared pieces of the end-to-end observability tests: an in-process OTLP/HTTP receiver that decodes what the
 * proxy exports, a ServiceEntry builder, and a graceful stop (SIGTERM → the proxy flushes spans and logs, then exits).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeTraceRequest, type DecodedSpan } from '../telemetry/otlp-decode.js';
import type { RunningProxy } from '../../support/proxy-harness.js';

export class OtlpReceiver {
  readonly spans: DecodedSpan[] = [];
  readonly posts: string[] = [];
  private server: Server;
  port = 0;

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.posts.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
        this.spans.push(...decodeTraceRequest(Buffer.concat(chunks)));
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  url(): string {
    return `http://127.0.0.1:${this.port}/v1/traces`;
  }

  trace(traceId: string): DecodedSpan[] {
    return this.spans.filter((s) => s.traceId === traceId);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A STATIC ServiceEntry `NAME.default.svc.cluster.local:PORT` whose endpoints are 127.0.0.1 upstream ports (with optional labels). */
export function serviceEntry(name: string, port: number, endpoints: Array<{ port: number; labels?: Record<string, string> }>): string {
  const eps = endpoints
    .map((e) => `  - {address: 127.0.0.1, ports: {http: ${e.port}}${e.labels ? `, labels: {${Object.entries(e.labels).map(([k, v]) => `${k}: ${v}`).join(', ')}}` : ''}}`)
    .join('\n');
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${name}.default.svc.cluster.local]
  ports: [{number: ${port}, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
${eps}
`;
}

/** SIGTERM the proxy and wait for its exit (it drains, flushes access logs and spans, then exits 0). */
export async function stopGracefully(p: RunningProxy, timeoutMs = 15_000): Promise<number | null> {
  if (p.exitCode !== null) return p.exitCode;
  p.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    p.exited,
    new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), timeoutMs); }),
  ]);
  clearTimeout(timer);
  if (code === 'timeout') throw new Error(`proxy did not exit within ${timeoutMs} ms after SIGTERM\nstderr: ${p.stderr}`);
  return code;
}
