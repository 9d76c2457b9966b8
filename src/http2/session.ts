/**
 * HTTP/2 (RFC 9113) framing for the data path, written by hand: one `H2Session` per connection, server or client,
 * and one plain `H2Stream` object per stream with a single handler object for its events. `node:http2` builds a
 * Duplex stream, a header object and several closures per stream and crosses into nghttp2 and back for every frame;
 * measured under the gRPC benchmark it held Remora below half of nginx's calls per CPU-second on its own (see
 * docs/performance.md, "HTTP/2 codec"). This module keeps per-stream work to parsing frames out of the socket's
 * chunks, HPACK (./hpack.ts) and a few integer updates, and writes each tick's frames in one socket write.
 *
 * This file is one cohesive state machine: the HTTP/2 connection, `H2Session`. The preface, SETTINGS, PING, GOAWAY,
 * connection flow control, stream ids and limits, header-block assembly and the flood counters all read and move the
 * same per-connection state frame by frame, in one class, so it stays in one file (over 500 lines). The parts with a
 * job of their own are beside it, and their public names are re-exported here (importers use this module): the wire
 * vocabulary and frame header (./frames.ts), one stream's states and windows (./stream.ts), header-list validation
 * (./validate.ts), the HTTP/1 request head as an HTTP/2 header block (./request-headers.ts).
 *
 * What it does, per RFC 9113:
 * - the connection preface, SETTINGS (applied and acknowledged), PING (answered), GOAWAY (both ways, graceful close),
 *   WINDOW_UPDATE and flow control on both levels in both directions, RST_STREAM, PRIORITY (read and ignored),
 *   CONTINUATION (header blocks of any size, sent split at the peer's SETTINGS_MAX_FRAME_SIZE), padding, unknown
 *   frame types ignored;
 * - the stream state machine (idle → open → half-closed → closed; ./stream.ts), stream id rules,
 *   SETTINGS_MAX_CONCURRENT_STREAMS;
 * - request validation on the server side (§8.3, ./validate.ts: pseudo-headers, lowercase names, no
 *   connection-specific fields, `te: trailers` only, content-length against the DATA received), a malformed request
 *   is a stream error;
 * - defences: a header block is bounded while it is assembled (CONTINUATION flood, CVE-2024-27983), control frames
 *   answered to a peer that does not read are bounded (PING/SETTINGS floods, CVE-2019-9512/9515), empty DATA frames
 *   without END_STREAM are bounded (CVE-2019-9518). Rapid reset (CVE-2023-44487) is judged by the listener, which
 *   sees stream lifetimes (../http2/server.ts).
 *
 * Not offered: server push (SETTINGS_ENABLE_PUSH is 0 on our side and a PUSH_PROMISE is a protocol error), the
 * `Upgrade: h2c` dance (removed by RFC 9113), extended CONNECT (RFC 8441).
 */
import type { Duplex } from 'node:stream';
import { HpackDecoder, HpackEncoder, HpackError, HpackListTooLarge } from './hpack.js';
import {
  ACK, CONTINUATION, DATA, DEFAULT_FRAME, DEFAULT_WINDOW, END_HEADERS, END_STREAM, GOAWAY, H2ConnectionError, H2ERR, HEADERS,
  MAX_WINDOW, PADDED, PING, PREFACE, PRIORITY, PRIORITY_FLAG, PUSH_PROMISE, RST_STREAM, SETTINGS, WINDOW_UPDATE,
  settingsAck, unpad, writeFrameHeader, type H2Settings,
} from './frames.js';
import { H2Stream, type H2StreamHandler, type StreamSession } from './stream.js';
import { checkRequest, checkResponse, checkTrailers, contentLength } from './validate.js';

export { H2ConnectionError, H2ERR, PREFACE, type H2Settings } from './frames.js';
export { H2Stream, type H2StreamHandler } from './stream.js';
export { CONNECTION_SPECIFIC, checkRequest, checkResponse, checkTrailers } from './validate.js';
export { h2RequestHeaders, hasUpper } from './request-headers.js';

/** Not a wire flag: set on a HEADERS frame whose stream depends on itself (a stream error already sent). */
const SELF_DEPENDENT = 0x100;

/**
 * Control-frame answers (PING and SETTINGS ACKs) allowed in any one second, and while the socket is backed up (the
 * peer is not reading). nghttp2's outbound ACK limit is 1,000 queued; here the kernel's loopback buffers absorb
 * megabytes of ACKs before a write backs up, so a peer that asks for more than 1,000 answers a second is a flood
 * too (CVE-2019-9512/9515): a gRPC keepalive or BDP probe sends a few a second at most.
 */
const MAX_CONTROL_ACKS = 1000;
/**
 * Streams reset for the peer's faults (malformed requests, flow-control or state errors) or refused, per connection:
 * past it the connection is a flood (CVE-2019-9514 pattern; node:http2's maxSessionInvalidFrames is 1,000 too).
 */
const MAX_PEER_FAULTS = 1000;
/** Bytes written to the socket and not yet taken by the kernel past which stream writes wait ('drain'). */
const SOCKET_HIGH_WATER = 1 << 20;
/** Consecutive DATA frames with no payload and no END_STREAM (Envoy allows 1; nghttp2's invalid-frame budget 1,000). */
const MAX_EMPTY_DATA = 100;

const PEER_DEFAULTS: H2Settings = {
  headerTableSize: 4096,
  enablePush: true,
  maxConcurrentStreams: 100, // "unlimited" until the peer says; 100 is what RFC 9113 recommends as a minimum
  initialWindowSize: DEFAULT_WINDOW,
  maxFrameSize: DEFAULT_FRAME,
  maxHeaderListSize: Infinity,
};

export interface H2SessionOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS we announce (server: streams the client may open). Default 1024 (server), 0 (client: no pushes). */
  maxConcurrentStreams?: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE we announce: each stream's receive window. Default 1 MiB. */
  initialWindowSize?: number;
  /** The connection's receive window (raised with a WINDOW_UPDATE after the preface). Default 16 MiB. */
  connectionWindowSize?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE we announce and enforce. Default 16 KiB. */
  maxHeaderListSize?: number;
}

export interface H2SessionEvents {
  /** Server: a new request stream (headers validated). The owner sets `stream.handler`. */
  onStream?(stream: H2Stream, flat: string[], endStream: boolean): void;
  /** The peer's SETTINGS (the first ones: the connection is usable). */
  onRemoteSettings?(first: boolean): void;
  /** The peer sent GOAWAY: no new streams; streams above `lastStreamId` were not processed (already closed as refused). */
  onGoaway?(code: number, lastStreamId: number): void;
  /** A protocol error or a flood closed the connection. */
  onError?(err: H2ConnectionError): void;
  /** The connection is gone (socket closed). */
  onClose?(): void;
  /** No stream open any more. */
  onIdle?(): void;
}

export class H2Session implements StreamSession {
  readonly peer: H2Settings = { ...PEER_DEFAULTS };
  /** Our per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE we announced). */
  readonly localWindow: number;
  readonly localMaxStreams: number;
  readonly localMaxHeaderList: number;
  /** Connection-level send window (the peer's). */
  sendWindow = DEFAULT_WINDOW;
  private recvWindow: number;
  private readonly connWindowTarget: number;
  private connConsumed = 0;
  readonly streams = new Map<number, H2Stream>();
  /** Streams with data waiting for window. */
  readonly blocked = new Set<H2Stream>();
  /** Streams open now. */
  active = 0;
  /** Highest stream id the peer opened (server) / we opened (client). */
  lastPeerStreamId = 0;
  private nextStreamId = 1;
  settingsReceived = false;
  goawaySent = false;
  goawayReceived = false;
  destroyed = false;
  /** Close once the last stream is done (after GOAWAY). */
  private closing = false;
  private readonly encoder = new HpackEncoder();
  private readonly decoder: HpackDecoder;
  private buf: Buffer | null = null;
  private prefaceLeft: number;
  /** A header block being assembled (HEADERS without END_HEADERS, then CONTINUATIONs). */
  private hbStream = 0;
  private hbFlags = 0;
  private hbParts: Buffer[] = [];
  private hbSize = 0;
  private emptyData = 0;
  private unreadAcks = 0;
  private ackWindowStart = 0;
  private acksInWindow = 0;
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private readonly pings: Array<(err: Error | null, ms: number) => void> = [];
  /** When each PING in flight was sent, oldest first (answers come in order). */
  private readonly pingSent: number[] = [];
  /** Streams of the peer we reset lately: their late HEADERS (trailers) are ignored (§5.1), not a connection error. */
  private readonly recentlyReset = new Set<number>();
  /** Last time a frame came in (ms, coarse): keep-alive PINGs and idle checks read it. */
  lastFrameAt = 0;
  /** When the last stream closed (idle timeout). */
  idleSince = Date.now();
  /**
   * Since when (ms) a head has been arriving and is not complete: the preface, a frame header, a HEADERS or
   * CONTINUATION frame cut between reads, or a header block waiting for its CONTINUATION; 0 = none. The listener
   * closes the connection when it is older than the request-headers timeout (nothing else can move on it meanwhile).
   */
  headerPendingSince = 0;

  constructor(readonly socket: Duplex, readonly role: 'server' | 'client', opts: H2SessionOptions, readonly events: H2SessionEvents) {
    this.localWindow = opts.initialWindowSize ?? 1 << 20;
    this.localMaxStreams = opts.maxConcurrentStreams ?? (role === 'server' ? 1024 : 0);
    this.localMaxHeaderList = opts.maxHeaderListSize ?? 16_384;
    this.connWindowTarget = opts.connectionWindowSize ?? 16 << 20;
    this.recvWindow = DEFAULT_WINDOW;
    this.decoder = new HpackDecoder(4096);
    this.prefaceLeft = role === 'server' ? PREFACE.length : 0;
    // Our SETTINGS: no pushes, our stream limit, window and header list size; then the connection window raised.
    const settings: Array<[number, number]> = [
      [0x2, 0],
      [0x3, this.localMaxStreams],
      [0x4, this.localWindow],
      [0x6, this.localMaxHeaderList],
    ];
    const p = Buffer.allocUnsafe(9 + settings.length * 6);
    writeFrameHeader(p, settings.length * 6, SETTINGS, 0, 0);
    settings.forEach(([id, v], i) => { p.writeUInt16BE(id, 9 + i * 6); p.writeUInt32BE(v, 11 + i * 6); });
    if (role === 'client') this.queue(PREFACE);
    this.queue(p);
    if (this.connWindowTarget > DEFAULT_WINDOW) {
      this.writeWindowUpdate(0, this.connWindowTarget - DEFAULT_WINDOW);
      this.recvWindow = this.connWindowTarget;
    }
    socket.on('data', (d: Buffer) => this.receive(d));
    socket.on('error', () => { /* 'close' follows */ });
    socket.on('close', () => this.onSocketClose());
    socket.on('drain', () => {
      this.unreadAcks = 0;
      if (this.blocked.size > 0 && !this.destroyed) this.flushBlocked();
    });
  }

  /**
   * Server, on a connection upgraded from HTTP/1.1 (`Upgrade: h2c`, RFC 7540 §3.2): the client's HTTP2-Settings
   * payload applies as a SETTINGS frame would (the 101 acknowledges it), and its request becomes stream 1,
   * half-closed (remote): `flat` is that request's header block, pseudo-headers first. The client's preface and
   * SETTINGS frame still follow on the socket. False when the settings are invalid (the connection is then closed
   * with GOAWAY, as for a bad SETTINGS frame).
   */
  acceptUpgrade(settings: Buffer, flat: string[]): boolean {
    if (this.role !== 'server' || this.lastPeerStreamId !== 0) throw new Error('only a new server session takes an upgrade');
    try {
      this.applySettings(settings);
    } catch (err) {
      this.fail(err as H2ConnectionError);
      return false;
    }
    const st = new H2Stream(this, 1);
    st.headersReceived = true;
    st.remoteEnded = true;
    this.streams.set(1, st);
    this.active++;
    this.lastPeerStreamId = 1;
    this.events.onStream?.(st, flat, true);
    st.maybeClose();
    return true;
  }

  /** Client: open a stream with this header block (pseudo-headers first). Throws when the session cannot take one. */
  request(flat: readonly string[], endStream: boolean, handler: H2StreamHandler): H2Stream {
    if (this.role !== 'client') throw new Error('only a client session opens streams');
    if (this.destroyed || this.goawaySent || this.goawayReceived) throw new Error('the HTTP/2 connection is closing');
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const st = new H2Stream(this, id);
    st.handler = handler;
    st.headRequest = flat[0] === ':method' && flat[1] === 'HEAD';
    this.streams.set(id, st);
    this.active++;
    st.sendHeaders(flat, endStream);
    return st;
  }

  /** Streams a client may still open on this connection (the peer's limit). */
  get capacity(): number {
    if (this.destroyed || this.goawaySent || this.goawayReceived || this.closing) return 0;
    return this.peer.maxConcurrentStreams - this.active;
  }

  /** @internal the socket holds more than SOCKET_HIGH_WATER bytes the kernel has not taken (the peer is not reading). */
  congested(): boolean {
    return this.outBytes + this.socket.writableLength > SOCKET_HIGH_WATER;
  }

  /** Send PING; `cb` gets the round trip in ms, or an error if the connection goes first. */
  ping(cb: (err: Error | null, ms: number) => void): void {
    if (this.destroyed) { cb(new Error('connection closed'), 0); return; }
    this.pingSent.push(Date.now());
    this.pings.push(cb);
    const p = Buffer.alloc(17);
    writeFrameHeader(p, 8, PING, 0, 0);
    this.queue(p);
  }

  /** Graceful close: GOAWAY (no new streams), the open ones finish, then the socket closes. */
  close(code: number = H2ERR.NO_ERROR): void {
    if (this.destroyed) return;
    if (!this.goawaySent) this.writeGoaway(code, this.role === 'server' ? this.lastPeerStreamId : 0);
    this.closing = true;
    if (this.active === 0) this.endSocket();
  }

  /** GOAWAY with `code` (if none was sent), every open stream reset, the socket closed. */
  destroy(code: number = H2ERR.NO_ERROR): void {
    if (this.destroyed) return;
    if (!this.goawaySent && code !== H2ERR.NO_ERROR) this.writeGoaway(code, this.lastPeerStreamId);
    this.flush();
    this.destroyed = true;
    this.abortStreams(code === H2ERR.NO_ERROR ? H2ERR.CANCEL : code);
    this.socket.destroy();
  }

  // ---------------------------------------------------------------------------------------------------- output --

  /** @internal */
  writeHeaders(id: number, flat: readonly string[], endStream: boolean): void {
    const block = this.encoder.encode(flat, 9);
    const len = block.length - 9;
    const max = this.peer.maxFrameSize;
    if (len <= max) {
      writeFrameHeader(block, len, HEADERS, END_HEADERS | (endStream ? END_STREAM : 0), id);
      this.queue(block);
      return;
    }
    // Split: HEADERS with the first piece, CONTINUATIONs with the rest, the last one with END_HEADERS. Nothing else
    // is queued in between (one call), so the block reaches the socket in one piece.
    let off = 9;
    let first = true;
    while (off < block.length) {
      const n = Math.min(max, block.length - off);
      const last = off + n >= block.length;
      const f = Buffer.allocUnsafe(9 + n);
      writeFrameHeader(f, n, first ? HEADERS : CONTINUATION, (last ? END_HEADERS : 0) | (first && endStream ? END_STREAM : 0), id);
      block.copy(f, 9, off, off + n);
      this.queue(f);
      off += n;
      first = false;
    }
  }

  /** @internal DATA frames (split at the peer's max frame size); the windows were already charged. */
  writeData(id: number, chunk: Buffer, endStream: boolean): void {
    const max = this.peer.maxFrameSize;
    let off = 0;
    do {
      const n = Math.min(max, chunk.length - off);
      const last = off + n >= chunk.length;
      const h = Buffer.allocUnsafe(9);
      writeFrameHeader(h, n, DATA, last && endStream ? END_STREAM : 0, id);
      this.queue(h);
      if (n > 0) this.queue(n === chunk.length ? chunk : chunk.subarray(off, off + n));
      off += n;
    } while (off < chunk.length);
  }

  /** @internal */
  writeRst(id: number, code: number): void {
    if ((id & 1) === (this.role === 'server' ? 1 : 0)) {
      const r = this.recentlyReset;
      r.add(id);
      if (r.size > 1024) r.delete(r.values().next().value!);
    }
    const f = Buffer.allocUnsafe(13);
    writeFrameHeader(f, 4, RST_STREAM, 0, id);
    f.writeUInt32BE(code, 9);
    this.queue(f);
  }

  /** @internal */
  writeWindowUpdate(id: number, n: number): void {
    const f = Buffer.allocUnsafe(13);
    writeFrameHeader(f, 4, WINDOW_UPDATE, 0, id);
    f.writeUInt32BE(n, 9);
    this.queue(f);
  }

  private writeGoaway(code: number, lastStreamId: number): void {
    this.goawaySent = true;
    const f = Buffer.allocUnsafe(17);
    writeFrameHeader(f, 8, GOAWAY, 0, 0);
    f.writeUInt32BE(lastStreamId & MAX_WINDOW, 9);
    f.writeUInt32BE(code, 13);
    this.queue(f);
  }

  /** Frames of one tick leave in one socket write (a unary call's HEADERS, DATA and trailers are one write). */
  private queue(b: Buffer): void {
    if (this.destroyed) return;
    this.out.push(b);
    this.outBytes += b.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(flushSession, this);
    }
  }

  /** @internal */
  flush(): void {
    this.flushScheduled = false;
    const out = this.out;
    if (out.length === 0 || this.destroyed) return;
    const sock = this.socket;
    if (sock.destroyed || sock.writableEnded) { this.out = []; this.outBytes = 0; return; }
    if (out.length === 1) sock.write(out[0]!);
    else if (this.outBytes <= 64 * 1024) sock.write(Buffer.concat(out, this.outBytes));
    else {
      sock.cork();
      for (const b of out) sock.write(b);
      sock.uncork();
    }
    this.out = [];
    this.outBytes = 0;
  }

  private socketEnding = false;

  private endSocket(): void {
    if (this.socketEnding) return;
    this.socketEnding = true;
    this.flush();
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.end();
    // A peer that never closes its side: do not keep the socket forever.
    const t = setTimeout(() => { if (!this.socket.destroyed) this.socket.destroy(); }, 1000);
    t.unref();
  }

  // ----------------------------------------------------------------------------------------------------- input --

  /** Bytes from the peer (the socket's, or those read before the session took the socket: the preface). */
  receive(d: Buffer): void {
    if (this.destroyed) return;
    let buf = d;
    if (this.buf !== null) {
      buf = Buffer.concat([this.buf, d]);
      this.buf = null;
    }
    let pos = 0;
    if (this.prefaceLeft > 0) {
      const start = PREFACE.length - this.prefaceLeft;
      const n = Math.min(this.prefaceLeft, buf.length);
      if (buf.compare(PREFACE, start, start + n, 0, n) !== 0) {
        this.fail(new H2ConnectionError('invalid connection preface', H2ERR.PROTOCOL_ERROR));
        return;
      }
      this.prefaceLeft -= n;
      pos = n;
    }
    this.lastFrameAt = Date.now();
    const maxFrame = DEFAULT_FRAME; // we never announce a larger SETTINGS_MAX_FRAME_SIZE
    while (buf.length - pos >= 9 && !this.destroyed) {
      const len = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
      if (len > maxFrame) {
        this.fail(new H2ConnectionError(`frame of ${len} bytes over SETTINGS_MAX_FRAME_SIZE`, H2ERR.FRAME_SIZE_ERROR));
        return;
      }
      if (buf.length - pos < 9 + len) break;
      const type = buf[pos + 3]!;
      const flags = buf[pos + 4]!;
      const id = buf.readUInt32BE(pos + 5) & MAX_WINDOW;
      const payload = buf.subarray(pos + 9, pos + 9 + len);
      pos += 9 + len;
      try {
        this.onFrame(type, flags, id, payload);
      } catch (err) {
        if (err instanceof H2ConnectionError) this.fail(err);
        else this.fail(new H2ConnectionError((err as Error).message, H2ERR.INTERNAL_ERROR));
        return;
      }
    }
    if (pos < buf.length && !this.destroyed) this.buf = buf.subarray(pos);
    const rest = this.buf;
    const pending = this.prefaceLeft > 0 || this.hbStream !== 0 || (rest !== null && (rest.length < 4 || rest[3] === HEADERS || rest[3] === CONTINUATION));
    if (!pending) this.headerPendingSince = 0;
    else if (this.headerPendingSince === 0) this.headerPendingSince = this.lastFrameAt;
  }

  private onFrame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.hbStream !== 0 && type !== CONTINUATION) throw new H2ConnectionError('header block interrupted', H2ERR.PROTOCOL_ERROR);
    if (!this.settingsReceived && type !== SETTINGS) throw new H2ConnectionError('the first frame must be SETTINGS', H2ERR.PROTOCOL_ERROR);
    switch (type) {
      case DATA: this.onDataFrame(flags, id, p); break;
      case HEADERS: this.onHeadersFrame(flags, id, p); break;
      case CONTINUATION: this.onContinuation(flags, id, p); break;
      case RST_STREAM: this.onRst(id, p); break;
      case SETTINGS: this.onSettings(flags, id, p); break;
      case PING: this.onPing(flags, id, p); break;
      case GOAWAY: this.onGoaway(id, p); break;
      case WINDOW_UPDATE: this.onWindowUpdate(id, p); break;
      case PRIORITY:
        if (id === 0) throw new H2ConnectionError('PRIORITY on stream 0', H2ERR.PROTOCOL_ERROR);
        if (p.length !== 5) this.streamError(id, H2ERR.FRAME_SIZE_ERROR);
        break;
      case PUSH_PROMISE: throw new H2ConnectionError('PUSH_PROMISE is not accepted (push disabled)', H2ERR.PROTOCOL_ERROR);
      default: break; // unknown frame types are ignored (§4.1)
    }
  }

  private onDataFrame(flags: number, id: number, p: Buffer): void {
    if (id === 0) throw new H2ConnectionError('DATA on stream 0', H2ERR.PROTOCOL_ERROR);
    const total = p.length;
    // Connection-level flow control counts the whole frame, padding included.
    this.recvWindow -= total;
    if (this.recvWindow < 0) throw new H2ConnectionError('connection flow-control window exceeded', H2ERR.FLOW_CONTROL_ERROR);
    this.connConsumed += total;
    if (this.connConsumed >= this.connWindowTarget >> 1) {
      this.recvWindow += this.connConsumed;
      this.writeWindowUpdate(0, this.connConsumed);
      this.connConsumed = 0;
    }
    let data = p;
    if ((flags & PADDED) !== 0) data = unpad(p);
    const end = (flags & END_STREAM) !== 0;
    if (data.length === 0 && !end) {
      if (++this.emptyData > MAX_EMPTY_DATA) throw new H2ConnectionError('too many empty DATA frames', H2ERR.ENHANCE_YOUR_CALM, true);
    } else this.emptyData = 0;
    const st = this.streams.get(id);
    if (st === undefined) {
      if (this.isIdle(id)) throw new H2ConnectionError(`DATA on idle stream ${id}`, H2ERR.PROTOCOL_ERROR);
      // A stream closed (reset) a moment ago: its late frames are dropped (§5.4.2).
      return;
    }
    if (st.remoteEnded || !st.headersReceived) { this.streamError(id, H2ERR.STREAM_CLOSED); return; }
    st.recvWindow -= total;
    if (st.recvWindow < 0) { this.streamError(id, H2ERR.FLOW_CONTROL_ERROR); return; }
    if (st.expectedLength >= 0) {
      st.receivedLength += data.length;
      if (st.receivedLength > st.expectedLength || (end && st.receivedLength !== st.expectedLength)) { this.streamError(id, H2ERR.PROTOCOL_ERROR); return; }
    }
    // Padding never reaches the owner: it is given back with the stream's next WINDOW_UPDATE.
    if (total !== data.length) st.padding(total - data.length);
    if (data.length > 0) st.received(data);
    if (end && !st.closed) st.remoteEnd();
  }

  private onHeadersFrame(flags: number, id: number, p: Buffer): void {
    if (id === 0) throw new H2ConnectionError('HEADERS on stream 0', H2ERR.PROTOCOL_ERROR);
    let frag = p;
    if ((flags & PADDED) !== 0) frag = unpad(p);
    if ((flags & PRIORITY_FLAG) !== 0) {
      if (frag.length < 5) throw new H2ConnectionError('HEADERS too short for its priority', H2ERR.FRAME_SIZE_ERROR);
      // A stream that depends on itself is a stream error (§5.3.1); its block is still decoded (HPACK state).
      if ((frag.readUInt32BE(0) & MAX_WINDOW) === id) { this.streamError(id, H2ERR.PROTOCOL_ERROR); flags |= SELF_DEPENDENT; }
      frag = frag.subarray(5);
    }
    if ((flags & END_HEADERS) !== 0) {
      this.onHeaderBlock(id, flags, frag);
      return;
    }
    this.hbStream = id;
    this.hbFlags = flags;
    this.hbParts = [frag];
    this.hbSize = frag.length;
    this.checkBlockSize();
  }

  private onContinuation(flags: number, id: number, p: Buffer): void {
    if (this.hbStream === 0 || id !== this.hbStream) throw new H2ConnectionError('CONTINUATION without a header block', H2ERR.PROTOCOL_ERROR);
    this.hbParts.push(p);
    this.hbSize += p.length;
    this.checkBlockSize();
    if ((flags & END_HEADERS) === 0) return;
    const block = Buffer.concat(this.hbParts, this.hbSize);
    const sid = this.hbStream;
    const f = this.hbFlags;
    this.hbStream = 0;
    this.hbParts = [];
    this.hbSize = 0;
    this.onHeaderBlock(sid, f, block);
  }

  /** A header block is bounded while it is assembled: an endless CONTINUATION sequence is cut off (CVE-2024-27983). */
  private checkBlockSize(): void {
    // The compressed block of a list within our limit is never larger than the list itself plus HPACK's framing.
    if (this.hbSize > this.localMaxHeaderList * 2 + 1024) throw new H2ConnectionError('header block over the limit (CONTINUATION flood)', H2ERR.ENHANCE_YOUR_CALM, true);
  }

  private onHeaderBlock(id: number, flags: number, block: Buffer): void {
    this.headerPendingSince = 0;
    let flat: string[];
    let tooLarge = false;
    try {
      flat = this.decoder.decode(block, this.localMaxHeaderList);
    } catch (err) {
      if (err instanceof HpackListTooLarge) { flat = []; tooLarge = true; }
      else if (err instanceof HpackError) throw new H2ConnectionError(`HPACK: ${err.message}`, H2ERR.COMPRESSION_ERROR);
      else throw err;
    }
    const end = (flags & END_STREAM) !== 0;
    const st = this.streams.get(id);
    if (this.role === 'server') {
      if (st !== undefined) {
        // Trailers: they end the stream, carry no pseudo-headers, and end the body at its content-length.
        if (tooLarge || !end || st.remoteEnded || (flags & SELF_DEPENDENT) !== 0 || checkTrailers(flat) !== null || (st.expectedLength >= 0 && st.receivedLength !== st.expectedLength)) {
          this.streamError(id, H2ERR.PROTOCOL_ERROR);
          return;
        }
        st.handler.onHeaders(st, flat, true, true);
        if (!st.closed) st.remoteEnd();
        return;
      }
      if (id % 2 === 0) throw new H2ConnectionError(`client opened even stream ${id}`, H2ERR.PROTOCOL_ERROR);
      if (id <= this.lastPeerStreamId) {
        // A stream we reset: its late frames (trailers of a request we answered early) are ignored (§5.1). Any other
        // id at or below the last one is closed or was skipped: a new stream id must grow (§5.1.1).
        if (this.recentlyReset.has(id)) return;
        throw new H2ConnectionError(`HEADERS on stream ${id}, not above the last stream ${this.lastPeerStreamId}`, H2ERR.PROTOCOL_ERROR);
      }
      if (this.active >= this.localMaxStreams && !this.goawaySent) {
        // Past the limit we announced: as nghttp2 does, the connection ends (its open streams reset); the GOAWAY
        // names the last stream taken, not this one.
        throw new H2ConnectionError(`stream ${id} over SETTINGS_MAX_CONCURRENT_STREAMS (${this.localMaxStreams})`, H2ERR.PROTOCOL_ERROR);
      }
      this.lastPeerStreamId = id;
      if (this.goawaySent) { this.peerFault(); this.writeRst(id, H2ERR.REFUSED_STREAM); return; }
      if ((flags & SELF_DEPENDENT) !== 0) return; // reset already
      const ns = new H2Stream(this, id);
      ns.headersReceived = true;
      if (end) ns.remoteEnded = true;
      this.streams.set(id, ns);
      this.active++;
      if (tooLarge) {
        ns.sendHeaders([':status', '431'], true);
        if (!ns.closed) ns.reset(H2ERR.NO_ERROR);
        return;
      }
      const bad = checkRequest(flat);
      if (bad !== null) { this.streamError(id, H2ERR.PROTOCOL_ERROR); return; }
      ns.expectedLength = contentLength(flat);
      if (ns.expectedLength === -2 || (end && ns.expectedLength > 0)) { this.streamError(id, H2ERR.PROTOCOL_ERROR); return; }
      this.events.onStream?.(ns, flat, end);
      if (end) ns.maybeClose();
      return;
    }
    // Client side: a response (1xx skipped), then trailers.
    if (st === undefined) {
      if (this.isIdle(id)) throw new H2ConnectionError(`HEADERS on idle stream ${id}`, H2ERR.PROTOCOL_ERROR);
      return;
    }
    if (tooLarge || (flags & SELF_DEPENDENT) !== 0) { this.streamError(id, H2ERR.PROTOCOL_ERROR); return; }
    if (!st.headersReceived) {
      const status = flat[0] === ':status' && flat[1]!.length === 3 ? Number(flat[1]) : NaN;
      if (!(status >= 100 && status <= 999) || checkResponse(flat) !== null) { this.streamError(id, H2ERR.PROTOCOL_ERROR); return; }
      if (status < 200) {
        if (end || status === 101) this.streamError(id, H2ERR.PROTOCOL_ERROR);
        else st.handler.onInformational?.(st, status);
        return;
      }
      st.headersReceived = true;
      st.expectedLength = st.headRequest || status === 304 ? -1 : contentLength(flat);
      if (st.expectedLength === -2 || (end && st.expectedLength > 0)) { this.streamError(id, H2ERR.PROTOCOL_ERROR); return; }
      st.handler.onHeaders(st, flat, end, false);
      if (end && !st.closed) st.remoteEnd();
      return;
    }
    if (!end || st.remoteEnded || checkTrailers(flat) !== null || (st.expectedLength >= 0 && st.receivedLength !== st.expectedLength)) {
      this.streamError(id, H2ERR.PROTOCOL_ERROR);
      return;
    }
    st.handler.onHeaders(st, flat, true, true);
    if (!st.closed) st.remoteEnd();
  }

  private onRst(id: number, p: Buffer): void {
    if (id === 0) throw new H2ConnectionError('RST_STREAM on stream 0', H2ERR.PROTOCOL_ERROR);
    if (p.length !== 4) throw new H2ConnectionError('RST_STREAM of the wrong size', H2ERR.FRAME_SIZE_ERROR);
    const st = this.streams.get(id);
    if (st === undefined) {
      if (this.isIdle(id)) throw new H2ConnectionError(`RST_STREAM on idle stream ${id}`, H2ERR.PROTOCOL_ERROR);
      return;
    }
    const code = p.readUInt32BE(0);
    // "Clients MUST NOT discard responses as a result of receiving such a RST_STREAM" (§8.1).
    if (code === H2ERR.NO_ERROR && this.role === 'client' && st.remoteEnded) { st.peerStopped(); return; }
    st.close(code, true);
  }

  /** A SETTINGS payload's values, applied (from a SETTINGS frame, or from HTTP2-Settings on an h2c upgrade). */
  private applySettings(p: Buffer): void {
    if (p.length % 6 !== 0) throw new H2ConnectionError('SETTINGS of the wrong size', H2ERR.FRAME_SIZE_ERROR);
    for (let i = 0; i < p.length; i += 6) {
      const key = p.readUInt16BE(i);
      const v = p.readUInt32BE(i + 2);
      switch (key) {
        case 0x1: this.peer.headerTableSize = v; this.encoder.setMaxTableSize(v); break;
        case 0x2:
          if (v > 1) throw new H2ConnectionError('SETTINGS_ENABLE_PUSH must be 0 or 1', H2ERR.PROTOCOL_ERROR);
          if (this.role === 'server' || v === 0) this.peer.enablePush = v === 1;
          else if (this.role === 'client') throw new H2ConnectionError('a server cannot enable push', H2ERR.PROTOCOL_ERROR);
          break;
        case 0x3: this.peer.maxConcurrentStreams = v; break;
        case 0x4: {
          if (v > MAX_WINDOW) throw new H2ConnectionError('SETTINGS_INITIAL_WINDOW_SIZE too large', H2ERR.FLOW_CONTROL_ERROR);
          const delta = v - this.peer.initialWindowSize;
          this.peer.initialWindowSize = v;
          if (delta !== 0) {
            for (const st of this.streams.values()) {
              st.sendWindow += delta;
              if (st.sendWindow > MAX_WINDOW) throw new H2ConnectionError('a stream window overflowed', H2ERR.FLOW_CONTROL_ERROR);
            }
            if (delta > 0) this.flushBlocked();
          }
          break;
        }
        case 0x5:
          if (v < DEFAULT_FRAME || v > 0xffffff) throw new H2ConnectionError('SETTINGS_MAX_FRAME_SIZE out of range', H2ERR.PROTOCOL_ERROR);
          this.peer.maxFrameSize = v;
          break;
        case 0x6: this.peer.maxHeaderListSize = v; break;
        default: break; // unknown settings are ignored
      }
    }
  }

  private onSettings(flags: number, id: number, p: Buffer): void {
    if (id !== 0) throw new H2ConnectionError('SETTINGS on a stream', H2ERR.PROTOCOL_ERROR);
    if ((flags & ACK) !== 0) {
      if (p.length !== 0) throw new H2ConnectionError('SETTINGS ACK with a payload', H2ERR.FRAME_SIZE_ERROR);
      return;
    }
    this.applySettings(p);
    this.ackControl(settingsAck());
    const first = !this.settingsReceived;
    this.settingsReceived = true;
    this.events.onRemoteSettings?.(first);
  }

  private onPing(flags: number, id: number, p: Buffer): void {
    if (id !== 0) throw new H2ConnectionError('PING on a stream', H2ERR.PROTOCOL_ERROR);
    if (p.length !== 8) throw new H2ConnectionError('PING of the wrong size', H2ERR.FRAME_SIZE_ERROR);
    if ((flags & ACK) !== 0) {
      const cb = this.pings.shift();
      const sent = this.pingSent.shift();
      if (cb !== undefined && sent !== undefined) cb(null, Date.now() - sent);
      return;
    }
    const f = Buffer.allocUnsafe(17);
    writeFrameHeader(f, 8, PING, ACK, 0);
    p.copy(f, 9);
    this.ackControl(f);
  }

  /** Answers to SETTINGS and PING. A peer that sends them without reading ours is a flood (CVE-2019-9512/9515). */
  private ackControl(f: Buffer): void {
    const sock = this.socket;
    if (sock.writableLength > 16 * 1024 || this.outBytes > 64 * 1024) {
      if (++this.unreadAcks > MAX_CONTROL_ACKS) throw new H2ConnectionError('control frames sent faster than their answers are read', H2ERR.ENHANCE_YOUR_CALM, true);
    }
    const now = Date.now();
    if (now - this.ackWindowStart >= 1000) {
      this.ackWindowStart = now;
      this.acksInWindow = 0;
    }
    if (++this.acksInWindow > MAX_CONTROL_ACKS) throw new H2ConnectionError('more than 1,000 PING/SETTINGS frames in a second', H2ERR.ENHANCE_YOUR_CALM, true);
    this.queue(f);
  }

  private onGoaway(id: number, p: Buffer): void {
    if (id !== 0) throw new H2ConnectionError('GOAWAY on a stream', H2ERR.PROTOCOL_ERROR);
    if (p.length < 8) throw new H2ConnectionError('GOAWAY too short', H2ERR.FRAME_SIZE_ERROR);
    const last = p.readUInt32BE(0) & MAX_WINDOW;
    const code = p.readUInt32BE(4);
    this.goawayReceived = true;
    this.closing = true;
    if (this.role === 'client') {
      // Streams the server never processed: refused, so that they can be retried elsewhere.
      for (const st of [...this.streams.values()]) if (st.id > last) st.close(H2ERR.REFUSED_STREAM, true);
    }
    this.events.onGoaway?.(code, last);
    if (this.active === 0) this.endSocket();
  }

  private onWindowUpdate(id: number, p: Buffer): void {
    if (p.length !== 4) throw new H2ConnectionError('WINDOW_UPDATE of the wrong size', H2ERR.FRAME_SIZE_ERROR);
    const n = p.readUInt32BE(0) & MAX_WINDOW;
    if (id === 0) {
      if (n === 0) throw new H2ConnectionError('WINDOW_UPDATE of 0', H2ERR.PROTOCOL_ERROR);
      this.sendWindow += n;
      if (this.sendWindow > MAX_WINDOW) throw new H2ConnectionError('connection window overflow', H2ERR.FLOW_CONTROL_ERROR);
      this.flushBlocked();
      return;
    }
    const st = this.streams.get(id);
    if (st === undefined) {
      if (this.isIdle(id)) throw new H2ConnectionError(`WINDOW_UPDATE on idle stream ${id}`, H2ERR.PROTOCOL_ERROR);
      return;
    }
    if (n === 0) { this.streamError(id, H2ERR.PROTOCOL_ERROR); return; }
    st.sendWindow += n;
    if (st.sendWindow > MAX_WINDOW) { this.streamError(id, H2ERR.FLOW_CONTROL_ERROR); return; }
    if (st.outq !== null) st.flushOut();
  }

  private flushBlocked(): void {
    // A snapshot: a stream's onDrain may write, and so queue it again, while this runs.
    for (const st of [...this.blocked]) {
      if (this.sendWindow <= 0 || this.congested()) return;
      if (st.closed) this.blocked.delete(st);
      else st.flushOut();
    }
  }

  /** A stream id the peer has not opened yet (frames other than HEADERS on it are connection errors). */
  private isIdle(id: number): boolean {
    if (this.role === 'server') return id % 2 === 1 ? id > this.lastPeerStreamId : true;
    return id % 2 === 1 ? id >= this.nextStreamId : true;
  }

  /** A stream error for the peer's fault (§5.4.2): RST_STREAM, counted against MAX_PEER_FAULTS. */
  private streamError(id: number, code: number): void {
    this.peerFault();
    const st = this.streams.get(id);
    if (st !== undefined) st.reset(code);
    else this.writeRst(id, code);
  }

  private peerFaults = 0;

  private peerFault(): void {
    if (++this.peerFaults > MAX_PEER_FAULTS) throw new H2ConnectionError(`more than ${MAX_PEER_FAULTS} streams reset for the peer's errors`, H2ERR.ENHANCE_YOUR_CALM, true);
  }

  /** @internal */
  streamClosed(st: H2Stream): void {
    if (this.streams.delete(st.id)) this.active--;
    this.blocked.delete(st);
    if (this.active === 0) {
      this.idleSince = Date.now();
      if (this.closing && !this.destroyed) { this.endSocket(); return; }
      this.events.onIdle?.();
    }
  }

  private abortStreams(code: number): void {
    for (const st of [...this.streams.values()]) {
      if (!this.socket.destroyed && !st.closed && this.goawaySent) this.writeRst(st.id, code);
      st.close(code, false);
    }
  }

  private fail(err: H2ConnectionError): void {
    if (this.destroyed) return;
    this.events.onError?.(err);
    // The open streams are reset (RST_STREAM each), then GOAWAY, then the socket ends.
    const code = err.code;
    if (!this.goawaySent) this.writeGoaway(code, this.lastPeerStreamId);
    for (const st of [...this.streams.values()]) {
      this.writeRst(st.id, H2ERR.CANCEL);
      st.close(H2ERR.CANCEL, false);
    }
    this.flush();
    this.destroyed = true;
    // A flood's sender is not reading: closing now (the kernel resets the connection, the GOAWAY may be lost) stops
    // it at once; otherwise the GOAWAY is given half a second to be read.
    if (err.flood) {
      this.socket.destroy();
      return;
    }
    this.socket.end();
    const t = setTimeout(() => this.socket.destroy(), 500);
    t.unref();
  }

  private onSocketClose(): void {
    const wasDestroyed = this.destroyed;
    this.destroyed = true;
    this.out = [];
    this.outBytes = 0;
    for (const st of [...this.streams.values()]) st.close(H2ERR.CANCEL, !wasDestroyed);
    for (const cb of this.pings.splice(0)) cb(new Error('connection closed'), 0);
    this.events.onClose?.();
  }
}

function flushSession(s: H2Session): void {
  s.flush();
}
