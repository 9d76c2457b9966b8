/**
 * HTTP/2 on demand: the codec (./session.ts, ./hpack.ts), the listener (./server.ts) and the upstream pool
 * (../upstream/h2-pool.ts) are imported the first time a connection, an h2c upgrade or an upstream request needs them,
 * so a sidecar that only ever sees HTTP/1 never loads them (about 1–2 MB of private memory; docs/performance.md).
 * Until the import is done (once, a few ms), sockets wait paused and upstream requests wait queued.
 */
import type net from 'node:net';
import type { Http1Request, Http1Response, OriginalDestination } from '../http1/server.js';
import type { Http2Handler, Http2Listener, Http2ListenerOptions, Http2ListenerStats } from './server.js';
import type { H2Pool, H2PoolOptions } from '../upstream/h2-pool.js';
import type { UpstreamHandler, UpstreamPool, UpstreamRequest } from '../upstream/h1-pool.js';
import { h2cSettings } from './h2c.js';

interface Http2Modules {
  Http2Listener: typeof Http2Listener;
  H2Pool: typeof H2Pool;
}

let loaded: Http2Modules | undefined;
let loading: Promise<Http2Modules> | undefined;

/** The HTTP/2 modules, imported on the first call. */
export function loadHttp2(): Promise<Http2Modules> {
  loading ??= Promise.all([import('./server.js'), import('../upstream/h2-pool.js')]).then(([server, pool]) => {
    loaded = { Http2Listener: server.Http2Listener, H2Pool: pool.H2Pool };
    return loaded;
  });
  return loading;
}

const NO_STATS: Readonly<Http2ListenerStats> = Object.freeze({ sessions: 0, protocolErrors: 0, prematureResetCloses: 0, streamsResetByPeer: 0, headersTimeouts: 0, streamIdleTimeouts: 0 });

/**
 * The HTTP/2 side of a data-plane listener with the surface of `Http2Listener`, whose listener is made when the first
 * HTTP/2 connection (or h2c upgrade) arrives.
 */
export class LazyHttp2Listener {
  private real: Http2Listener | undefined;
  private draining = false;

  constructor(private readonly handler: Http2Handler, private readonly opts: Http2ListenerOptions = {}) {}

  /** The listener's counters (zeros until it exists). */
  get stats(): Readonly<Http2ListenerStats> {
    return this.real?.stats ?? NO_STATS;
  }

  get connections(): number {
    return this.real?.connections ?? 0;
  }

  /** Serve HTTP/2 on an accepted socket; `head` holds the bytes already read from it (the preface). */
  serveSocket(sock: net.Socket, head: Buffer | undefined, originalDst: OriginalDestination | undefined): void {
    if (this.real !== undefined) {
      this.real.serveSocket(sock, head, originalDst);
      return;
    }
    // Nothing is read until the session exists (serveSocket resumes the socket); a socket closed meanwhile is simply
    // served as closed.
    sock.pause();
    this.listener().then(
      (l) => l.serveSocket(sock, head, originalDst),
      () => sock.destroy(),
    );
  }

  /**
   * An HTTP/1.1 request asking for h2c: true when it is (or, once the codec is loaded, will be) taken as HTTP/2;
   * false, with nothing done, when it goes on as HTTP/1.1 (see Http2Listener.upgrade). `otherwise` serves it as
   * HTTP/1.1 should the listener not take it after all (a drain began while the codec loaded).
   */
  upgrade(req: Http1Request, res: Http1Response, otherwise: (req: Http1Request, res: Http1Response) => void): boolean {
    if (this.real !== undefined) return this.real.upgrade(req, res);
    if (!req.upgrade || this.draining || (req.socket as { encrypted?: boolean }).encrypted === true || h2cSettings(req.rawHeaders) === null) return false;
    this.listener().then(
      (l) => { if (!l.upgrade(req, res)) otherwise(req, res); },
      () => res.destroy(),
    );
    return true;
  }

  /** Drain: GOAWAY to every session, and to new ones at once. */
  closeIdleConnections(): void {
    this.draining = true;
    this.real?.closeIdleConnections();
  }

  closeAllConnections(): void {
    this.real?.closeAllConnections();
  }

  /** GOAWAY to the sessions `which` selects (see Http2Listener.closeWhere); none before the first session. */
  closeWhere(which: Parameters<Http2Listener['closeWhere']>[0]): number {
    return this.real?.closeWhere(which) ?? 0;
  }

  private async listener(): Promise<Http2Listener> {
    const m = await loadHttp2();
    if (this.real === undefined) {
      this.real = new m.Http2Listener(this.handler, this.opts);
      if (this.draining) this.real.closeIdleConnections();
    }
    return this.real;
  }
}

/**
 * An HTTP/2 upstream pool whose `H2Pool` is made once the modules are loaded: requests dispatched before then wait in
 * order and are dispatched to it then (a request whose attempt ended meanwhile is aborted by its handler on
 * onConnect, as with any queued request). With the modules already loaded, callers make the H2Pool directly.
 */
export class PendingH2Pool implements UpstreamPool {
  private real: UpstreamPool | undefined;
  private queue: Array<{ fresh: boolean; req: UpstreamRequest; h: UpstreamHandler }> = [];
  private closing: 'close' | 'destroy' | undefined;

  constructor(address: string, port: number, opts: H2PoolOptions) {
    loadHttp2().then(
      (m) => {
        const real = new m.H2Pool(address, port, opts);
        this.real = real;
        for (const q of this.queue.splice(0)) {
          if (q.fresh) real.dispatchFresh(q.req, q.h); else real.dispatch(q.req, q.h);
        }
        if (this.closing === 'close') void real.close();
        else if (this.closing === 'destroy') void real.destroy();
      },
      (err: Error) => {
        for (const q of this.queue.splice(0)) q.h.onError(new Error(`the HTTP/2 codec could not be loaded: ${err.message}`));
      },
    );
  }

  get closed(): boolean {
    return this.real?.closed ?? this.closing !== undefined;
  }

  get connections(): number {
    return this.real?.connections ?? 0;
  }

  dispatch(req: UpstreamRequest, h: UpstreamHandler): void {
    if (this.real !== undefined) this.real.dispatch(req, h);
    else this.queue.push({ fresh: false, req, h });
  }

  dispatchFresh(req: UpstreamRequest, h: UpstreamHandler): void {
    if (this.real !== undefined) this.real.dispatchFresh(req, h);
    else this.queue.push({ fresh: true, req, h });
  }

  async close(): Promise<void> {
    if (this.real !== undefined) return this.real.close();
    this.closing ??= 'close';
  }

  async destroy(): Promise<void> {
    if (this.real !== undefined) return this.real.destroy();
    this.closing = 'destroy';
  }
}

/** An HTTP/2 pool to `address:port`: the H2Pool itself once the modules are loaded, else one that waits for them. */
export function makeH2Pool(address: string, port: number, opts: H2PoolOptions): UpstreamPool {
  return loaded !== undefined ? new loaded.H2Pool(address, port, opts) : new PendingH2Pool(address, port, opts);
}
