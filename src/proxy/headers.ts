/**
 * Header hygiene between the app and upstreams: hop-by-hop removal (RFC 9110 §7.6.1 plus names listed
 * in Connection), Envoy control headers, and original-case preservation via Node's rawHeaders.
 */
import { DETAILS } from '../errors.js';

/**
 * Always hop-by-hop. `te` is handled separately (only `trailers` survives). `http2-settings` belongs to an h2c upgrade
 * of this one connection (RFC 7540 §3.2.1), which is never passed on.
 */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'host', 'http2-settings',
]);

/** Envoy request controls: honored from the local app on outbound, then removed so the next hop does not re-apply them. */
export const ENVOY_REQUEST_CONTROLS = new Set([
  'x-envoy-max-retries', 'x-envoy-retry-on', 'x-envoy-retry-grpc-on', 'x-envoy-retriable-status-codes',
  'x-envoy-retriable-header-names', 'x-envoy-upstream-rq-timeout-ms', 'x-envoy-upstream-rq-per-try-timeout-ms',
  'x-envoy-hedge-on-per-try-timeout', 'x-envoy-upstream-rq-timeout-alt-response', 'x-envoy-expected-rq-timeout-ms',
  'x-envoy-attempt-count', 'x-envoy-original-path', 'x-envoy-force-trace', 'x-envoy-internal', 'x-envoy-decorator-operation',
]);

/** Names listed in the Connection header (lowercase), or undefined when there are none beyond the usual. */
function connectionListed(conn: string | undefined): Set<string> | undefined {
  if (conn === undefined || conn === 'keep-alive' || conn === 'close' || conn === 'Keep-Alive') return undefined;
  let set: Set<string> | undefined;
  for (const part of conn.split(',')) {
    const n = part.trim().toLowerCase();
    if (n === '' || n === 'close' || n === 'keep-alive' || n === 'upgrade') continue;
    (set ??= new Set()).add(n);
  }
  return set;
}

/**
 * Envoy's `headers_with_underscores_action` (`remora run --headers-with-underscores`): `allow` (Envoy's default, and
 * Istio leaves it for sidecars), `drop` (the header is removed before routing, counted), `reject` (400 + close,
 * Envoy's edge recommendation, for upstreams that treat `_` and `-` alike).
 */
export type UnderscoreAction = 'allow' | 'drop' | 'reject';
export const UNDERSCORE_ACTIONS: readonly UnderscoreAction[] = ['allow', 'drop', 'reject'];

/** What screenRequestHeaders did, per listener (read by the metrics at scrape time). */
export class HeaderHygieneStats {
  droppedUnderscore = 0;
  rejectedUnderscore = 0;
  rejectedConnection = 0;
}

/** Connection may not nominate these: dropping them would hide where a request came from (Envoy answers 400). */
const UNNOMINABLE = new Set(['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto']);

/**
 * Header checks before routing, on both listeners (Envoy's HTTP/1 codec does them at the head):
 * - header names with `_` per `underscores` (drop: removed in place from rawHeaders and the headers view, so no route
 *   match, policy or upstream sees them);
 * - `Connection` naming `x-forwarded-for/-host/-proto` or a pseudo-header, or 10 or more tokens (Envoy's
 *   sanitizeConnectionHeader): a client must not make the proxy drop what tells the next hop who asked.
 *   Other nominated headers are hop-by-hop and removed (upstreamRequestHeaders); the headers Remora itself sets
 *   (Host, x-request-id, x-forwarded-*) are added after that removal, so nominating them changes nothing.
 * Returns the response-code details of a rejection (400 + Connection: close), or undefined.
 */
export function screenRequestHeaders(
  req: { rawHeaders: string[]; readonly headers: Record<string, string | string[] | undefined>; readonly upgrade?: boolean; readonly method?: string },
  underscores: UnderscoreAction, stats: HeaderHygieneStats, h2: boolean,
): string | undefined {
  // A method with a lowercase letter: HTTP/1's parser refuses it (400), so HTTP/2 does too (Istio's normalization:
  // a method not in uppercase is rejected with 400). Otherwise `delete` would pass a DENY on DELETE and reach the app.
  if (h2 && req.method !== undefined && /[a-z]/.test(req.method)) return DETAILS.http2InvalidMethod;
  if (underscores !== 'allow') {
    const raw = req.rawHeaders;
    let first = -1;
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.includes('_')) { first = i; break; }
    if (first >= 0) {
      if (underscores === 'reject') {
        stats.rejectedUnderscore++;
        return h2 ? DETAILS.http2UnexpectedUnderscore : DETAILS.http1UnexpectedUnderscore;
      }
      const dropped: string[] = [];
      let w = first;
      for (let r = first; r < raw.length; r += 2) {
        const name = raw[r]!;
        if (name.includes('_')) {
          dropped.push(name.toLowerCase());
          continue;
        }
        raw[w++] = name;
        raw[w++] = raw[r + 1]!;
      }
      raw.length = w;
      stats.droppedUnderscore += dropped.length;
      // The headers view (HTTP/1 builds it from rawHeaders on first read; HTTP/2's is node's own object).
      const view = req.headers;
      for (const n of dropped) delete view[n];
    }
  }
  const conn = req.headers.connection;
  if (conn !== undefined && req.upgrade !== true && conn !== 'keep-alive' && conn !== 'close') {
    const tokens = (Array.isArray(conn) ? conn.join(',') : conn).split(',');
    let bad = tokens.length >= 10;
    for (let i = 0; !bad && i < tokens.length; i++) {
      const t = tokens[i]!.trim().toLowerCase();
      if (UNNOMINABLE.has(t) || t.charCodeAt(0) === 58 /* : */) bad = true;
    }
    if (bad) {
      stats.rejectedConnection++;
      return DETAILS.http1ConnectionHeaderRejected;
    }
  }
  return undefined;
}

export interface UpstreamHeaderOptions {
  /**
   * The request comes from an untrusted peer (inbound, from the network): drop every x-envoy-* (on outbound, from
   * the local app, only the request controls Remora has honoured), every x-remora-*, and x-forwarded-client-cert
   * (Envoy's SANITIZE: Remora has no mTLS, so no client certificate to vouch for).
   */
  stripAllEnvoy: boolean;
  /**
   * An upgrade request (`Http1Request.upgrade`): `Upgrade` and the headers named in `Connection` are the
   * handshake's and go on, with `Connection` itself reduced to its tokens but keep-alive/close (see upgradeConnection).
   */
  upgrade?: boolean;
}

/**
 * Copy request headers for the upstream as a flat [name, value, …] array, keeping the app's name case.
 * Drops hop-by-hop and Envoy control headers, and `x-request-id`, `x-forwarded-*` (the caller re-adds them).
 */
export function upstreamRequestHeaders(raw: readonly string[], connection: string | undefined, opts: UpstreamHeaderOptions): string[] {
  const upgrade = opts.upgrade === true;
  const listed = upgrade ? undefined : connectionListed(connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'te' && value.trim().toLowerCase() === 'trailers') out.push(name, value);
      else if (upgrade && lower === 'upgrade') out.push(name, value);
      continue;
    }
    if (lower.charCodeAt(0) === 120 /* x */) {
      if (lower === 'x-request-id' || lower === 'x-forwarded-for' || lower === 'x-forwarded-proto') continue;
      if (lower.startsWith('x-envoy-') && (opts.stripAllEnvoy || ENVOY_REQUEST_CONTROLS.has(lower))) continue;
      if (opts.stripAllEnvoy && (lower.startsWith('x-remora-') || lower === 'x-forwarded-client-cert')) continue;
    }
    if (listed !== undefined && listed.has(lower)) continue;
    out.push(name, value);
  }
  if (upgrade) out.push('Connection', upgradeConnection(connection));
  return out;
}

/**
 * The `Connection` an upgrade request carries upstream: the client's tokens without keep-alive and close (the
 * proxy's connection to the upstream is its own), `Upgrade` always among them. `keep-alive, Upgrade` (Firefox)
 * becomes `Upgrade`; `Upgrade, HTTP2-Settings` (h2c) stays whole.
 */
export function upgradeConnection(connection: string | undefined): string {
  const out: string[] = [];
  let hasUpgrade = false;
  for (const part of (connection ?? '').split(',')) {
    const t = part.trim();
    const l = t.toLowerCase();
    if (l === '' || l === 'keep-alive' || l === 'close') continue;
    if (l === 'upgrade') hasUpgrade = true;
    out.push(t);
  }
  if (!hasUpgrade) out.unshift('Upgrade');
  return out.join(', ');
}

/** Framing and hop-by-hop headers a 101 does not carry to the client (Connection and Upgrade are the switch itself). */
const UPGRADE_RESPONSE_DROP = new Set(['keep-alive', 'proxy-connection', 'transfer-encoding', 'content-length', 'trailer', 'te']);

/** A 101 Switching Protocols head from the upstream → the headers the client gets (Connection and Upgrade kept). */
export function upgradeResponseHeaders(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (UPGRADE_RESPONSE_DROP.has(name.toLowerCase())) continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}

const RESPONSE_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'trailer', 'te', 'proxy-authenticate']);

/** Response headers from undici's raw buffers → flat string array for res.writeHead, hop-by-hop removed. */
export function downstreamResponseHeaders(raw: readonly Buffer[] | readonly string[]): { headers: string[]; contentLength: number; connectionClose: boolean } {
  const out: string[] = [];
  let contentLength = -1;
  let connectionClose = false;
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    // Header bytes are latin1 on the wire (as Node's own parser reads them).
    const name = raw[i]!.toString('latin1' as never);
    const value = raw[i + 1]!.toString('latin1' as never);
    // Every name this loop acts on is shorter than 20 characters: longer ones skip the lowercase copy.
    const lower = name.length < 20 ? name.toLowerCase() : '';
    if (lower !== '') {
      if (lower === 'connection') {
        if (/\bclose\b/i.test(value)) connectionClose = true;
        listed = connectionListed(value);
        continue;
      }
      if (RESPONSE_HOP.has(lower)) continue;
      if (lower === 'content-length') contentLength = Number(value);
    }
    out.push(name, value);
  }
  // Rare: names listed in Connection are hop-by-hop too.
  if (listed !== undefined) dropHeaders(out, listed);
  return { headers: out, contentLength, connectionClose };
}

/** Remove, in place, every header whose lowercase name is in `names`. */
function dropHeaders(headers: string[], names: ReadonlySet<string>): void {
  let w = 0;
  for (let r = 0; r < headers.length; r += 2) {
    if (names.has(headers[r]!.toLowerCase())) continue;
    headers[w++] = headers[r]!;
    headers[w++] = headers[r + 1]!;
  }
  headers.length = w;
}

/** Apply compiled header operations to a flat header array (remove, then set, then add). */
export function applyHeaderOps(headers: string[], ops: { remove: readonly string[]; set: ReadonlyArray<readonly [string, string]>; add: ReadonlyArray<readonly [string, string]> }): void {
  if (ops.remove.length > 0 || ops.set.length > 0) {
    const drop = new Set<string>(ops.remove);
    for (const [n] of ops.set) drop.add(n.toLowerCase());
    dropHeaders(headers, drop);
  }
  for (const [n, v] of ops.set) headers.push(n, v);
  for (const [n, v] of ops.add) headers.push(n, v);
}

/** Replace (or add) one header in a flat array, case-insensitively. */
export function setHeader(headers: string[], name: string, value: string): void {
  const lower = name.toLowerCase();
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() === lower) { headers[i + 1] = value; return; }
  }
  headers.push(name, value);
}

/** Flat array → object with lowercase keys (for logs and explain). Repeated names join with ', '. */
export function headersToObject(headers: readonly string[]): Record<string, string> {
  const o: Record<string, string> = {};
  for (let i = 0; i < headers.length; i += 2) {
    const k = headers[i]!.toLowerCase();
    o[k] = o[k] === undefined ? headers[i + 1]! : `${o[k]}, ${headers[i + 1]!}`;
  }
  return o;
}
