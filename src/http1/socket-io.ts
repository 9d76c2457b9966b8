/**
 * Socket I/O for the data plane without the stream machinery: writes go straight to the libuv handle (as
 * net.Socket's own `_writeGeneric` does, minus the Writable bookkeeping and its per-write `process.nextTick`),
 * and reads can be stopped and started on the handle (for sockets whose bytes an llhttp parser consumes natively).
 * Node 20's tick processing allocates a Map on every drain of the nextTick queue, so a request path that never
 * schedules a tick saves that and the Writable/Readable objects (measured in docs/architecture.md).
 * Uses `process.binding('stream_wrap')` (WriteWrap, the last-write-was-async flag): on the process.binding
 * allow-list, without a runtime deprecation warning in Node 20, and covered by the socket tests.
 */
import type { Socket } from 'node:net';

interface WriteReq {
  handle: unknown;
  oncomplete: (status: number) => void;
  async: boolean;
  buffer: Buffer | null;
  sock: Socket | null;
}

interface StreamHandle {
  writeLatin1String(req: WriteReq, s: string): number;
  writeBuffer(req: WriteReq, b: Buffer): number;
  readStart(): number;
  readStop(): number;
  reading?: boolean;
}

const sw = (process as unknown as { binding(name: string): unknown }).binding('stream_wrap') as {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
};
const { WriteWrap, streamBaseState, kLastWriteWasAsync } = sw;

const kPending = Symbol('remora.pendingWrites');
const kOnDrain = Symbol('remora.onDrain');

type DirectSocket = Socket & { _handle: StreamHandle | null; [kPending]?: number; [kOnDrain]?: (() => void) | undefined };

/** Called (once) when every direct write that went asynchronous has reached the kernel. */
export function onDirectDrain(sock: Socket, fn: (() => void) | undefined): void {
  (sock as DirectSocket)[kOnDrain] = fn;
}

/** Bytes handed to the handle that the kernel has not taken yet (async direct writes), as a count of writes. */
export function pendingDirectWrites(sock: Socket): number {
  return (sock as DirectSocket)[kPending] ?? 0;
}

function afterWrite(this: WriteReq, status: number): void {
  const sock = this.sock as DirectSocket | null;
  this.buffer = null;
  this.sock = null;
  if (sock === null) return;
  const n = (sock[kPending] ?? 1) - 1;
  sock[kPending] = n;
  if (status < 0) {
    sock.destroy(new Error(`write failed (${status})`));
    return;
  }
  if (n === 0) {
    const f = sock[kOnDrain];
    if (f !== undefined) f();
  }
}

/**
 * Write `data` (a latin1 string or bytes) to the socket. Returns false when the kernel did not take all of it
 * (the rest is queued in libuv; `onDirectDrain`'s function runs when it has). Falls back to `sock.write` while the
 * socket is connecting or its Writable side still holds data, so byte order is always the call order.
 */
export function writeDirect(sock: Socket, data: string | Buffer): boolean {
  const s = sock as DirectSocket;
  const h = s._handle;
  // A TLS socket (mTLS to another sidecar) is written through its Writable side: the TLS layer holds what is written
  // before its handshake completes.
  if (h === null || s.connecting || s.writableLength > 0 || s.writableEnded || s.destroyed || (s as { encrypted?: boolean }).encrypted === true) {
    return typeof data === 'string' ? sock.write(data, 'latin1') : sock.write(data);
  }
  const req = new WriteWrap();
  req.handle = h;
  req.oncomplete = afterWrite;
  req.async = false;
  req.buffer = null;
  req.sock = null;
  const err = typeof data === 'string' ? h.writeLatin1String(req, data) : h.writeBuffer(req, data);
  if (err !== 0) {
    sock.destroy(new Error(`write failed (${err})`));
    return false;
  }
  if (streamBaseState[kLastWriteWasAsync] === 0) return (s[kPending] ?? 0) === 0;
  // The kernel's buffer is full: libuv keeps the rest and calls oncomplete. Keep the bytes alive until then.
  req.async = true;
  req.sock = sock;
  if (typeof data !== 'string') req.buffer = data;
  s[kPending] = (s[kPending] ?? 0) + 1;
  return false;
}

/** Stop reading from the socket's handle (a consumed socket's Readable side never sees data, so it cannot pause). */
export function stopReading(sock: Socket): void {
  const h = (sock as DirectSocket)._handle;
  if (h === null || h.reading === false) return;
  h.reading = false;
  h.readStop();
}

export function startReading(sock: Socket): void {
  const h = (sock as DirectSocket)._handle;
  if (h === null || h.reading === true || sock.destroyed) return;
  h.reading = true;
  h.readStart();
}
