/**
 * Node's own llhttp binding (the parser node:http uses, from `_http_common`), typed, for the data plane's HTTP/1
 * server and upstream pool: creation with the callbacks set, reading straight from a socket's handle, and freeing.
 * `_http_common` is a public-but-undocumented module with no deprecation warning in Node 20; the socket tests fail
 * loudly if an upgrade changes it.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

const require = createRequire(import.meta.url);

/** The native parser; `conn` is the owner its callbacks (called with `this` = the parser) act on. */
export interface NativeParser<C> {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(data: Buffer): number | Error;
  consume(handle: unknown): void;
  unconsume(): void;
  finish(): number | Error;
  /** A copy of the bytes of the read being parsed (valid inside the onExecute callback of a consumed handle). */
  getCurrentBuffer(): Buffer;
  close(): void;
  [k: number]: unknown;
  conn?: C;
  /** The parser reads from the socket's handle (set by consumeSocket). */
  consumed?: boolean;
}

const common = require('_http_common') as {
  HTTPParser: {
    new(): NativeParser<unknown>; REQUEST: number; RESPONSE: number; kOnMessageBegin: number; kOnHeaders: number;
    kOnHeadersComplete: number; kOnBody: number; kOnMessageComplete: number; kOnExecute: number; kLenientNone: number;
  };
  methods: string[];
};
const { HTTPParser } = common;

/** Method names by llhttp's method index. */
export const METHODS: readonly string[] = common.methods;

export interface ParserCallbacks<C> {
  onMessageBegin?: (this: NativeParser<C>) => void;
  onHeaders: (this: NativeParser<C>, headers: string[], url: string) => void;
  onHeadersComplete: (this: NativeParser<C>, major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, status: number, msg: string, upgrade: boolean, keepAlive: boolean) => number;
  onBody: (this: NativeParser<C>, chunk: Buffer) => void;
  onMessageComplete: (this: NativeParser<C>) => void;
  /** After each read the parser took from a consumed handle: the byte count, or the parse error. */
  onExecute: (this: NativeParser<C>, ret: number | Error) => void;
}

/** A strict (no lenient flags) request or response parser owned by `conn`; maxHeaderSize 0 = Node's default. */
export function createParser<C>(kind: 'request' | 'response', conn: C, maxHeaderSize: number, cb: ParserCallbacks<C>): NativeParser<C> {
  const p = new HTTPParser() as NativeParser<C>;
  p.initialize(kind === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, maxHeaderSize, HTTPParser.kLenientNone);
  p.conn = conn;
  if (cb.onMessageBegin !== undefined) p[HTTPParser.kOnMessageBegin] = cb.onMessageBegin;
  p[HTTPParser.kOnHeaders] = cb.onHeaders;
  p[HTTPParser.kOnHeadersComplete] = cb.onHeadersComplete;
  p[HTTPParser.kOnBody] = cb.onBody;
  p[HTTPParser.kOnMessageComplete] = cb.onMessageComplete;
  p[HTTPParser.kOnExecute] = cb.onExecute;
  p.consumed = false;
  return p;
}

/**
 * Let the parser read straight from the socket's libuv handle, as node:http does: no Buffer, 'data' event or
 * Readable bookkeeping per read. Returns false (the caller keeps feeding `execute` from 'data') for a handle that is
 * not a native stream. The socket still needs a 'data' listener so that reading is started.
 */
export function consumeSocket<C>(p: NativeParser<C>, sock: Socket): boolean {
  const h = (sock as unknown as { _handle: { isStreamBase?: boolean } | null })._handle;
  if (h === null || h.isStreamBase !== true) return false;
  p.consume(h);
  p.consumed = true;
  return true;
}

/**
 * Stop the parser reading from the socket's handle (a protocol switch: the bytes that follow are not HTTP). The
 * socket's own stream reads them from then on. Safe inside onExecute (node:http unconsumes there on an upgrade).
 */
export function unconsumeSocket<C>(p: NativeParser<C>): void {
  if (p.consumed !== true) return;
  p.unconsume();
  p.consumed = false;
}

/**
 * Free the parser. Call it from the socket's 'close' callback only: never inside the parser's own call stack (an
 * abort from a callback freeing it there crashed the process), and after the handle is gone, so unconsume() only
 * detaches (node:http's freeParser does the same).
 */
export function freeParser<C>(p: NativeParser<C>): void {
  p.conn = undefined;
  if (p.consumed === true) p.unconsume();
  p.close();
}
