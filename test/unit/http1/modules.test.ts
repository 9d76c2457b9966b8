// The HTTP/1 server's modules after server.ts was split (issue #24): request.ts's head checks without a socket, the
// imports run one way (server → connection → request/response, nothing back, not even a type), and server.ts still
// exports every name it did (importers and tests use it alone).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { framingLookalike, removeExpectContinue } from '../../../src/http1/request.js';
import * as request from '../../../src/http1/request.js';
import * as response from '../../../src/http1/response.js';
import * as server from '../../../src/http1/server.js';
import type { Http1ServerOptions, OriginalDestination, RequestHandler } from '../../../src/http1/server.js';

const HTTP1 = resolve(dirname(fileURLToPath(import.meta.url)), '../../../src/http1');

describe('request.ts: the head checks the connection applies, without a socket', () => {
  it('removes every Expect: 100-continue field (any case, padded), and only those', () => {
    const raw = ['Host', 'a', 'Expect', '100-continue', 'X', '1', 'EXPECT', ' 100-Continue ', 'Expect', 'other'];
    removeExpectContinue(raw);
    expect(raw).toEqual(['Host', 'a', 'X', '1', 'Expect', 'other']);
  });

  it('flags names that read as Content-Length or Transfer-Encoding to a lenient parser, not the names themselves', () => {
    for (const n of ['Transfer_Encoding', 'Content--Length', 'content length', 'TRANSFER-ENCODING_', 'Content_Length']) {
      expect(framingLookalike(n), n).toBe(true);
    }
    for (const n of ['Content-Length', 'transfer-encoding', 'Content-Type', 'Trailer', 'X-Content-Length']) {
      expect(framingLookalike(n), n).toBe(false);
    }
  });
});

describe('the modules import one way: server → connection → request, response', () => {
  const imports = (file: string): string[] =>
    [...readFileSync(resolve(HTTP1, file), 'utf8').matchAll(/^(?:import|export)[^;]*from '(\.[^']+)';/gm)].map((m) => m[1]!);
  it.each([
    ['request.ts', []],
    ['response.ts', ['./request.js']],
    ['connection.ts', ['./socket-io.js', './native-parser.js', '../proxy/stream-timeouts.js', './request.js', './response.js']],
  ])('%s', (file, allowed) => {
    for (const spec of imports(file)) expect(allowed, `${file} imports ${spec}`).toContain(spec);
  });
});

describe('server.ts still exports every name it exported before the split', () => {
  it('values, the same ones as the modules that hold them now', () => {
    expect(server.Http1Server).toBeTypeOf('function');
    expect(server.Http1Request).toBe(request.Http1Request);
    expect(server.Http1Response).toBe(response.Http1Response);
    expect(server.headersObject).toBe(request.headersObject);
    expect({ ...server.headersObject(['Host', 'a', 'Set-Cookie', 'x']) }).toEqual({ host: 'a', 'set-cookie': ['x'] });
  });

  it('types', () => {
    expectTypeOf<OriginalDestination>().toEqualTypeOf<{ address: string; port: number }>();
    expectTypeOf<RequestHandler>().parameters.toEqualTypeOf<[server.Http1Request, server.Http1Response]>();
    expectTypeOf<Http1ServerOptions['maxPipelined']>().toEqualTypeOf<number | undefined>();
  });
});
