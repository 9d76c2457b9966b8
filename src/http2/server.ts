/**
 * Cleartext HTTP/2 (prior knowledge) on the data-plane listeners: a connection whose first bytes are the HTTP/2
 * preface is served by an `H2Session` (./session.ts, Remora's own HTTP/2 framing), and each stream becomes a
 * request/response pair with the same surface the proxy path reads from HTTP/1 (`Http2Request` / `Http2Response`
 * in ./stream-pair.ts mirror `Http1Request` / `Http1Response`), so routing, retries, outlier detection, circuit breaking, tracing,
 * metrics and access logs stay one implementation. Trailers pass through both ways (gRPC's `grpc-status` /
 * `grpc-message`), bodies stream with HTTP/2 flow control (a `false` from `write` means the stream's window is full;
 * 'drain' follows).
 * HTTP/1.1's `Upgrade: h2c` (RFC 7540 §3.2; deprecated by RFC 9113, still sent by `curl --http2` and older
 * clients) is taken too, see `Http2Listener.upgrade`: 101, then the connection is HTTP/2 with the request as stream 1.
 */
import type net from 'node:net';
import type { PeerIdentity } from '../security/mtls.js';
import type { Http1Request, Http1Response, OriginalDestination } from '../http1/server.js';
import { startReading } from '../http1/socket-io.js';
import { h2cSettings } from './h2c.js';
import { H2ERR, H2Session, h2RequestHeaders, type H2ConnectionError, type H2Stream } from './session.js';
import { DEFAULT_STREAM_TIMEOUTS, headersOverdue, streamIdle, sweepIntervalMs, type StreamTimeouts } from '../proxy/stream-timeouts.js';
import { H2Conn, Http2Request, Http2Response, type StreamOwner } from './stream-pair.js';

export { Http2Request, Http2Response } from './stream-pair.js';

export type Http2Handler = (req: Http2Request, res: Http2Response) => void;


function sweepListener(l: Http2Listener): void {
  l.sweep(Date.now());
}


/**
 * Envoy's defence against HTTP/2 "rapid reset" (CVE-2023-44487), with Envoy's defaults
 * (`overload.premature_reset_total_stream_count` 500, `overload.premature_reset_min_stream_lifetime_seconds` 1): a
 * stream the client resets within a second of opening it, before its response is complete, is a premature reset;
 * once a connection has closed at least 500 streams and half or more of them were premature resets, it is closed
 * (GOAWAY ENHANCE_YOUR_CALM, then the socket).
 */
export const PREMATURE_RESET_MIN_STREAMS = 500;
export const PREMATURE_RESET_LIFETIME_MS = 1000;

/** What a listener's sessions went through; read by the metrics. */
export interface Http2ListenerStats {
  /** HTTP/2 connections served. */
  sessions: number;
  /** Connections closed by a protocol error or a flood (SETTINGS/PING flood, CONTINUATION flood, invalid frames). */
  protocolErrors: number;
  /** Connections closed for too many premature stream resets (Envoy `downstream_rq_too_many_premature_resets`). */
  prematureResetCloses: number;
  /** Streams the client reset before their response was complete (Envoy `downstream_rq_rx_reset`). */
  streamsResetByPeer: number;
  /** Connections closed because a header block was not complete within the request-headers timeout. */
  headersTimeouts: number;
  /** Streams ended by the stream idle timeout (408 if unanswered, else reset; Envoy `downstream_rq_idle_timeout`). */
  streamIdleTimeouts: number;
}

export interface Http2ListenerOptions {
  /** Streams a client may open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). Default 1024. */
  maxConcurrentStreams?: number;
  /** A connection with no open stream for this long is closed with GOAWAY (ms). Default 65 s, as HTTP/1 keep-alive. */
  idleTimeoutMs?: number;
  /** Largest header list (bytes, RFC 9113's size), as HTTP/1's maxHeaderSize. Default 16 KiB. */
  maxHeaderListSize?: number;
  /** A header block must be complete this long after its first byte (ms): the same policy as HTTP/1's head. Default 30 s. */
  headersTimeoutMs?: number;
  /** A stream with no byte moving either way for this long ends (ms; 0 = never), as an HTTP/1 request does. Default 5 min. */
  streamIdleTimeoutMs?: number;
}

/** The HTTP/2 side of a data-plane listener: sessions for the connections handed to it. */
export class Http2Listener implements StreamOwner {
  private readonly sessions = new Map<H2Session, H2Conn>();
  draining = false;
  readonly stats: Http2ListenerStats = { sessions: 0, protocolErrors: 0, prematureResetCloses: 0, streamsResetByPeer: 0, headersTimeouts: 0, streamIdleTimeouts: 0 };
  /** The request-headers and stream idle timeouts: one policy with the HTTP/1 server's. */
  readonly timeouts: StreamTimeouts;
  /** A coarse clock (ms), set by the sweep: what progress stamps read instead of a system call per frame. */
  clock = Date.now();
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly idleMs: number;

  constructor(private readonly handler: Http2Handler, private readonly opts: Http2ListenerOptions = {}) {
    this.idleMs = opts.idleTimeoutMs ?? 65_000;
    this.timeouts = {
      headersTimeoutMs: opts.headersTimeoutMs ?? DEFAULT_STREAM_TIMEOUTS.headersTimeoutMs,
      streamIdleTimeoutMs: opts.streamIdleTimeoutMs ?? DEFAULT_STREAM_TIMEOUTS.streamIdleTimeoutMs,
    };
  }

  /** Serve HTTP/2 on an accepted socket; `head` holds the bytes already read from it (the preface). */
  serveSocket(sock: net.Socket, head: Buffer | undefined, originalDst: OriginalDestination | undefined): void {
    const session = this.open(sock, originalDst);
    if (head !== undefined && head.length > 0) session.receive(head);
    sock.resume();
    if (this.draining) session.close();
  }

  /**
   * An HTTP/1.1 request asking for cleartext HTTP/2 (`Upgrade: h2c`, RFC 7540 §3.2): when it may be taken, 101
   * Switching Protocols, and the connection is served as HTTP/2 from here on, the request itself as stream 1 (its
   * response goes out as HTTP/2). True when taken. False, with nothing done, for anything else: an upgrade to
   * another protocol, or an h2c upgrade that RFC 7540 says not to take (no `HTTP2-Settings` or more than one, one
   * that is not base64url SETTINGS, `HTTP2-Settings` not named in `Connection`, a TLS connection): that request
   * goes on as HTTP/1.1 (the proxy path then treats it as any other upgrade request).
   */
  upgrade(req: Http1Request, res: Http1Response): boolean {
    if (!req.upgrade || this.draining || (req.socket as { encrypted?: boolean }).encrypted === true) return false;
    const settings = h2cSettings(req.rawHeaders);
    if (settings === null) return false;
    const flat = h2RequestHeaders(req.method, req.url, req.rawHeaders);
    let sw: { socket: net.Socket; head: Buffer[] };
    try {
      sw = res.switchProtocols(['Connection', 'Upgrade', 'Upgrade', 'h2c']);
    } catch {
      res.destroy(); // the client went meanwhile
      return true;
    }
    const { socket, head } = sw;
    const session = this.open(socket, req.originalDst);
    if (!session.acceptUpgrade(settings, flat)) return true;
    for (const b of head) session.receive(b);
    startReading(socket);
    return true;
  }

  private open(sock: net.Socket, originalDst: OriginalDestination | undefined): H2Session {
    const conn = new H2Conn(sock, originalDst);
    const listener = this;
    const session: H2Session = new H2Session(sock, 'server', {
      maxConcurrentStreams: this.opts.maxConcurrentStreams ?? 1024,
      maxHeaderListSize: this.opts.maxHeaderListSize ?? 16_384,
      initialWindowSize: 1 << 20,
    }, {
      onStream(stream, flat, endStream) { listener.onStream(session, conn, stream, flat, endStream); },
      onError(_err: H2ConnectionError) { listener.stats.protocolErrors++; },
      onClose() { listener.sessions.delete(session); },
    });
    this.sessions.set(session, conn);
    this.stats.sessions++;
    if (this.idleTimer === undefined) {
      this.clock = Date.now();
      this.idleTimer = setInterval(sweepListener, sweepIntervalMs(this.timeouts, this.idleMs), this);
      this.idleTimer.unref();
    }
    return session;
  }

  private onStream(session: H2Session, conn: H2Conn, stream: H2Stream, flat: string[], endStream: boolean): void {
    const req = new Http2Request(stream, flat, endStream, conn);
    const res = new Http2Response(stream, req, this, session);
    res.openedAt = Date.now();
    res.lastProgress = this.clock;
    stream.handler = res;
    try {
      this.handler(req, res);
    } catch {
      stream.reset(H2ERR.INTERNAL_ERROR);
    }
  }

  /** @internal a stream closed: the rapid-reset check (Envoy's premature reset rule). */
  streamClosed(session: H2Session, res: Http2Response, st: H2Stream): void {
    if (session.destroyed) return;
    const conn = this.sessions.get(session);
    if (conn === undefined) return;
    conn.closedStreams++;
    if (!(st.resetByPeer && res.resetByPeer)) return;
    this.stats.streamsResetByPeer++;
    if (Date.now() - res.openedAt >= PREMATURE_RESET_LIFETIME_MS) return;
    conn.prematureResets++;
    if (conn.closedStreams >= PREMATURE_RESET_MIN_STREAMS && conn.prematureResets * 2 >= conn.closedStreams) {
      this.stats.prematureResetCloses++;
      session.destroy(H2ERR.ENHANCE_YOUR_CALM);
    }
  }

  /**
   * @internal Once a tick: idle connections close (GOAWAY), a connection whose header block is overdue closes (no
   * other frame may arrive before the block ends, so nothing else can move on it), and silent streams end as an
   * HTTP/1 request would: 408 if unanswered, else RST_STREAM.
   */
  sweep(now: number): void {
    this.clock = now;
    if (this.sessions.size === 0) {
      clearInterval(this.idleTimer);
      this.idleTimer = undefined;
      return;
    }
    const t = this.timeouts;
    for (const s of this.sessions.keys()) {
      if (s.active === 0 && now - s.idleSince >= this.idleMs) { s.close(); continue; }
      if (headersOverdue(t, s.headerPendingSince, now)) {
        this.stats.headersTimeouts++;
        s.headerPendingSince = 0;
        s.close();
      }
      if (t.streamIdleTimeoutMs === 0 || s.active === 0) continue;
      for (const st of s.streams.values()) {
        const res = st.handler;
        if (!(res instanceof Http2Response) || res.answeredByServer || !streamIdle(t, res.lastProgress, now)) continue;
        this.stats.streamIdleTimeouts++;
        res.timeOut();
      }
    }
  }

  /** Drain: GOAWAY to every session (open streams finish), and to new ones at once. */
  closeIdleConnections(): void {
    this.draining = true;
    for (const s of this.sessions.keys()) s.close();
  }

  closeAllConnections(): void {
    for (const s of [...this.sessions.keys()]) s.destroy();
  }

  /** GOAWAY to the sessions `which` selects (a PeerAuthentication change to STRICT): their open streams finish. */
  closeWhere(which: (peer: PeerIdentity | undefined, originalDst: OriginalDestination | undefined) => boolean): number {
    let n = 0;
    for (const [s, conn] of this.sessions) {
      if (!which(conn.peer, conn.originalDst)) continue;
      n++;
      s.close();
    }
    return n;
  }

  get connections(): number {
    return this.sessions.size;
  }
}


