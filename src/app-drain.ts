/**
 * Graceful drain of `remora run`: the requests in flight on the proxy listeners, the shutdown sequence (SIGTERM,
 * /quitquitquit, the app's exit) that stops taking inbound work and waits for them, for idle keep-alive connections
 * and for proxied TCP connections up to --drain-seconds before stopping, and the --exit-on-app-exit watch that starts it.
 */
import { connect as netConnect } from 'node:net';
import type { Logger } from './util/logger.js';

/** Drain: how long idle inbound keep-alive connections stay open (a request already sent on one is still served). */
export const DRAIN_IDLE_GRACE_MS = 1000;

/** Requests in flight on the proxy listeners: counted up when one arrives, down when its response closes. */
export class InFlight {
  active = 0;
  /** Called once `active` is back to 0 (the drain waiting for the last response). */
  readonly waiters: Array<() => void> = [];

  /** The 'close' listener of each response. */
  readonly ended = (): void => {
    this.active--;
    if (this.active === 0 && this.waiters.length > 0) for (const w of this.waiters.splice(0)) w();
  };
}

/** What the shutdown sequence drives: the sidecar (src/app.ts), as this module needs it. */
export interface DrainTarget {
  readonly logger: Logger;
  readonly inFlight: InFlight;
  readonly drainSeconds: number;
  /** Stop taking new inbound work: ready turns 503, inbound answers Connection: close and stops accepting. */
  drainListeners(inboundOnly: boolean): void;
  /** Connections open on the inbound listener. */
  inboundConnections(): Promise<number>;
  /** Proxied TCP connections open (both listeners). */
  tcpActive(): number;
  stop(): Promise<void>;
  onExit(code: number): void;
}

/** SIGTERM / quitquitquit: drain inbound, keep outbound for the app, exit when idle or at the deadline. */
export async function drainThenStop(s: DrainTarget, reason: string): Promise<number> {
  s.logger.log('info', `draining (${reason}); up to ${s.drainSeconds}s`, { active: s.inFlight.active });
  s.drainListeners(true);
  const deadline = s.drainSeconds * 1000;
  const until = Date.now() + deadline;
  if (s.inFlight.active > 0) {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, deadline);
      s.inFlight.waiters.push(() => { clearTimeout(t); resolve(); });
    });
  }
  // Inbound keep-alive connections still open get the idle grace (see drainListeners) before stop() cuts them.
  const graceEnd = Math.min(until, Date.now() + DRAIN_IDLE_GRACE_MS);
  while (Date.now() < graceEnd && (await s.inboundConnections()) > 0) await new Promise((r) => setTimeout(r, 25));
  // Proxied TCP connections (a database session, a tunnel) are not cut before the drain deadline either.
  while (s.tcpActive() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  await s.stop();
  s.logger.log('info', 'exiting', { active: s.inFlight.active });
  s.onExit(0);
  return 0;
}

/** --exit-on-app-exit: once the app has listened, exit when its port stops accepting for `seconds` (Jobs, pain 4). */
export function watchApp(port: number, seconds: number, logger: Logger, shutdown: (reason: string) => Promise<number>): void {
  let seenUp = false;
  let downSince = 0;
  const timer = setInterval(() => {
    const sock = netConnect({ port, host: '127.0.0.1' });
    sock.setTimeout(500);
    const result = (up: boolean): void => {
      sock.destroy();
      const now = Date.now();
      if (up) { seenUp = true; downSince = 0; return; }
      if (!seenUp) return;
      if (downSince === 0) downSince = now;
      if (now - downSince >= seconds * 1000) {
        clearInterval(timer);
        logger.log('info', `app port ${port} stopped listening ${seconds}s ago: exiting`);
        void shutdown('app exited');
      }
    };
    sock.once('connect', () => result(true));
    sock.once('error', () => result(false));
    sock.once('timeout', () => result(false));
  }, 500);
  timer.unref();
}

