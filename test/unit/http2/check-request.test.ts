import { describe, expect, it } from 'vitest';
import { checkRequest } from '../../../src/http2/session.js';

const req = (path: string, authority = 'cart', method = 'GET'): string[] => [':method', method, ':scheme', 'http', ':path', path, ':authority', authority, 'x-a', '1'];

describe('checkRequest: pseudo-header values an HTTP/1 request line could not carry are malformed', () => {
  it.each([
    ['/admin\u0000.png'], ['/admin /x'], ['/admin\t'], ['/a\r\nx: y'], ['/admin\u0001'], ['/admin\u007f'],
  ])(':path %j', (path) => {
    expect(checkRequest(req(path))).toMatch(/blank or control character in :path/);
  });

  it('NUL in :authority, a blank in :method', () => {
    expect(checkRequest(req('/', 'cart\u0000.evil'))).toMatch(/:authority/);
    expect(checkRequest(req('/', 'cart', 'GET '))).toMatch(/:method/);
  });

  it('well-formed requests pass (non-ASCII, percent-encoding and `;` are the path\'s business)', () => {
    expect(checkRequest(req('/a%00b;c=d?q=1'))).toBeNull();
    expect(checkRequest(req('/caf\u00e9'))).toBeNull();
    expect(checkRequest(req('*', 'cart', 'OPTIONS'))).toBeNull();
  });
});
