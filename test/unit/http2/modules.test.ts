// The HTTP/2 codec's modules after session.ts was split (issue #24): frames.ts's helpers without a socket, the pure
// modules import no I/O, and session.ts still exports every name it did (importers and tests use it alone).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  ACK, DATA, H2ConnectionError, H2ERR, PADDED, SETTINGS, settingsAck, unpad, writeFrameHeader,
} from '../../../src/http2/frames.js';
import * as session from '../../../src/http2/session.js';
import type { H2SessionEvents, H2SessionOptions, H2Settings, H2StreamHandler } from '../../../src/http2/session.js';

const HTTP2 = resolve(dirname(fileURLToPath(import.meta.url)), '../../../src/http2');

describe('frames.ts: the frame header and padding, without a socket', () => {
  it('writes a 9-byte frame header: 24-bit length, type, flags, 31-bit stream id', () => {
    const b = Buffer.alloc(9);
    writeFrameHeader(b, 0x012345, DATA, PADDED, 0x7fffffff);
    expect([...b]).toEqual([0x01, 0x23, 0x45, DATA, PADDED, 0x7f, 0xff, 0xff, 0xff]);
  });

  it('a SETTINGS ACK is an empty SETTINGS frame with ACK on stream 0', () => {
    expect([...settingsAck()]).toEqual([0, 0, 0, SETTINGS, ACK, 0, 0, 0, 0]);
  });

  it('unpads a padded payload, and refuses a missing pad length or padding as long as the frame', () => {
    expect(unpad(Buffer.from([2, 0x61, 0x62, 0, 0])).toString()).toBe('ab');
    expect(unpad(Buffer.from([0, 0x61])).toString()).toBe('a');
    const err = (p: Buffer): H2ConnectionError => {
      try {
        unpad(p);
      } catch (e) {
        return e as H2ConnectionError;
      }
      throw new Error('no error');
    };
    expect(err(Buffer.alloc(0))).toBeInstanceOf(H2ConnectionError);
    expect(err(Buffer.alloc(0)).code).toBe(H2ERR.FRAME_SIZE_ERROR);
    expect(unpad(Buffer.from([1, 0x61])).length).toBe(0);
    expect(err(Buffer.from([2, 0x61])).code).toBe(H2ERR.PROTOCOL_ERROR);
  });
});

describe('the pure modules of the codec import no I/O', () => {
  // node:stream aside, what scripts/check-imports.mjs calls I/O; and the only sibling imports they may make.
  const IO = /from 'node:(net|tls|fs|fs\/promises|http|https|http2|dgram|dns|dns\/promises|child_process|cluster|worker_threads|readline|inspector|stream)'/;
  const PURE_SIBLINGS = new Set(['./frames.js', './validate.js', './request-headers.js', './hpack.js']);
  it.each(['frames.ts', 'validate.ts', 'request-headers.ts'])('%s', (file) => {
    const text = readFileSync(resolve(HTTP2, file), 'utf8');
    expect(text).not.toMatch(IO);
    for (const m of text.matchAll(/^import[^;]*from '([^']+)';/gm)) expect(PURE_SIBLINGS.has(m[1]!), `${file} imports ${m[1]}`).toBe(true);
  });
});

describe('session.ts still exports every name it exported before the split', () => {
  it('values', () => {
    for (const name of ['CONNECTION_SPECIFIC', 'H2ConnectionError', 'H2ERR', 'H2Session', 'H2Stream', 'PREFACE', 'checkRequest', 'checkResponse', 'checkTrailers', 'h2RequestHeaders', 'hasUpper']) {
      expect(session[name as keyof typeof session], name).toBeDefined();
    }
    expect(session.PREFACE.toString('latin1')).toBe('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  });

  it('types', () => {
    expectTypeOf<H2Settings['initialWindowSize']>().toEqualTypeOf<number>();
    expectTypeOf<H2SessionOptions['maxHeaderListSize']>().toEqualTypeOf<number | undefined>();
    expectTypeOf<H2StreamHandler['onEnd']>().parameters.toEqualTypeOf<[session.H2Stream]>();
    expectTypeOf<Parameters<NonNullable<H2SessionEvents['onError']>>[0]>().toEqualTypeOf<session.H2ConnectionError>();
  });
});
