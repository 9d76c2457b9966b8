/**
 * One try of a forwarded request: the upstream handler the pool calls (connect, 100 Continue, body sent, response
 * head, 101, data, end, error) and the per-try timeout, each passed on to the request's exchange (./exchange.ts),
 * which decides. Hot path: one Attempt per try; callbacks are methods, its timer takes it as an argument.
 */
import type { Socket } from 'node:net';
import type { AttemptOutcome, Endpoint, ResponseFlag } from '../model.js';
import type { Readable } from 'node:stream';
import type { DownstreamResponse } from './downstream.js';
import type { ForwardContext } from './forward-plan.js';
import type { ShadowTap } from './mirror.js';
import { classify, LOCAL_CODES } from './attempt-outcome.js';
import type { UpstreamHandler } from '../upstream/h1-pool.js';
import type { ClientSpan } from '../telemetry/tracing-api.js';
import { FLAG } from '../errors.js';

/** What an attempt reads and calls on its exchange (./exchange.ts's Exchange, the only implementation). */
export interface AttemptOwner {
  readonly res: DownstreamResponse;
  readonly ctx: ForwardContext;
  body: Buffer | Readable | null;
  /** The streamed body's chunks so far, while within the retry buffer (undefined: not kept). */
  copy: Buffer[] | undefined;
  bytesReceived: number;
  /** Shadows fed from a streamed body, until they are sent or dropped. */
  shadows: ShadowTap | undefined;
  bufferAbandoned(forRetry: boolean): void;
  upstreamReset(protocolError: boolean): void;
  addFlag(f: ResponseFlag | '-'): void;
  onResponseHeaders(a: Attempt, status: number, raw: string[]): boolean;
  onResponseUpgrade(a: Attempt, raw: string[], upstream: Socket, upstreamHead: Buffer): void;
  onResponseData(chunk: Buffer): boolean;
  onResponseEnd(trailers: string[] | null): void;
  onResponseBroken(protocolError?: boolean): void;
  onAttemptFailed(a: Attempt, outcome: AttemptOutcome, noteTimeout: boolean, protocolError?: false | 'upgrade' | 'parse'): void;
}

/** The per-try timer's callback (a module function: no closure per try). */
export function onAttemptTimeout(a: Attempt): void { a.onTimeout(); }

/** The upstream handler of one try. */
export class Attempt implements UpstreamHandler {
  reused = false;
  span: ClientSpan | undefined;
  done = false;
  headersSeen = false;
  bodyFullySent = false;
  timer: NodeJS.Timeout | undefined;
  private abortFn: ((err?: Error) => void) | undefined;
  private resumeFn: (() => void) | undefined;

  constructor(readonly ex: AttemptOwner, readonly ep: Endpoint, readonly n: number, readonly startedAt: number) {}

  clearTimer(): void {
    if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined; }
  }

  abort(): void {
    this.clearTimer();
    this.done = true;
    if (this.abortFn) {
      const f = this.abortFn;
      this.abortFn = undefined;
      try { f(new Error('aborted by proxy')); } catch { /* already finished */ }
    }
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    if (this.done) abort(new Error('aborted by proxy'));
  }

  /** The upstream said 100 Continue: the client, which waits for it (Expect: 100-continue), is told. */
  onContinue(): void {
    if (!this.done) this.ex.res.sendContinue();
  }

  onRequestSent(): void {
    this.bodyFullySent = true;
    // A streamed body went out whole: its shadows leave now.
    const shadows = this.ex.shadows;
    if (shadows !== undefined && !shadows.settled) shadows.end();
  }

  onBodySent(chunk: Buffer): void {
    const ex = this.ex;
    if (ex.body !== null && !Buffer.isBuffer(ex.body)) {
      ex.bytesReceived += chunk.length;
      const copy = ex.copy;
      if (copy !== undefined) {
        if (ex.bytesReceived <= ex.ctx.retryBufferBytes) copy.push(chunk);
        else {
          ex.copy = undefined; // over the retry buffer: this request will not be retried
          ex.bufferAbandoned(true);
        }
      }
      const shadows = ex.shadows;
      if (shadows !== undefined && !shadows.settled && !shadows.chunk(chunk)) ex.bufferAbandoned(false);
    }
  }

  onHeaders(status: number, raw: string[], resume: () => void): boolean {
    if (this.done) return false;
    this.headersSeen = true;
    this.clearTimer();
    this.resumeFn = resume;
    return this.ex.onResponseHeaders(this, status, raw);
  }

  /** 101 to an upgrade request: the upstream connection is ours (the pool let it go). */
  onUpgrade(_status: number, raw: string[], socket: Socket, head: Buffer): void {
    if (this.done) { socket.destroy(); return; }
    this.done = true;
    this.headersSeen = true;
    this.clearTimer();
    this.ex.onResponseUpgrade(this, raw, socket, head);
  }

  onData(chunk: Buffer): boolean {
    if (this.done) return false;
    const ok = this.ex.onResponseData(chunk);
    if (!ok) this.ex.res.once('drain', this.resume);
    return ok;
  }

  private resume = (): void => {
    this.resumeFn?.();
  };

  onComplete(trailers: string[] | null): void {
    if (this.done) return;
    this.done = true;
    this.clearTimer();
    this.ex.onResponseEnd(trailers);
  }

  onError(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.clearTimer();
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const protocol = code === 'UND_ERR_UPGRADE' ? 'upgrade' : code.startsWith('HPE_') ? 'parse' : false;
    const outcome = classify(err);
    if (outcome.kind !== 'connect-failure' && !LOCAL_CODES.has(code)) this.ex.upstreamReset(protocol !== false);
    if (this.headersSeen) {
      this.ex.onResponseBroken(protocol !== false);
      return;
    }
    this.ex.onAttemptFailed(this, outcome, false, protocol);
  }

  onTimeout(): void {
    this.timer = undefined;
    if (this.done) return;
    const headers = this.headersSeen;
    this.abort();
    if (headers) {
      this.ex.addFlag(FLAG.upstreamTimeout);
      this.ex.onResponseBroken();
    } else {
      this.ex.onAttemptFailed(this, { kind: 'timeout' }, true);
    }
  }
}
