/**
 * HTTP/2 header lists against RFC 9113 §8.2 and §8.3: whether a request, a response or a trailer section is
 * well-formed (a malformed one is a stream error), and a message's content-length. Pure: strings in, a verdict out
 * (fields whose value holds a stray control character are dropped from the list in place).
 */

/** content-length of a header list: -1 when absent, -2 when not a number or given twice with different values. */
export function contentLength(flat: readonly string[]): number {
  let n = -1;
  for (let i = 0; i < flat.length; i += 2) {
    if (flat[i] === 'content-length') {
      const v = flat[i + 1]!;
      if (!/^\d{1,15}$/.test(v)) return -2;
      if (n >= 0 && Number(v) !== n) return -2;
      n = Number(v);
    }
  }
  return n;
}

/** Fields that are HTTP/1 connection-specific and malformed in HTTP/2 (§8.2.2). */
export const CONNECTION_SPECIFIC: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * A request's header list against §8.3.1 and §8.2: null when well-formed, else why not (regular fields holding control
 * characters other than HTAB are removed from `flat`; a pseudo-header value holding one, or a blank, is malformed).
 */
export function checkRequest(flat: string[]): string | null {
  let controls = false;
  let method = '';
  let path = '';
  let scheme = '';
  let authority = false;
  let regular = false;
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!;
    const value = flat[i + 1]!;
    if (name.length === 0) return 'empty field name';
    if (name.charCodeAt(0) === 58) {
      if (regular) return 'pseudo-header after a regular field';
      // No control character or blank in a pseudo-header value (§8.2.1: no NUL, CR, LF in any field; a request line
      // holds none of them either): passed on, `/admin\0.png` is judged as not /admin by a proxy, read as /admin by
      // an app that ends the string at NUL.
      if (/[\x00-\x20\x7f]/.test(value)) return `a blank or control character in ${name}`;
      switch (name) {
        case ':method': if (method !== '') return 'duplicate :method'; method = value; break;
        case ':path': if (path !== '') return 'duplicate :path'; path = value; if (value === '') return 'empty :path'; break;
        case ':scheme': if (scheme !== '') return 'duplicate :scheme'; scheme = value; break;
        case ':authority': if (authority) return 'duplicate :authority'; authority = true; break;
        default: return `unknown pseudo-header ${name}`;
      }
      continue;
    }
    regular = true;
    const bad = checkField(name, value);
    if (bad === CONTROL) controls = true;
    else if (bad !== null) return bad;
  }
  // Other control characters (C0 but HTAB, DEL) are not malformed in HTTP/2 (§8.2.1) but no valid HTTP field value
  // holds them, and HTTP/1 cannot carry them upstream: as nghttp2 does, such fields are dropped, the request served.
  if (controls) dropControlFields(flat);
  if (method === '') return 'no :method';
  if (method === 'CONNECT') return path === '' && scheme === '' && authority ? null : 'CONNECT needs :authority and no :path or :scheme';
  if (path === '' || scheme === '') return 'no :path or :scheme';
  return null;
}

/** A response's header list (after `:status`, checked by the caller): only regular fields, each well-formed. */
export function checkResponse(flat: string[]): string | null {
  return checkRegular(flat, 2);
}

/** A trailer section: no pseudo-headers, each field well-formed. */
export function checkTrailers(flat: string[]): string | null {
  return checkRegular(flat, 0);
}

function checkRegular(flat: string[], from: number): string | null {
  let controls = false;
  for (let i = from; i < flat.length; i += 2) {
    const name = flat[i]!;
    if (name.length === 0) return 'empty field name';
    if (name.charCodeAt(0) === 58) return `pseudo-header ${name} where none may be`;
    const bad = checkField(name, flat[i + 1]!);
    if (bad === CONTROL) controls = true;
    else if (bad !== null) return bad;
  }
  if (controls) dropControlFields(flat);
  return null;
}

/** Returned by checkField for a value with a control character that is dropped rather than refused. */
const CONTROL = 'control';

/**
 * One regular field against §8.2.1 and §8.2.2: a lowercase visible-ASCII name without a colon, not
 * connection-specific, `te` only as "trailers"; a value without NUL, CR or LF, not starting or ending with SP or
 * HTAB. CONTROL for a value that holds another control character (the caller drops the field).
 */
function checkField(name: string, value: string): string | null {
  for (let j = 0; j < name.length; j++) {
    const c = name.charCodeAt(j);
    if ((c >= 65 && c <= 90) || c <= 32 || c >= 127 || c === 58) return 'uppercase or invalid character in a field name';
  }
  if (CONNECTION_SPECIFIC.has(name)) return `connection-specific field ${name}`;
  if (name === 'te' && value !== 'trailers') return 'te other than trailers';
  const n = value.length;
  if (n === 0) return null;
  const first = value.charCodeAt(0);
  const last = value.charCodeAt(n - 1);
  if (first === 32 || first === 9 || last === 32 || last === 9) return 'a field value starting or ending with whitespace';
  let controls = false;
  for (let j = 0; j < n; j++) {
    const c = value.charCodeAt(j);
    if (c < 32 || c === 127) {
      if (c === 0 || c === 10 || c === 13) return 'NUL, CR or LF in a field value';
      if (c !== 9) controls = true;
    }
  }
  return controls ? CONTROL : null;
}

/** Remove, in place, the regular fields whose value holds a control character other than HTAB (see checkRequest). */
function dropControlFields(flat: string[]): void {
  let w = 0;
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!;
    const value = flat[i + 1]!;
    if (name.charCodeAt(0) !== 58 && /[\x00-\x08\x0a-\x1f\x7f]/.test(value)) continue;
    flat[w++] = name;
    flat[w++] = value;
  }
  flat.length = w;
}
