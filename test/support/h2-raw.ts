/**
 * A raw HTTP/2 client for hostile-peer tests: it writes frames by hand (what a well-behaved library never sends:
 * rapid resets, endless CONTINUATION, SETTINGS and PING floods) and parses what comes back frame by frame. HPACK
 * out is the minimum: static-table indexes and literal fields without indexing or Huffman coding (RFC 7541 §6.2.2),
 * which every decoder must accept; header blocks in are decoded in arrival order (`responseHeaders`).
 */
import net from 'node:net';
import { HpackDecoder } from '../../src/http2/hpack.js';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FRAME = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8 } as const;

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

function hpackString(s: string): Buffer {
  const b = Buffer.from(s, 'latin1');
  if (b.length >= 127) {
    // 7-bit prefix integer (RFC 7541 §5.1): 127, then the rest in 7-bit groups.
    const bytes = [0x7f];
    let n = b.length - 127;
    while (n >= 128) { bytes.push((n & 0x7f) | 0x80); n >>= 7; }
    bytes.push(n);
    return Buffer.concat([Buffer.from(bytes), b]);
  }
  return Buffer.concat([Buffer.from([b.length]), b]);
}

/** A header block: `:method`, `:scheme`, `:path`, `:authority` and any other fields, as literals without indexing. */
export function headerBlock(fields: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) parts.push(Buffer.from([0x00]), hpackString(name), hpackString(value));
  return Buffer.concat(parts);
}

export function requestHeaders(authority: string, path = '/', method = 'GET', extra: ReadonlyArray<readonly [string, string]> = []): Buffer {
  return headerBlock([[':method', method], [':scheme', 'http'], [':path', path], [':authority', authority], ...extra]);
}

export function settingsFrame(values: ReadonlyArray<readonly [number, number]> = []): Buffer {
  const p = Buffer.alloc(6 * values.length);
  values.forEach(([id, v], i) => { p.writeUInt16BE(id, i * 6); p.writeUInt32BE(v, i * 6 + 2); });
  return frame(FRAME.SETTINGS, 0, 0, p);
}

export function rstStream(streamId: number, code = 8 /* CANCEL */): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code, 0);
  return frame(FRAME.RST_STREAM, 0, streamId, p);
}

export function ping(data = Buffer.alloc(8)): Buffer {
  return frame(FRAME.PING, 0, 0, data);
}

export interface Frame { type: number; flags: number; streamId: number; payload: Buffer }

/** A connection to an HTTP/2 server: frames out as given, frames in as parsed, and how it ended. */
export class RawH2 {
  readonly frames: Frame[] = [];
  closed = false;
  error: string | undefined;
  bytesIn = 0;
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiters: Array<() => void> = [];

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.bytesIn += d.length;
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        this.frames.push({ type: this.buf[3]!, flags: this.buf[4]!, streamId: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) });
        this.buf = this.buf.subarray(9 + len);
      }
      this.wake();
    });
    sock.on('error', (e) => { this.error = (e as NodeJS.ErrnoException).code ?? e.message; });
    sock.on('close', () => { this.closed = true; this.wake(); });
  }

  /** Connect, send the preface and an empty SETTINGS (and ACK the server's SETTINGS when `ack`). */
  static async connect(port: number, opts: { read?: boolean } = {}): Promise<RawH2> {
    const sock = net.connect(port, '127.0.0.1');
    await new Promise<void>((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
    const c = new RawH2(sock);
    if (opts.read === false) sock.pause();
    sock.write(Buffer.concat([PREFACE, settingsFrame(), frame(FRAME.SETTINGS, FLAG.ACK, 0)]));
    return c;
  }

  write(b: Buffer): boolean {
    return this.sock.write(b);
  }

  /** The GOAWAY frame's error code, if one came. */
  get goawayCode(): number | undefined {
    const g = this.frames.find((f) => f.type === FRAME.GOAWAY);
    return g === undefined ? undefined : g.payload.readUInt32BE(4);
  }

  streamFrames(id: number): Frame[] {
    return this.frames.filter((f) => f.streamId === id);
  }

  private readonly decoder = new HpackDecoder(4096);
  private decodedUpTo = 0;
  private readonly blocks: Array<{ streamId: number; fields: string[] }> = [];
  private parts: Buffer[] = [];

  /**
   * The header blocks the server sent on stream `id` (informational, final, trailers), each a flat
   * [name, value, …] list, decoded in connection order as HPACK requires.
   */
  headerBlocks(id: number): string[][] {
    for (; this.decodedUpTo < this.frames.length; this.decodedUpTo++) {
      const f = this.frames[this.decodedUpTo]!;
      if (f.type !== FRAME.HEADERS && f.type !== FRAME.CONTINUATION) continue;
      let p = f.payload;
      if (f.type === FRAME.HEADERS) {
        if ((f.flags & FLAG.PADDED) !== 0) p = p.subarray(1, p.length - p[0]!);
        if ((f.flags & 0x20) !== 0) p = p.subarray(5);
        this.parts = [];
      }
      this.parts.push(p);
      if ((f.flags & FLAG.END_HEADERS) !== 0) this.blocks.push({ streamId: f.streamId, fields: this.decoder.decode(Buffer.concat(this.parts)) });
    }
    return this.blocks.filter((b) => b.streamId === id).map((b) => b.fields);
  }

  /** The `:status` of every header block on stream `id`, in order (100, then 200 …). */
  statuses(id: number): number[] {
    return this.headerBlocks(id).map((f) => Number(f[f.indexOf(':status') + 1])).filter((n) => n > 0);
  }

  async until(pred: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.min(left, 50));
        this.waiters.push(() => { clearTimeout(t); res(); });
      });
    }
  }

  destroy(): void {
    this.sock.destroy();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}
