/**
 * The contract between the forwarder and a connection pool to one upstream endpoint, whatever its protocol: the
 * request it is given, the handler it calls back in order, the pool's surface (UpstreamPool, implemented by
 * ./h1-pool.ts and ./h2-pool.ts) and the errors it reports. Types and one error class; no behaviour.
 */
import type net from 'node:net';
import type { Readable } from 'node:stream';

/** What one request tells its caller, in order: onConnect, onHeaders, onData*, then onComplete or onError. */
export interface UpstreamHandler {
  /** Set by the pool before the request is written: the connection has served an earlier request. */
  reused?: boolean;
  /** The request is queued or in flight; `abort` cancels it (onError follows only if it had not finished). */
  onConnect(abort: (err?: Error) => void): void;
  /** Response head (1xx informational heads are skipped). Header names keep their case; values are latin1 strings. */
  onHeaders(status: number, rawHeaders: string[], resume: () => void): boolean;
  /** A body chunk; return false to stop reading from the upstream until `resume` is called. */
  onData(chunk: Buffer): boolean;
  onComplete(trailers: string[] | null): void;
  onError(err: Error): void;
  /** The whole request (head and body) was handed to the socket. */
  onRequestSent?(): void;
  /** A streamed request body chunk was written. */
  onBodySent?(chunk: Buffer): void;
  /** The upstream answered `100 Continue` (to a request that carries `Expect: 100-continue`); other 1xx are skipped. */
  onContinue?(): void;
  /**
   * The upstream answered an upgrade request (`UpstreamRequest.upgrade`) with 101 Switching Protocols: instead of
   * onHeaders, the connection is handed over. It has left the pool for good (nothing of the pool acts on the socket
   * any more; `allowHalfOpen` is on), and `head` holds the bytes the upstream sent after its 101 head in the same
   * read. Without this method a 101 is an error (UND_ERR_UPGRADE), as it is to a request that did not ask.
   */
  onUpgrade?(status: number, rawHeaders: string[], socket: net.Socket, head: Buffer): void;
}

/** What the forwarder needs of a connection pool to one endpoint: H1Pool (HTTP/1.1) or H2Pool (HTTP/2 streams). */
export interface UpstreamPool {
  readonly closed: boolean;
  readonly connections: number;
  dispatch(req: UpstreamRequest, h: UpstreamHandler): void;
  dispatchFresh(req: UpstreamRequest, h: UpstreamHandler): void;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export interface UpstreamRequest {
  method: string;
  /** Origin-form target (path and query). */
  path: string;
  /** Flat [name, value, …] list, including Host; no hop-by-hop framing headers (this layer frames the body). */
  headers: readonly string[];
  body: Buffer | Readable | null;
  /**
   * The request asks to switch protocols (its headers carry Connection: upgrade and Upgrade): a 101 answer goes to
   * the handler's onUpgrade, and the connection is never reused (a tunnel, or closed after a refusal).
   */
  upgrade?: boolean;
}

/** Errors this layer reports, with codes the forwarder classifies (connect failure vs reset). */
export class UpstreamError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}
