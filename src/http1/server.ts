/**
 * The data plane's HTTP/1.x server: Node's own llhttp parser (the binding node:http uses, from `_http_common`)
 * driven directly over `net` sockets, with a request/response pair that carries only what a proxy needs.
 * It replaces node:http's server layer on the outbound and inbound listeners because that layer was the
 * largest single cost of a proxied request (IncomingMessage/ServerResponse streams, header objects, corked
 * writes): see docs/architecture.md "Downstream HTTP/1 server" for the measurements and the behaviour kept.
 * This module is the listener: its options, the sockets it serves, its sweep, drain and stop. Each connection is
 * ./connection.ts's, the request ./request.ts's, the response ./response.ts's (their public names exported here too).
 */
import net from 'node:net';
import { onDirectDrain } from './socket-io.js';
import { consumeSocket } from './native-parser.js';
import { DEFAULT_STREAM_TIMEOUTS, sweepIntervalMs, type StreamTimeouts } from '../proxy/stream-timeouts.js';
import { Connection, type ConnectionServer } from './connection.js';
import type { Http1Request, OriginalDestination } from './request.js';
import type { Http1Response } from './response.js';

export { headersObject, Http1Request, type OriginalDestination } from './request.js';
export { Http1Response } from './response.js';

export interface Http1ServerOptions {
  /** Idle keep-alive connections are closed after this long (ms). Default 65 s (Node's/AWS ALB's 60 s + margin). */
  keepAliveTimeoutMs?: number;
  /** A request's headers must arrive within this long (ms) of its first byte, else 408 (slowloris). Default 30 s. */
  headersTimeoutMs?: number;
  /** Largest request head (bytes), as node:http's `maxHeaderSize`; above it the answer is 431. Default 16 KiB. */
  maxHeaderSize?: number;
  /** Most header lines a request head may have (Envoy's max_headers_count); above it the answer is 431. Default 100. */
  maxHeadersCount?: number;
  /** Pipelined requests in flight on one connection before the proxy stops reading from it. Default 16. */
  maxPipelined?: number;
  /**
   * Envoy's stream_idle_timeout: a request in flight with no byte moving either way (its body, its response, the
   * socket draining) for this long is ended — 408 with Connection: close if its response has not started, else the
   * connection is reset. Covers slow POSTs, clients that stop reading, and upstreams that say nothing. Default 5 min
   * (Envoy's); 0 = off.
   */
  streamIdleTimeoutMs?: number;
  /**
   * Decide each accepted connection before HTTP/1 is assumed (transparent capture: original destination, protocol
   * sniffing). The hook serves HTTP by calling `server.serveSocket`, or takes the socket elsewhere (a TCP tunnel).
   */
  onConnection?: (sock: net.Socket, server: Http1Server) => void;
  /**
   * CONNECT requests are handed to the handler (flagged `req.upgrade`, answered with `res.takeOver`) instead of being
   * answered 405 here. Default false.
   */
  connect?: boolean;
}

export type RequestHandler = (req: Http1Request, res: Http1Response) => void;

/**
 * A `net.Server` that speaks HTTP/1.x to each connection through `handler`. Same `listen`/`close`/`address`
 * as node:http's Server, plus `closeIdleConnections`/`closeAllConnections` for drain and stop.
 */
export class Http1Server extends net.Server implements ConnectionServer {
  readonly keepAliveTimeoutMs: number;
  /** The request-headers and stream idle timeouts: one policy with the HTTP/2 listener's. */
  readonly timeouts: StreamTimeouts;
  readonly maxHeaderSize: number;
  readonly maxPipelined: number;
  readonly maxHeadersCount: number;
  /** Requests answered by the server itself for a framing or header error (400/431/501), connection closed after. */
  readonly stats = { rejected: 0, streamIdleTimeouts: 0, responsesBeforeRequestComplete: 0 };
  readonly connect: boolean;
  /** A coarse clock (ms), set by the sweep: what progress stamps read instead of a system call per event. */
  clock = Date.now();
  private readonly conns = new Set<Connection>();
  private headTimer: NodeJS.Timeout | undefined;

  constructor(readonly handler: RequestHandler, opts: Http1ServerOptions = {}) {
    // Half-open allowed: a client may send its request and FIN, and still read the answer.
    super({ allowHalfOpen: true, noDelay: true });
    this.keepAliveTimeoutMs = opts.keepAliveTimeoutMs ?? 65_000;
    this.timeouts = {
      headersTimeoutMs: opts.headersTimeoutMs ?? DEFAULT_STREAM_TIMEOUTS.headersTimeoutMs,
      streamIdleTimeoutMs: opts.streamIdleTimeoutMs ?? DEFAULT_STREAM_TIMEOUTS.streamIdleTimeoutMs,
    };
    this.maxHeaderSize = opts.maxHeaderSize ?? 16_384;
    this.maxPipelined = opts.maxPipelined ?? 16;
    this.maxHeadersCount = opts.maxHeadersCount ?? 100;
    this.connect = opts.connect ?? false;
    const hook = opts.onConnection;
    if (hook === undefined) this.on('connection', (sock: net.Socket) => this.serveSocket(sock));
    else this.on('connection', (sock: net.Socket) => hook(sock, this));
    this.on('listening', () => {
      if (this.headTimer !== undefined) return;
      // One coarse sweep for all connections (as node:http's connectionsCheckingInterval), not a timer per request.
      this.headTimer = setInterval(sweepHeads, sweepIntervalMs(this.timeouts, this.keepAliveTimeoutMs), this);
      this.headTimer.unref();
    });
    this.on('close', () => {
      if (this.headTimer !== undefined) clearInterval(this.headTimer);
      this.headTimer = undefined;
    });
  }

  /**
   * Serve HTTP/1 on an accepted socket. `head` holds bytes already read from it (by a protocol sniffer), parsed
   * before anything else; `originalDst` is where a captured connection was going (outbound routing by VIP).
   */
  serveSocket(sock: net.Socket, head?: Buffer, originalDst?: OriginalDestination): void {
    const c = new Connection(this, sock, originalDst);
    this.conns.add(c);
    sock.setNoDelay(true);
    // The parser reads straight from the handle; the 'data' listener starts reading and is the fallback path.
    consumeSocket(c.parser, sock);
    sock.on('data', (d: Buffer) => c.onData(d));
    if (head !== undefined && head.length > 0) c.onData(head);
    // A response draining into a slow reader is progress (the stream idle timeout counts silence, not slowness).
    const drained = (): void => { c.lastProgress = this.clock; c.front()?.drained(); };
    onDirectDrain(sock, drained);
    sock.on('end', () => {
      // A tunnel (101) owns the socket's ends: a FIN is passed on there (half-close).
      if (c.tunnelled) return;
      // The client closed its side (a FIN, or a reset the kernel reported as end of stream) before every answer was
      // written: it went away. As Envoy (the streams are reset), nginx (499, the upstream request finalized) and
      // node:http do, the connection is closed now, so that the proxy abandons the upstream work for a client that
      // will never read it (a client timing out would otherwise leave its requests running upstream). With nothing
      // outstanding, our FIN follows.
      c.closing = true;
      if (c.queue.length > 0 || c.current !== undefined) sock.destroy();
      else sock.end();
    });
    sock.on('drain', drained);
    sock.on('finish', () => { c.finishedAt = Date.now(); });
    sock.on('error', noop);
    sock.on('close', () => {
      this.conns.delete(c);
      c.onClose();
    });
  }

  /** @internal */
  sweep(now: number): void {
    this.clock = now;
    for (const c of this.conns) {
      c.checkHeadTimeout(now);
      c.checkIdle(now);
      c.checkStreamIdle(now);
    }
  }

  /** Close connections with nothing in flight (drain: busy ones close after their response, see `draining`). */
  closeIdleConnections(): void {
    for (const c of this.conns) {
      c.draining = true;
      if (c.isIdle()) c.sock.destroy();
    }
  }

  closeAllConnections(): void {
    for (const c of this.conns) c.sock.destroy();
  }

  /**
   * Drain the connections `which` selects (a PeerAuthentication change to STRICT: the plaintext ones): requests
   * already begun finish, answered with Connection: close, and idle connections close now; a tunnel is closed.
   */
  drainWhere(which: (sock: net.Socket, originalDst: OriginalDestination | undefined) => boolean): number {
    let n = 0;
    for (const c of this.conns) {
      if (!which(c.sock, c.originalDst)) continue;
      n++;
      c.draining = true;
      if (c.tunnelled || c.isIdle()) c.sock.destroy();
    }
    return n;
  }
}

function noop(): void { /* socket errors end in 'close', where the connection is cleaned up */ }

function sweepHeads(s: Http1Server): void {
  s.sweep(Date.now());
}
