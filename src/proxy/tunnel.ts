/**
 * A tunnel between a downstream and an upstream socket after a protocol switch (101 Switching Protocols, e.g.
 * WebSocket): raw bytes both ways with backpressure (the side whose peer's write returned false is paused until
 * that peer drains), a FIN passed on in each direction on its own (half-close), both sockets torn down when either
 * fails or closes abruptly, an idle timeout of its own, and byte counts for the one record its owner makes at close.
 * It holds the two sockets and its owner, nothing of the configuration snapshot, so it outlives reloads.
 */
import type { Socket } from 'node:net';
import { startReading } from '../http1/socket-io.js';

/** Why a tunnel ended: both sides closed (cleanly or by the proxy's stop), idle too long, or a socket failed. */
export type TunnelEnd = 'closed' | 'idle_timeout' | 'downstream_error' | 'upstream_error';

/** Told once, after both sockets closed. */
export interface TunnelOwner {
  tunnelClosed(t: Tunnel): void;
}

/** The sidecar's tunnels: the idle timeout they get, and how many are open and were opened, per listener. */
export class Tunnels {
  readonly active = { outbound: 0, inbound: 0 };
  readonly total = { outbound: 0, inbound: 0 };

  /** `idleTimeoutMs` 0 = no idle timeout. */
  constructor(readonly idleTimeoutMs: number) {}
}

/** Envoy's stream idle timeout for upgraded connections: 1 h (`--tunnel-idle-timeout`). */
export const DEFAULT_TUNNEL_IDLE_TIMEOUT_MS = 3_600_000;

export class Tunnel {
  /** Bytes from the client to the upstream (what the client sent after its request head included). */
  bytesUp = 0;
  /** Bytes from the upstream to the client (what the upstream sent after its 101 head included). */
  bytesDown = 0;
  end: TunnelEnd = 'closed';
  private open = 2;
  private lastActive = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly client: Socket, readonly upstream: Socket, private readonly idleMs: number, private readonly owner: TunnelOwner) {}

  /**
   * Start: `clientHead` goes to the upstream and `upstreamHead` to the client first (bytes each side sent right after
   * the heads, read with them), then both sockets are read. The client's reading was stopped at its upgrade request
   * (Http1Server) and is started here; the upstream's handle kept reading.
   */
  start(clientHead: readonly Buffer[], upstreamHead: Buffer): void {
    const c = this.client;
    const u = this.upstream;
    c.allowHalfOpen = true;
    u.allowHalfOpen = true;
    this.lastActive = Date.now();
    for (const b of clientHead) {
      if (b.length === 0) continue;
      this.bytesUp += b.length;
      if (!u.write(b)) c.pause();
    }
    if (upstreamHead.length > 0) {
      this.bytesDown += upstreamHead.length;
      if (!c.write(upstreamHead)) u.pause();
    }
    c.on('data', (d: Buffer) => {
      this.bytesUp += d.length;
      this.lastActive = Date.now();
      if (!u.write(d)) c.pause();
    });
    u.on('data', (d: Buffer) => {
      this.bytesDown += d.length;
      this.lastActive = Date.now();
      if (!c.write(d)) u.pause();
    });
    u.on('drain', () => c.resume());
    c.on('drain', () => u.resume());
    // Half-close: a FIN from one side becomes ours to the other (after what was written before it); the other way
    // stays open until its own FIN.
    c.on('end', () => u.end());
    u.on('end', () => c.end());
    c.on('error', () => this.fail('downstream_error'));
    u.on('error', () => this.fail('upstream_error'));
    c.on('close', () => this.closed(c, u));
    u.on('close', () => this.closed(u, c));
    if (this.idleMs > 0) {
      this.timer = setTimeout(onIdle, this.idleMs, this);
      this.timer.unref();
    }
    // Neither socket has emitted 'close' yet (the client's connection is checked by switchProtocols, the upstream's is
    // handed over from inside its read), so both 'close' listeners above will run.
    startReading(c);
    startReading(u);
  }

  /**
   * Tear both sides down (the first reason given is the one reported). A reset on one side is passed on as a reset
   * (RST, not a FIN that would read as a clean end); the idle timeout closes both with a FIN.
   */
  fail(why: TunnelEnd): void {
    if (this.end === 'closed') this.end = why;
    if (why === 'upstream_error') resetSocket(this.client);
    else this.client.destroy();
    if (why === 'downstream_error') resetSocket(this.upstream);
    else this.upstream.destroy();
  }

  /** One socket closed: cleanly (its FIN read and ours sent), the other finishes on its own; otherwise it is destroyed. */
  private closed(s: Socket, other: Socket): void {
    if (!s.readableEnded || !s.writableFinished) other.destroy();
    else other.end();
    if (--this.open === 0) this.done();
  }

  private done(): void {
    if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined; }
    this.owner.tunnelClosed(this);
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

function resetSocket(s: Socket): void {
  if (s.destroyed) return;
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy(); // not a TCP handle (cannot happen for the proxy's sockets)
  }
}

function onIdle(t: Tunnel): void {
  t.idleCheck();
}
