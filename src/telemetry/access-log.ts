/**
 * Access log: a buffered, bounded, asynchronous writer that drops (and counts) lines instead of blocking or crashing.
 * Its lines come from ./access-log-format.ts (Envoy `%COMMAND%` format strings, Istio's default TEXT and JSON
 * formats), whose exports are re-exported here.
 */
import * as fs from 'node:fs';
import { Writable } from 'node:stream';
import type { RequestRecord } from '../model.js';
import { compileAccessLogFormat, type CompileOptions } from './access-log-format.js';

export {
  AccessLogFormatError, compileAccessLogFormat, compileJsonFormat, compileTextFormat, ISTIO_JSON_FORMAT, ISTIO_TEXT_FORMAT, type CompileOptions,
} from './access-log-format.js';

/**
 * Writes to a file descriptor through fs.write (libuv threadpool), retrying EAGAIN and partial writes. Needed for
 * stdout: once anything initialises `process.stdout` on a pipe, libuv makes fd 1 non-blocking, and a plain
 * fs.WriteStream then fails with EAGAIN as soon as the reader is slower than the proxy.
 */
export class FdSink extends Writable {
  constructor(
    private readonly fd: number,
    private readonly retryMs = 10,
  ) {
    super({ decodeStrings: true });
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    let off = 0;
    const step = (): void => {
      fs.write(this.fd, chunk, off, chunk.length - off, null, (err, n) => {
        if (err) {
          if (err.code === 'EAGAIN') {
            setTimeout(step, this.retryMs).unref();
            return;
          }
          cb(err);
          return;
        }
        off += n;
        if (off < chunk.length) step();
        else cb();
      });
    };
    step();
  }
}

export interface AccessLoggerOptions extends CompileOptions {
  /** Bytes buffered while the destination is slow before new lines are dropped. Default 4 MiB. */
  maxBufferBytes?: number;
  /** A batch is written when it reaches this size … Default 64 KiB. */
  batchBytes?: number;
  /** … or this long after its first line (ms). Default 100 ms, so `kubectl logs` stays near real time. */
  flushIntervalMs?: number;
  /** After a destination error, wait this long before reopening a file destination (ms). Default 5000. */
  reopenAfterMs?: number;
  /** Clock for the reopen back-off (ms); default Date.now. */
  now?: () => number;
  /** Called once per destination error (e.g. for the control-plane log); never throws into the request path. */
  onError?: (err: NodeJS.ErrnoException) => void;
}

/**
 * Buffered, asynchronous access-log writer. `log()` only formats and appends to an in-memory batch; writes go through
 * an fs WriteStream (libuv threadpool) so a slow pipe or disk never blocks the event loop. When the buffer is full or
 * the destination is broken (EPIPE, ENOSPC, EACCES, ENOENT …) lines are dropped and counted.
 */
export class AccessLogger {
  private readonly format: (rec: RequestRecord) => string;
  private readonly maxBufferBytes: number;
  private readonly batchBytes: number;
  private readonly flushIntervalMs: number;
  private readonly reopenAfterMs: number;
  private batch: string[] = [];
  private batchLen = 0;
  /** Bytes handed to the stream and not yet acknowledged. */
  private inflight = 0;
  private inflightLines = 0;
  private stream: Writable | undefined;
  private broken = false;
  private reopenAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private waiters: Array<() => void> = [];
  private dropped = 0;
  private written = 0;
  private errors = 0;
  lastError: NodeJS.ErrnoException | undefined;

  constructor(
    private readonly target: 'stdout' | string | Writable,
    format: 'text' | 'json' | string = 'text',
    private readonly opts: AccessLoggerOptions = {},
  ) {
    this.format = compileAccessLogFormat(format, opts);
    this.maxBufferBytes = opts.maxBufferBytes ?? 4 * 1024 * 1024;
    this.batchBytes = opts.batchBytes ?? 64 * 1024;
    this.flushIntervalMs = opts.flushIntervalMs ?? 100;
    this.reopenAfterMs = opts.reopenAfterMs ?? 5000;
    this.open();
  }

  /** Lines dropped because the buffer was full, the destination failed, or the logger was closed. */
  droppedLines(): number {
    return this.dropped;
  }
  writtenLines(): number {
    return this.written;
  }
  destinationErrors(): number {
    return this.errors;
  }

  log(rec: RequestRecord): void {
    if (this.closed) {
      this.dropped++;
      return;
    }
    if (this.broken && !this.tryReopen()) {
      this.dropped++;
      return;
    }
    let line: string;
    try {
      line = this.format(rec);
    } catch {
      this.dropped++;
      return;
    }
    // Bound by characters (≈ bytes for log text); cheaper than Buffer.byteLength per line.
    if (this.batchLen + this.inflight + line.length > this.maxBufferBytes) {
      this.dropped++;
      return;
    }
    this.batch.push(line);
    this.batchLen += line.length;
    if (this.batchLen >= this.batchBytes) this.writeBatch();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.writeBatch();
      }, this.flushIntervalMs);
      this.timer.unref();
    }
  }

  /** Resolve when every line logged so far has been written (or dropped). */
  flush(): Promise<void> {
    this.writeBatch();
    if (this.inflight === 0 || this.broken) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Flush, then close a file destination (stdout and caller-supplied streams stay open). Later lines are dropped. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const s = this.stream;
    this.stream = undefined;
    if (s !== undefined && typeof this.target === 'string') {
      await new Promise<void>((resolve) => {
        if (s.destroyed) return resolve();
        s.once('close', () => resolve());
        s.end();
      });
    }
  }

  private open(): void {
    let s: Writable;
    if (typeof this.target !== 'string') s = this.target;
    else if (this.target === 'stdout') {
      // Our own writer on fd 1: process.stdout writes synchronously to pipes on Linux and would block.
      s = new FdSink(1);
    } else {
      s = fs.createWriteStream(this.target, { flags: 'a' });
    }
    s.on('error', (err: NodeJS.ErrnoException) => this.onStreamError(s, err));
    this.stream = s;
    this.broken = false;
  }

  private tryReopen(): boolean {
    // Only file targets can be reopened (the directory may have been created, the disk freed).
    if (typeof this.target !== 'string' || this.target === 'stdout' || (this.opts.now ?? Date.now)() < this.reopenAt) return false;
    this.open();
    return true;
  }

  private onStreamError(s: Writable, err: NodeJS.ErrnoException): void {
    if (s !== this.stream) return;
    this.errors++;
    this.lastError = err;
    this.broken = true;
    this.reopenAt = (this.opts.now ?? Date.now)() + this.reopenAfterMs;
    // Whatever was in flight is lost; so is the pending batch.
    this.dropped += this.batch.length + this.inflightLines;
    this.batch = [];
    this.batchLen = 0;
    this.inflightLines = 0;
    this.inflight = 0;
    this.stream = undefined;
    if (typeof this.target === 'string' && this.target !== 'stdout') s.destroy();
    try {
      this.opts.onError?.(err);
    } catch {
      // the error hook must not crash the proxy
    }
    this.wake();
  }

  private writeBatch(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.batch.length === 0) return;
    const s = this.stream;
    if (s === undefined || this.broken) {
      this.dropped += this.batch.length;
      this.batch = [];
      this.batchLen = 0;
      return;
    }
    const chunk = this.batch.length === 1 ? this.batch[0]! : this.batch.join('');
    const lines = this.batch.length;
    const len = this.batchLen;
    this.batch = [];
    this.batchLen = 0;
    this.inflight += len;
    this.inflightLines += lines;
    // The stream queues internally while the destination is slow; `inflight` bounds that queue via maxBufferBytes.
    s.write(chunk, (err) => {
      if (s !== this.stream) return;
      if (err) return; // reported through the 'error' event
      this.inflight -= len;
      this.inflightLines -= lines;
      this.written += lines;
      if (this.inflight === 0) this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
