/** Request/response header hygiene: hop-by-hop headers (upgrades too), the 101's headers, underscores, Connection nominations, internal headers from peers. */
import { describe, it, expect } from 'vitest';
import { HeaderHygieneStats, screenRequestHeaders, upgradeConnection, upgradeResponseHeaders, upstreamRequestHeaders } from '../../../src/proxy/headers.js';

const RAW = ['Host', 'chat', 'Connection', 'keep-alive, Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k==', 'Keep-Alive', 'timeout=5', 'X-Envoy-Max-Retries', '3'];

describe('upstreamRequestHeaders', () => {
  it('a plain request loses Upgrade and Connection (hop-by-hop)', () => {
    expect(upstreamRequestHeaders(RAW, 'keep-alive, Upgrade', { stripAllEnvoy: false })).toEqual(['Sec-WebSocket-Key', 'k==']);
  });

  it('an upgrade request keeps Upgrade and sends Connection with the upgrade token only', () => {
    expect(upstreamRequestHeaders(RAW, 'keep-alive, Upgrade', { stripAllEnvoy: false, upgrade: true }))
      .toEqual(['Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k==', 'Connection', 'Upgrade']);
  });

  it('an upgrade keeps the headers its Connection names, still drops the always-hop-by-hop ones', () => {
    const raw = ['Connection', 'Upgrade, X-Chat-Key, TE', 'Upgrade', 'chat/1', 'X-Chat-Key', 'k1', 'TE', 'gzip'];
    expect(upstreamRequestHeaders(raw, 'Upgrade, X-Chat-Key, TE', { stripAllEnvoy: true, upgrade: true }))
      .toEqual(['Upgrade', 'chat/1', 'X-Chat-Key', 'k1', 'Connection', 'Upgrade, X-Chat-Key, TE']);
    // Without the upgrade flag, the named header is hop-by-hop.
    expect(upstreamRequestHeaders(raw, 'Upgrade, X-Chat-Key, TE', { stripAllEnvoy: true })).toEqual([]);
  });

  it('HTTP2-Settings (an h2c upgrade of one connection) never goes upstream, named in Connection or not', () => {
    const raw = ['Connection', 'Upgrade', 'Upgrade', 'websocket', 'HTTP2-Settings', 'AAMAAABkAAQAAP__'];
    expect(upstreamRequestHeaders(raw, 'Upgrade', { stripAllEnvoy: true, upgrade: true })).toEqual(['Upgrade', 'websocket', 'Connection', 'Upgrade']);
    expect(upstreamRequestHeaders(['HTTP2-Settings', 'AAMAAABkAAQAAP__', 'x-a', '1'], undefined, { stripAllEnvoy: false })).toEqual(['x-a', '1']);
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

describe('screenRequestHeaders (underscores, Connection nominations)', () => {
  const req = (raw: string[], upgrade = false): { rawHeaders: string[]; headers: Record<string, string | string[] | undefined>; upgrade: boolean } => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < raw.length; i += 2) headers[raw[i]!.toLowerCase()] = raw[i + 1]!;
    return { rawHeaders: raw.slice(), headers, upgrade };
  };

  it('an HTTP/2 method with a lowercase letter is refused (HTTP/1\'s parser refuses it too): one method for policy and app', () => {
    const st = new HeaderHygieneStats();
    expect(screenRequestHeaders({ ...req(['Host', 'a']), method: 'delete' }, 'allow', st, true)).toBe('http2.invalid_method');
    expect(screenRequestHeaders({ ...req(['Host', 'a']), method: 'Get' }, 'allow', st, true)).toBe('http2.invalid_method');
    expect(screenRequestHeaders({ ...req(['Host', 'a']), method: 'DELETE' }, 'allow', st, true)).toBeUndefined();
    expect(screenRequestHeaders({ ...req(['Host', 'a']), method: 'VERSION-CONTROL' }, 'allow', st, true)).toBeUndefined();
  });

  it('allow leaves underscore names alone; reject names the detail; drop removes them from both views and counts', () => {
    const st = new HeaderHygieneStats();
    const r1 = req(['Host', 'a', 'X_User', 'admin', 'x-ok', '1']);
    expect(screenRequestHeaders(r1, 'allow', st, false)).toBeUndefined();
    expect(r1.rawHeaders).toEqual(['Host', 'a', 'X_User', 'admin', 'x-ok', '1']);
    expect(screenRequestHeaders(req(['X_User', 'admin']), 'reject', st, false)).toBe('http1.unexpected_underscore');
    expect(screenRequestHeaders(req(['X_User', 'admin']), 'reject', st, true)).toBe('http2.unexpected_underscore');
    const r2 = req(['Host', 'a', 'X_User', 'admin', 'x-ok', '1', 'a_b', '2']);
    expect(screenRequestHeaders(r2, 'drop', st, false)).toBeUndefined();
    expect(r2.rawHeaders).toEqual(['Host', 'a', 'x-ok', '1']);
    expect(r2.headers).toEqual({ host: 'a', 'x-ok': '1' });
    expect(st).toMatchObject({ droppedUnderscore: 2, rejectedUnderscore: 2, rejectedConnection: 0 });
  });

  it('rejects Connection naming x-forwarded-for/-host/-proto or a pseudo-header, or 10+ tokens (Envoy); other nominations pass', () => {
    const st = new HeaderHygieneStats();
    for (const c of ['x-forwarded-for', 'close, X-Forwarded-Proto', 'x-forwarded-host', ':authority', Array.from({ length: 10 }, (_, i) => `h${i}`).join(',')]) {
      expect([c, screenRequestHeaders(req(['Connection', c]), 'allow', st, false)]).toEqual([c, 'http1.connection_header_rejected']);
    }
    for (const c of ['keep-alive', 'close', 'Keep-Alive', 'x-request-id', 'host, x-custom', 'te']) {
      expect([c, screenRequestHeaders(req(['Connection', c]), 'allow', st, false)]).toEqual([c, undefined]);
    }
    // An upgrade's Connection is the handshake's (Envoy skips it too).
    expect(screenRequestHeaders(req(['Connection', 'Upgrade, x-forwarded-for'], true), 'allow', st, false)).toBeUndefined();
    expect(st.rejectedConnection).toBe(5);
  });

  it('an untrusted peer (inbound) loses x-envoy-*, x-remora-* and x-forwarded-client-cert; the local app keeps all but the controls', () => {
    const raw = ['x-envoy-peer-metadata', 'p', 'x-remora-proxy-error', 'e', 'X-Forwarded-Client-Cert', 'By=spiffe://evil', 'x-envoy-max-retries', '3', 'x-app', '1'];
    expect(upstreamRequestHeaders(raw, undefined, { stripAllEnvoy: true })).toEqual(['x-app', '1']);
    expect(upstreamRequestHeaders(raw, undefined, { stripAllEnvoy: false })).toEqual(['x-envoy-peer-metadata', 'p', 'x-remora-proxy-error', 'e', 'X-Forwarded-Client-Cert', 'By=spiffe://evil', 'x-app', '1']);
  });
});
