/**
 * HTTP/2's wire vocabulary (RFC 9113 §3.4, §4, §6, §7): the connection preface, frame types and flags, error codes,
 * the protocol's default sizes and the settings one side announces; the 9-byte frame header written, a SETTINGS ACK,
 * a padded payload unpadded, and the connection error a malformed frame raises. Pure: Buffers only, no socket.
 */

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Error codes (RFC 9113 §7). */
export const H2ERR = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

export const DATA = 0x0;
export const HEADERS = 0x1;
export const PRIORITY = 0x2;
export const RST_STREAM = 0x3;
export const SETTINGS = 0x4;
export const PUSH_PROMISE = 0x5;
export const PING = 0x6;
export const GOAWAY = 0x7;
export const WINDOW_UPDATE = 0x8;
export const CONTINUATION = 0x9;

export const END_STREAM = 0x1;
export const ACK = 0x1;
export const END_HEADERS = 0x4;
export const PADDED = 0x8;
export const PRIORITY_FLAG = 0x20;

export const MAX_WINDOW = 0x7fffffff;
export const DEFAULT_WINDOW = 65_535;
export const DEFAULT_FRAME = 16_384;

/** The settings one side announces (RFC 9113 §6.5.2). */
export interface H2Settings {
  headerTableSize: number;
  enablePush: boolean;
  maxConcurrentStreams: number;
  initialWindowSize: number;
  maxFrameSize: number;
  maxHeaderListSize: number;
}

/** A connection-level failure, for the owner's logs and counters. */
export class H2ConnectionError extends Error {
  constructor(message: string, readonly code: number, readonly flood = false) {
    super(message);
  }
}

export function writeFrameHeader(b: Buffer, len: number, type: number, flags: number, id: number): void {
  b[0] = len >>> 16;
  b[1] = (len >>> 8) & 0xff;
  b[2] = len & 0xff;
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(id, 5);
}

export function settingsAck(): Buffer {
  const f = Buffer.allocUnsafe(9);
  writeFrameHeader(f, 0, SETTINGS, ACK, 0);
  return f;
}

export function unpad(p: Buffer): Buffer {
  if (p.length < 1) throw new H2ConnectionError('padded frame without its pad length', H2ERR.FRAME_SIZE_ERROR);
  const pad = p[0]!;
  if (pad >= p.length) throw new H2ConnectionError('padding longer than the frame', H2ERR.PROTOCOL_ERROR);
  return p.subarray(1, p.length - pad);
}
