/**
 * One HTTP/2 stream (RFC 9113 §5.1, §5.2): `H2Stream`, its half-closed and closed states, its send and receive
 * flow-control windows, the data queued behind them and the reads held while paused; and `H2StreamHandler`, what it
 * tells its owner. It knows its connection (./session.ts) only as a `StreamSession`: the frames it writes, the
 * windows it shares.
 */
import { H2ERR, type H2Settings } from './frames.js';

/**
 * What a stream needs of its connection, the `H2Session` that makes it (./session.ts, which implements this): the
 * peer's settings and our window, the connection's send window and blocked set, and the frames a stream writes.
 */
export interface StreamSession {
  readonly role: 'server' | 'client';
  readonly peer: H2Settings;
  readonly localWindow: number;
  sendWindow: number;
  readonly blocked: Set<H2Stream>;
  congested(): boolean;
  writeHeaders(id: number, flat: readonly string[], endStream: boolean): void;
  writeData(id: number, chunk: Buffer, endStream: boolean): void;
  writeRst(id: number, code: number): void;
  writeWindowUpdate(id: number, n: number): void;
  streamClosed(st: H2Stream): void;
}

/** What a stream tells its owner. One object per stream (the owner itself), not a closure per event. */
export interface H2StreamHandler {
  /**
   * A header block arrived. Client: the response's final headers (1xx are skipped), then trailers. Server: only
   * trailers (the request's headers come with `onStream`). `flat` holds [name, value, …] with pseudo-headers.
   */
  onHeaders(stream: H2Stream, flat: string[], endStream: boolean, trailers: boolean): void;
  onData(stream: H2Stream, chunk: Buffer): void;
  /** The peer ended its side (END_STREAM), after its last data or trailers. */
  onEnd(stream: H2Stream): void;
  /** The stream is closed: both sides ended (code 0, byPeer false), or reset by either side or by the connection. */
  onClose(stream: H2Stream, code: number, byPeer: boolean): void;
  /** Flow-control room again after `write` returned false. */
  onDrain(stream: H2Stream): void;
  /** Client: an informational (1xx) response header block, e.g. `100 Continue`, before the final one. */
  onInformational?(stream: H2Stream, status: number): void;
}

const NO_HANDLER: H2StreamHandler = {
  onHeaders() {},
  onData() {},
  onEnd() {},
  onClose() {},
  onDrain() {},
};

/** One stream. Writes are queued behind the flow-control windows; reads can be paused (no WINDOW_UPDATE then). */
export class H2Stream {
  handler: H2StreamHandler = NO_HANDLER;
  /** Free slot for the owner (the request/response pair, the pool's exchange). */
  owner: unknown = undefined;
  /** We sent END_STREAM. */
  localEnded = false;
  /** The peer sent END_STREAM. */
  remoteEnded = false;
  closed = false;
  /** The reset code (ours or the peer's), 0 for a clean close. */
  rstCode = 0;
  resetByPeer = false;
  headersSent = false;
  /** Client: the final response headers arrived (later header blocks are trailers). Server: the request's did. */
  headersReceived = false;
  /** Peer's content-length of this message, -1 when none (checked against the DATA received, §8.1.1). */
  expectedLength = -1;
  /** Client: the request was HEAD (its response's content-length describes no body). */
  headRequest = false;
  receivedLength = 0;
  /** Bytes we may still send (the peer's window for this stream). */
  sendWindow: number;
  /** Bytes the peer may still send us before our next WINDOW_UPDATE. */
  recvWindow: number;
  /** Bytes delivered to the owner since our last WINDOW_UPDATE for this stream. */
  private consumed = 0;
  paused = false;
  private inq: Buffer[] | null = null;
  private inEnd = false;
  /** Data (and a pending end / trailers) waiting for window. */
  outq: Buffer[] | null = null;
  private outEnd = false;
  private outTrailers: string[] | null = null;
  needDrain = false;

  constructor(readonly session: StreamSession, readonly id: number) {
    this.sendWindow = session.peer.initialWindowSize;
    this.recvWindow = session.localWindow;
  }

  /** Send the header block (request headers, response headers); `endStream` when no body follows. */
  sendHeaders(flat: readonly string[], endStream: boolean): void {
    if (this.closed || this.localEnded) return;
    this.headersSent = true;
    if (endStream) this.localEnded = true;
    this.session.writeHeaders(this.id, flat, endStream);
    if (endStream) this.maybeClose();
  }

  /** Send an informational (1xx) header block, e.g. `100 Continue`, before the final headers. */
  sendInformational(flat: readonly string[]): void {
    if (this.closed || this.localEnded || this.headersSent) return;
    this.session.writeHeaders(this.id, flat, false);
  }

  /** Send body bytes. False: they are queued behind flow control; `onDrain` follows when they are sent. */
  write(chunk: Buffer): boolean {
    if (this.closed || this.localEnded) return false;
    if (chunk.length === 0) return this.outq === null;
    if (this.outq !== null) {
      this.outq.push(chunk);
      this.needDrain = true;
      return false;
    }
    const s = this.session;
    // A peer that does not read its socket is no better than a closed window: the bytes wait here, not in memory
    // the socket grows without bound (node:http2 had maxSessionMemory for this).
    const room = s.congested() ? 0 : Math.min(this.sendWindow, s.sendWindow);
    if (chunk.length <= room) {
      this.sendWindow -= chunk.length;
      s.sendWindow -= chunk.length;
      s.writeData(this.id, chunk, false);
      return true;
    }
    if (room > 0) {
      this.sendWindow -= room;
      s.sendWindow -= room;
      s.writeData(this.id, chunk.subarray(0, room), false);
      chunk = chunk.subarray(room);
    }
    this.outq = [chunk];
    this.needDrain = true;
    s.blocked.add(this);
    return false;
  }

  /** End our side: the last bytes (if any), then trailers (HEADERS with END_STREAM) or an empty END_STREAM DATA frame. */
  end(chunk?: Buffer, trailers?: readonly string[] | null): void {
    if (this.closed || this.localEnded) return;
    if (chunk !== undefined && chunk.length > 0) this.write(chunk);
    if (this.outq !== null) {
      this.outEnd = true;
      this.outTrailers = trailers === undefined || trailers === null ? null : trailers.slice();
      return;
    }
    this.finish(trailers ?? null);
  }

  private finish(trailers: readonly string[] | null): void {
    this.localEnded = true;
    if (trailers !== null) this.session.writeHeaders(this.id, trailers, true);
    else this.session.writeData(this.id, EMPTY, true);
    this.maybeClose();
  }

  /** @internal send what the windows allow now; true when the queue emptied. */
  flushOut(): boolean {
    const q = this.outq;
    if (q === null) return true;
    const s = this.session;
    while (q.length > 0) {
      const room = s.congested() ? 0 : Math.min(this.sendWindow, s.sendWindow);
      if (room <= 0) return false;
      const c = q[0]!;
      if (c.length <= room) {
        q.shift();
        this.sendWindow -= c.length;
        s.sendWindow -= c.length;
        s.writeData(this.id, c, false);
      } else {
        q[0] = c.subarray(room);
        this.sendWindow -= room;
        s.sendWindow -= room;
        s.writeData(this.id, c.subarray(0, room), false);
        return false;
      }
    }
    this.outq = null;
    // Out of the blocked set before the owner hears of it: a write in its onDrain that queues again adds it back.
    s.blocked.delete(this);
    if (this.outEnd) {
      this.outEnd = false;
      const t = this.outTrailers;
      this.outTrailers = null;
      this.finish(t);
    }
    if (this.needDrain && !this.closed) {
      this.needDrain = false;
      this.handler.onDrain(this);
    }
    return true;
  }

  /** Bytes queued behind flow control. */
  get queuedBytes(): number {
    let n = 0;
    if (this.outq !== null) for (const c of this.outq) n += c.length;
    return n;
  }

  /** Stop taking data: no WINDOW_UPDATE for this stream until `resume` (what already came is kept). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const q = this.inq;
    if (q !== null) {
      while (q.length > 0 && !this.paused && !this.closed) this.deliver(q.shift()!);
      if (q.length > 0) return;
      this.inq = null;
    }
    if (this.paused) return;
    if (this.inEnd) {
      this.inEnd = false;
      this.handler.onEnd(this);
      this.maybeClose();
      return;
    }
    this.grant();
  }

  /**
   * @internal the server sent RST_STREAM NO_ERROR after its complete response (RFC 9113 §8.1: it needs no more of
   * the request): our side stops sending, and the response, some of it perhaps still held by pause(), is delivered.
   */
  peerStopped(): void {
    this.localEnded = true;
    this.outq = null;
    this.outEnd = false;
    this.outTrailers = null;
    this.session.blocked.delete(this);
    this.maybeClose();
  }

  /** @internal padding bytes of a DATA frame: counted as consumed at once. */
  padding(n: number): void {
    this.consumed += n;
    if (!this.paused) this.grant();
  }

  /** @internal data from the peer (flow-control accounting done by the session). */
  received(chunk: Buffer): void {
    if (this.paused || this.inq !== null) {
      (this.inq ??= []).push(chunk);
      return;
    }
    this.deliver(chunk);
  }

  private deliver(chunk: Buffer): void {
    this.consumed += chunk.length;
    this.handler.onData(this, chunk);
    if (!this.paused) this.grant();
  }

  /** @internal the peer's END_STREAM, after its data. */
  remoteEnd(): void {
    this.remoteEnded = true;
    if (this.paused || this.inq !== null) {
      this.inEnd = true;
      return;
    }
    this.handler.onEnd(this);
    this.maybeClose();
  }

  /** WINDOW_UPDATE once half the stream's window has been consumed (fewer frames than one per DATA frame). */
  private grant(): void {
    if (this.consumed === 0 || this.remoteEnded || this.closed) return;
    const s = this.session;
    if (this.consumed >= s.localWindow >> 1 || this.recvWindow < s.localWindow >> 1) {
      const n = this.consumed;
      this.consumed = 0;
      this.recvWindow += n;
      s.writeWindowUpdate(this.id, n);
    }
  }

  /** Reset the stream (RST_STREAM with `code`); the owner's onClose follows with byPeer false. */
  reset(code: number = H2ERR.CANCEL): void {
    if (this.closed) return;
    this.session.writeRst(this.id, code);
    this.close(code, false);
  }

  /** @internal */
  maybeClose(): void {
    if (this.closed || !this.localEnded) return;
    if (this.remoteEnded) {
      // A server whose response is complete needs nothing more of the request: request bytes still held by pause()
      // are dropped (else the stream would stay open until its owner read them, which it no longer will).
      if ((this.inq === null && !this.inEnd) || this.session.role === 'server') this.close(0, false);
    } else if (this.session.role === 'server') {
      // The response is complete before the request: RST_STREAM NO_ERROR tells the client to stop sending (§8.1).
      this.session.writeRst(this.id, H2ERR.NO_ERROR);
      this.close(0, false);
    }
  }

  /** @internal */
  close(code: number, byPeer: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.rstCode = code;
    this.resetByPeer = byPeer;
    this.outq = null;
    this.inq = null;
    this.session.streamClosed(this);
    this.handler.onClose(this, code, byPeer);
  }
}

const EMPTY = Buffer.alloc(0);
