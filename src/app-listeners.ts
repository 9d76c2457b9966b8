/**
 * The sidecar's bound listeners: binding each (the admin ones answer malformed requests themselves, the data-plane
 * ones get --max-connections and an IPv6 companion), finding them by name, and closing them — inbound for the drain,
 * all at stop.
 */
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { Http1Server } from './http1/server.js';
import { listenIPv6Companion } from './net/ipv6-companion.js';
import type { Metrics } from './telemetry/metrics.js';
import type { Logger } from './util/logger.js';
import { DRAIN_IDLE_GRACE_MS } from './app-drain.js';
import { observeListenerOverflow } from './app-metrics.js';

/** A listener: node:http for admin/stats/health, Http1Server for the data plane. */
export type Server = HttpServer | Http1Server;

export class Listeners {
  readonly servers: Array<{ name: string; server: Server; address: string; port: number }> = [];
  /** IPv6 companions of the proxy listeners ([::1] beside 127.0.0.1, [::] beside 0.0.0.0), by listener name. */
  readonly companions: Array<{ name: string; server: NetServer }> = [];

  /** `maxConnections`: --max-connections of each proxy listener (0: no limit). */
  constructor(private readonly logger: Logger, private readonly metrics: Metrics, private readonly maxConnections: number) {}

  async listen(name: string, server: Server, address: string, port: number): Promise<void> {
    // The data-plane listeners answer malformed requests themselves (Http1Server); the admin ones are node:http.
    if (!(server instanceof Http1Server)) {
      server.on('clientError', (err: NodeJS.ErrnoException, socket: import('node:stream').Duplex) => {
        if (!socket.writable) { socket.destroy(); return; }
        const code = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
        const text = code === 431 ? 'Request Header Fields Too Large' : code === 408 ? 'Request Timeout' : 'Bad Request';
        socket.end(`HTTP/1.1 ${code} ${text}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      });
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => { server.off('error', reject); resolve(); });
    });
    server.on('error', (err) => this.logger.log('error', `${name} listener: ${err.message}`));
    if (server instanceof Http1Server && (name === 'outbound' || name === 'inbound')) this.limitConnections(name, server);
    const a = server.address() as AddressInfo;
    this.servers.push({ name, server, address, port: a.port });
    if (server instanceof Http1Server && (name === 'outbound' || name === 'inbound')) {
      // IPv6 beside IPv4's loopback or any-address (src/net/ipv6-companion.ts): the listener owns what it accepts.
      const companion = await listenIPv6Companion(name, server, address, a.port, this.logger);
      if (companion !== undefined) this.companions.push({ name, server: companion });
    }
  }

  /**
   * --max-connections: node's net.Server closes a connection accepted past `maxConnections` at once ('drop'), as
   * Envoy's listener connection limit does, so a flood stops short of the fd limit and admin, upstream connects and
   * config reads keep their descriptors. Past the fd limit itself (EMFILE) libuv accepts and closes the waiting
   * connections with its reserve descriptor and accepting resumes by itself once fds are free (measured in
   * test/reliability/fd-exhaustion.test.ts).
   */
  private limitConnections(name: string, server: Http1Server): void {
    const st = { overflow: 0 };
    const max = this.maxConnections;
    if (max > 0) server.maxConnections = max;
    server.on('drop', () => { st.overflow++; });
    observeListenerOverflow(this.metrics, name, st);
  }

  port(name: string): number {
    return this.servers.find((s) => s.name === name)?.port ?? 0;
  }

  info(): Array<{ name: string; address: string; port: number }> {
    return this.servers.map((s) => ({ name: s.name, address: s.address, port: s.port }));
  }

  /** Connections open on the inbound listener (0 without one). */
  inboundConnections(): Promise<number> {
    const s = this.servers.find((x) => x.name === 'inbound');
    if (s === undefined) return Promise.resolve(0);
    return new Promise((resolve) => s.server.getConnections((err, n) => resolve(err ? 0 : n)));
  }

  /** The drain: the inbound listener stops accepting; its idle keep-alive connections close after a grace. */
  closeInbound(inboundOnly: boolean, drainSeconds: number): void {
    for (const s of this.servers) {
      if (s.name === 'inbound' || (!inboundOnly && s.name === 'outbound' && false)) {
        s.server.close();
        // Busy connections close after their response (Connection: close, inboundEnv.draining). Idle keep-alive ones
        // are closed after a grace, not at once: a client may have written a request on one that the proxy has not
        // read yet, and destroying the connection then resets a request that was already sent (seen at 1000 rps with
        // --concurrency 2: 2 of 200 in flight). Within the grace such a request is served, with Connection: close.
        const server = s.server;
        setTimeout(() => server.closeIdleConnections(), Math.min(DRAIN_IDLE_GRACE_MS, drainSeconds * 1000)).unref();
      }
    }
    for (const c of this.companions) if (c.name === 'inbound') c.server.close();
  }

  /** Stop: every listener and companion closed, with its connections. */
  closeAll(): void {
    for (const s of this.servers) {
      s.server.close();
      s.server.closeAllConnections();
    }
    for (const c of this.companions) c.server.close();
  }
}
