/** Request/response header hygiene for upgrades: which hop-by-hop headers an upgrade carries, and the 101's headers. */
import { describe, it, expect } from 'vitest';
import { upgradeConnection, upgradeResponseHeaders, upstreamRequestHeaders } from '../../../src/proxy/headers.js';

const RAW = ['Host', 'chat', 'Connection', 'keep-alive, Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k==', 'Keep-Alive', 'timeout=5', 'X-Envoy-Max-Retries', '3'];

describe('upstreamRequestHeaders', () => {
  it('a plain request loses Upgrade and Connection (hop-by-hop)', () => {
    expect(upstreamRequestHeaders(RAW, 'keep-alive, Upgrade', { stripAllEnvoy: false })).toEqual(['Sec-WebSocket-Key', 'k==']);
  });

  it('an upgrade request keeps Upgrade and sends Connection with the upgrade token only', () => {
    expect(upstreamRequestHeaders(RAW, 'keep-alive, Upgrade', { stripAllEnvoy: false, upgrade: true }))
      .toEqual(['Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k==', 'Connection', 'Upgrade']);
  });

  it('an upgrade keeps the headers its Connection names (h2c: HTTP2-Settings), still drops the always-hop-by-hop ones', () => {
    const raw = ['Connection', 'Upgrade, HTTP2-Settings, TE', 'Upgrade', 'h2c', 'HTTP2-Settings', 'AAMAAABkAAQAAP__', 'TE', 'gzip'];
    expect(upstreamRequestHeaders(raw, 'Upgrade, HTTP2-Settings, TE', { stripAllEnvoy: true, upgrade: true }))
      .toEqual(['Upgrade', 'h2c', 'HTTP2-Settings', 'AAMAAABkAAQAAP__', 'Connection', 'Upgrade, HTTP2-Settings, TE']);
    // Without the upgrade flag, the named header is hop-by-hop.
    expect(upstreamRequestHeaders(raw, 'Upgrade, HTTP2-Settings, TE', { stripAllEnvoy: true })).toEqual([]);
  });
});

describe('upgradeConnection', () => {
  it.each([
    ['Upgrade', 'Upgrade'],
    ['upgrade', 'upgrade'],
    ['keep-alive, Upgrade', 'Upgrade'],
    ['Upgrade, close', 'Upgrade'],
    [' Upgrade , HTTP2-Settings ', 'Upgrade, HTTP2-Settings'],
    [undefined, 'Upgrade'],
    ['keep-alive', 'Upgrade'],
  ])('%j → %j', (given, want) => {
    expect(upgradeConnection(given)).toBe(want);
  });
});

describe('upgradeResponseHeaders', () => {
  it('keeps Connection, Upgrade and the handshake headers; drops framing and keep-alive', () => {
    const raw = ['Upgrade', 'websocket', 'Connection', 'Upgrade', 'Sec-WebSocket-Accept', 'abc=', 'Content-Length', '0', 'Transfer-Encoding', 'chunked', 'Keep-Alive', 'timeout=5', 'X-Up', '1'];
    expect(upgradeResponseHeaders(raw)).toEqual(['Upgrade', 'websocket', 'Connection', 'Upgrade', 'Sec-WebSocket-Accept', 'abc=', 'X-Up', '1']);
  });
});
