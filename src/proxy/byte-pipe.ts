/**
 * The one byte pipe between a downstream and an upstream socket, for TCP proxying, HTTP CONNECT and upgraded
 * connections (WebSocket): both directions with backpressure, a FIN passed on per direction (half-close), a failure
 * on one side passed on to the other as a reset, one idle timeout, byte counters, and one call to its owner once
 * both sockets have closed (the owner makes the record). No closure per pipe or per chunk: the socket listeners are
 * module functions that find their pipe through a symbol on the socket.
 */
import type { Socket } from 'node:net';
import { startReading } from '../http1/socket-io.js';

/** Why a pipe ended: both sides closed (cleanly or by the proxy's stop), idle too long, or a socket failed. */
export type PipeEnd = 'closed' | 'idle_timeout' | 'downstream_error' | 'upstream_error';

/** Told once, after both sockets closed. */
export interface PipeOwner {
  pipeClosed(p: BytePipe): void;
}

const kPipe = Symbol('remora.bytePipe');
type PipedSocket = Socket & { [kPipe]?: BytePipe };

export class BytePipe {
  /** Bytes from the client to the upstream (the held bytes given to start() included). */
  bytesUp = 0;
  /** Bytes from the upstream to the client. */
  bytesDown = 0;
  end: PipeEnd = 'closed';
  /** The error code (ECONNRESET, EPIPE, …) of the side that failed first, when one did. */
  errorCode: string | undefined;
  /** Last time a byte moved (ms, Date.now()). */
  lastActive = 0;
  private open = 2;
  private timer: NodeJS.Timeout | undefined;

  /** `idleMs` 0 = no idle timeout. */
  constructor(readonly client: Socket, readonly upstream: Socket, readonly idleMs: number, private readonly owner: PipeOwner) {}

  /**
   * Start: `clientHead` goes to the upstream and `upstreamHead` to the client first (bytes read before the pipe:
   * a sniffed first read, the bytes after an upgrade head), then both sockets are read. Both sockets must still be
   * open (neither has emitted 'close'), so that both 'close' listeners run.
   */
  start(clientHead: readonly Buffer[] | undefined, upstreamHead: readonly Buffer[] | undefined): void {
    const c = this.client as PipedSocket;
    const u = this.upstream as PipedSocket;
    c.allowHalfOpen = true;
    u.allowHalfOpen = true;
    c[kPipe] = this;
    u[kPipe] = this;
    this.lastActive = Date.now();
    if (clientHead !== undefined) {
      for (const b of clientHead) {
        if (b.length === 0) continue;
        this.bytesUp += b.length;
        if (!u.write(b)) c.pause();
      }
    }
    if (upstreamHead !== undefined) {
      for (const b of upstreamHead) {
        if (b.length === 0) continue;
        this.bytesDown += b.length;
        if (!c.write(b)) u.pause();
      }
    }
    c.on('data', onData);
    u.on('data', onData);
    c.on('drain', onDrain);
    u.on('drain', onDrain);
    c.on('end', onEnd);
    u.on('end', onEnd);
    c.on('error', onError);
    u.on('error', onError);
    c.on('close', onClose);
    u.on('close', onClose);
    // A FIN that came before the pipe (the client ended while the upstream was being chosen) is passed on now.
    if (c.readableEnded) u.end();
    if (u.readableEnded) c.end();
    if (this.idleMs > 0) {
      this.timer = setTimeout(onIdle, this.idleMs, this);
      this.timer.unref();
    }
    // Reading starts on both: a socket paused to hold its bytes (the TCP proxy's client while it connected), or one
    // whose handle stopped reading at an upgrade (the HTTP/1 server's, the upstream pool's).
    if (!c.destroyed) { c.resume(); startReading(c); }
    if (!u.destroyed) { u.resume(); startReading(u); }
  }

  /**
   * Tear both sides down (the first reason given is the one reported). A failure on one side is passed on as a reset
   * (RST, not a FIN that would read as a clean end); the idle timeout and the proxy's stop close both with a FIN.
   */
  fail(why: PipeEnd, code?: string): void {
    if (this.end === 'closed') {
      this.end = why;
      if (code !== undefined) this.errorCode = code;
    }
    if (why === 'upstream_error') resetSocket(this.client);
    else this.client.destroy();
    if (why === 'downstream_error') resetSocket(this.upstream);
    else this.upstream.destroy();
  }

  /** The proxy stops: both sockets closed at once (reported as 'closed'). */
  stop(): void {
    this.client.destroy();
    this.upstream.destroy();
  }

  /** @internal one socket closed: cleanly (its FIN read and ours sent), the other finishes on its own; else it is destroyed. */
  closed(s: Socket): void {
    const other = s === this.client ? this.upstream : this.client;
    if (!s.readableEnded || !s.writableFinished) other.destroy();
    else other.end();
    if (--this.open === 0) this.done();
  }

  private done(): void {
    if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined; }
    this.owner.pipeClosed(this);
  }

  /** @internal the idle timer fired: close if nothing moved for idleMs, else wait out the rest. */
  idleCheck(): void {
    const left = this.lastActive + this.idleMs - Date.now();
    if (left > 0) {
      this.timer = setTimeout(onIdle, left, this);
      this.timer.unref();
      return;
    }
    this.timer = undefined;
    this.fail('idle_timeout');
  }
}

function onData(this: PipedSocket, d: Buffer): void {
  const p = this[kPipe]!;
  p.lastActive = Date.now();
  if (this === p.client) {
    p.bytesUp += d.length;
    if (!p.upstream.write(d)) this.pause();
  } else {
    p.bytesDown += d.length;
    if (!p.client.write(d)) this.pause();
  }
}

/** A side drained what it was given: the other side reads again. */
function onDrain(this: PipedSocket): void {
  const p = this[kPipe]!;
  (this === p.client ? p.upstream : p.client).resume();
}

/** Half-close: a FIN from one side becomes ours to the other (after what was written before it). */
function onEnd(this: PipedSocket): void {
  const p = this[kPipe]!;
  (this === p.client ? p.upstream : p.client).end();
}

function onError(this: PipedSocket, err: NodeJS.ErrnoException): void {
  const p = this[kPipe]!;
  p.fail(this === p.client ? 'downstream_error' : 'upstream_error', err.code ?? err.message);
}

function onClose(this: PipedSocket): void {
  this[kPipe]!.closed(this);
}

function onIdle(p: BytePipe): void {
  p.idleCheck();
}

function resetSocket(s: Socket): void {
  if (s.destroyed) return;
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy(); // not a TCP handle (a TLS socket over one)
  }
}
