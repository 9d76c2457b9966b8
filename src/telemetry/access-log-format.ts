/**
 * Access-log formats: Envoy `%COMMAND%` format strings compiled once into `(rec) => line`, and Istio's default TEXT
 * and JSON formats. Pure: no I/O (the writer is ./access-log.ts).
 */
import type { RequestRecord } from '../model.js';

/** Istio's default TEXT format (MeshConfig.accessLogFormat unset, accessLogEncoding TEXT), Istio ≥ 1.9. */
export const ISTIO_TEXT_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% ' +
  '%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% ' +
  '%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" ' +
  '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% ' +
  '%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n';

/** Istio's default JSON format (accessLogEncoding JSON): Istio's key names, in Istio's order. */
export const ISTIO_JSON_FORMAT: Readonly<Record<string, string>> = Object.freeze({
  start_time: '%START_TIME%',
  route_name: '%ROUTE_NAME%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  protocol: '%PROTOCOL%',
  response_code: '%RESPONSE_CODE%',
  response_flags: '%RESPONSE_FLAGS%',
  response_code_details: '%RESPONSE_CODE_DETAILS%',
  connection_termination_details: '%CONNECTION_TERMINATION_DETAILS%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  duration: '%DURATION%',
  upstream_service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
  x_forwarded_for: '%REQ(X-FORWARDED-FOR)%',
  user_agent: '%REQ(USER-AGENT)%',
  request_id: '%REQ(X-REQUEST-ID)%',
  authority: '%REQ(:AUTHORITY)%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_cluster: '%UPSTREAM_CLUSTER%',
  upstream_local_address: '%UPSTREAM_LOCAL_ADDRESS%',
  downstream_local_address: '%DOWNSTREAM_LOCAL_ADDRESS%',
  downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%',
  requested_server_name: '%REQUESTED_SERVER_NAME%',
  upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
});

/** An operator's value: a string, a number (JSON keeps it numeric, as Envoy does) or undefined (`-` / null). */
type Value = string | number | undefined;
type Op = (rec: RequestRecord) => Value;

export class AccessLogFormatError extends Error {
  override name = 'AccessLogFormatError';
}

export interface CompileOptions {
  /** Environment for `%ENVIRONMENT(X)%` and `%HOSTNAME%`, read once at compile time (the CLI's process environment); default none. */
  env?: Readonly<Record<string, string | undefined>>;
}

const NO_ENV: Readonly<Record<string, string | undefined>> = {};

// === Escaping ===

// C0 controls, DEL and C1 controls (0x9b is a one-byte ANSI CSI): a logged header must never start a new line or
// drive a terminal (CVE-2024-45808 class).
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;
const CONTROL_G = /[\x00-\x1f\x7f-\x9f]/g;

function escapeControl(s: string): string {
  if (!CONTROL.test(s)) return s;
  return s.replace(CONTROL_G, (c) => {
    switch (c) {
      case '\n':
        return '\\n';
      case '\r':
        return '\\r';
      case '\t':
        return '\\t';
      default:
        return '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0');
    }
  });
}

// DEL and C1 controls, which JSON.stringify leaves as they are (0x9b is a one-byte CSI to some terminals).
const JSON_UNESCAPED_CONTROL = /[\x7f-\x9f]/;
const JSON_UNESCAPED_CONTROL_G = /[\x7f-\x9f]/g;

/** JSON.stringify, with DEL and C1 controls escaped as \u00XX too: a JSON line is as inert as a text one. */
function jsonString(v: string): string {
  const j = JSON.stringify(v);
  if (!JSON_UNESCAPED_CONTROL.test(j)) return j;
  return j.replace(JSON_UNESCAPED_CONTROL_G, (c) => '\\u00' + c.charCodeAt(0).toString(16));
}

// === Operators ===

function header(h: Readonly<Record<string, string | string[] | undefined>> | undefined, name: string): string | undefined {
  if (h === undefined) return undefined;
  const v = h[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

/** Pseudo-headers map to the record's fields; everything else is a (lowercase) request header. */
function requestHeaderGetter(name: string): Op {
  switch (name) {
    case ':method':
      return (r) => r.method;
    case ':path':
      return (r) => r.path;
    case ':authority':
    case 'host':
      return (r) => r.authority;
    case ':scheme':
      return (r) => header(r.requestHeaders, ':scheme') ?? 'http';
    case ':protocol':
      return (r) => header(r.requestHeaders, ':protocol');
    default:
      return (r) => header(r.requestHeaders, name);
  }
}

function responseHeaderGetter(name: string): Op {
  if (name === 'x-envoy-upstream-service-time') {
    // Envoy sets it from the upstream time in whole milliseconds.
    return (r) => (r.upstreamServiceTimeMs === undefined ? header(r.responseHeaders, name) : Math.trunc(r.upstreamServiceTimeMs));
  }
  return (r) => header(r.responseHeaders, name);
}

/** `%REQ(X?Y):Z%`: header X, else Y, truncated to Z characters. */
function headerOp(arg: string, maxLen: number | undefined, kind: 'REQ' | 'RESP' | 'REQ_WITHOUT_QUERY'): Op {
  const [first, alt, extra] = arg.toLowerCase().split('?');
  if (!first || extra !== undefined || alt === '') throw new AccessLogFormatError(`%${kind}(${arg})%: expected HEADER or HEADER?ALTERNATIVE`);
  const get = kind === 'RESP' ? responseHeaderGetter : requestHeaderGetter;
  const a = get(first);
  const b = alt === undefined ? undefined : get(alt);
  let op: Op = b === undefined ? a : (r) => a(r) ?? b(r);
  if (kind === 'REQ_WITHOUT_QUERY') {
    const inner = op;
    op = (r) => {
      const v = inner(r);
      if (typeof v !== 'string') return v;
      const q = v.indexOf('?');
      return q < 0 ? v : v.slice(0, q);
    };
  }
  if (maxLen === undefined) return op;
  const inner = op;
  return (r) => {
    const v = inner(r);
    return typeof v === 'string' && v.length > maxLen ? v.slice(0, maxLen) : v;
  };
}

const GRPC_NAMES = [
  'OK', 'Canceled', 'Unknown', 'InvalidArgument', 'DeadlineExceeded', 'NotFound', 'AlreadyExists', 'PermissionDenied',
  'ResourceExhausted', 'FailedPrecondition', 'Aborted', 'OutOfRange', 'Unimplemented', 'Internal', 'Unavailable',
  'DataLoss', 'Unauthenticated',
];

function withoutPort(addr: string | undefined): string | undefined {
  if (addr === undefined) return undefined;
  if (addr.startsWith('[')) {
    const end = addr.indexOf(']');
    return end < 0 ? addr : addr.slice(1, end);
  }
  const i = addr.lastIndexOf(':');
  return i < 0 || addr.indexOf(':') !== i ? addr : addr.slice(0, i);
}

function portOf(addr: string): string | undefined {
  const i = addr.lastIndexOf(':');
  return i < 0 ? undefined : addr.slice(i + 1);
}

/** `%START_TIME(fmt)%` with the strftime subset Envoy users commonly use, in UTC like Envoy. */
function startTimeOp(fmt: string | undefined): Op {
  if (fmt === undefined || fmt === '') return (r) => new Date(r.startTime).toISOString();
  const parts: Array<string | ((d: Date, ms: number) => string)> = [];
  const p2 = (n: number) => String(n).padStart(2, '0');
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i]!;
    if (c !== '%') {
      parts.push(c);
      continue;
    }
    let spec = fmt[++i];
    // %3f / %6f / %9f and %E3S style fractions
    if (spec === 'E' || (spec !== undefined && /[0-9]/.test(spec))) {
      let digits = '';
      if (spec === 'E') spec = fmt[++i];
      while (spec !== undefined && /[0-9]/.test(spec)) {
        digits += spec;
        spec = fmt[++i];
      }
      const n = Number(digits || '3');
      if (spec === 'f') parts.push((_d, ms) => fracOf(ms, n));
      else if (spec === 'S') parts.push((d, ms) => `${p2(d.getUTCSeconds())}.${fracOf(ms, n)}`);
      else throw new AccessLogFormatError(`%START_TIME(${fmt})%: unsupported specifier %${digits}${spec ?? ''}`);
      continue;
    }
    switch (spec) {
      case 'Y': parts.push((d) => String(d.getUTCFullYear())); break;
      case 'm': parts.push((d) => p2(d.getUTCMonth() + 1)); break;
      case 'd': parts.push((d) => p2(d.getUTCDate())); break;
      case 'H': parts.push((d) => p2(d.getUTCHours())); break;
      case 'M': parts.push((d) => p2(d.getUTCMinutes())); break;
      case 'S': parts.push((d) => p2(d.getUTCSeconds())); break;
      case 's': parts.push((_d, ms) => String(Math.floor(ms / 1000))); break;
      case 'z': parts.push('+0000'); break;
      case 'Z': parts.push('UTC'); break;
      case 'F': parts.push((d) => `${d.getUTCFullYear()}-${p2(d.getUTCMonth() + 1)}-${p2(d.getUTCDate())}`); break;
      case 'T': parts.push((d) => `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}`); break;
      case '%': parts.push('%'); break;
      default:
        throw new AccessLogFormatError(`%START_TIME(${fmt})%: unsupported specifier %${spec ?? ''}`);
    }
  }
  return (r) => {
    const d = new Date(r.startTime);
    let s = '';
    for (const p of parts) s += typeof p === 'string' ? p : p(d, r.startTime);
    return s;
  };
}

function fracOf(ms: number, digits: number): string {
  const frac = String(Math.floor(((ms % 1000) + 1000) % 1000)).padStart(3, '0');
  return digits <= 3 ? frac.slice(0, digits) : frac.padEnd(digits, '0');
}

const ms = (v: number | undefined): number | undefined => (v === undefined ? undefined : Math.trunc(v));

/** Operators without arguments. Unset values are `undefined` (`-` in text, null in JSON). */
const SIMPLE: Readonly<Record<string, Op>> = {
  RESPONSE_CODE: (r) => r.status,
  RESPONSE_FLAGS: (r) => r.flags || '-',
  RESPONSE_CODE_DETAILS: (r) => r.details || undefined,
  // Remora does not track per-connection termination reasons or TLS failure reasons: always unset.
  CONNECTION_TERMINATION_DETAILS: () => undefined,
  UPSTREAM_TRANSPORT_FAILURE_REASON: () => undefined,
  UPSTREAM_LOCAL_ADDRESS: () => undefined,
  REQUESTED_SERVER_NAME: () => undefined,
  BYTES_RECEIVED: (r) => r.bytesReceived,
  BYTES_SENT: (r) => r.bytesSent,
  DURATION: (r) => Math.trunc(r.durationMs),
  REQUEST_DURATION: () => undefined,
  RESPONSE_DURATION: (r) => (r.upstreamServiceTimeMs === undefined ? undefined : ms(r.upstreamServiceTimeMs)),
  UPSTREAM_HOST: (r) => r.upstreamHost,
  UPSTREAM_CLUSTER: (r) => r.upstreamCluster,
  UPSTREAM_CLUSTER_RAW: (r) => r.upstreamCluster,
  UPSTREAM_REQUEST_ATTEMPT_COUNT: (r) => r.attempts,
  DOWNSTREAM_REMOTE_ADDRESS: (r) => r.downstreamRemoteAddress,
  DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: (r) => withoutPort(r.downstreamRemoteAddress),
  DOWNSTREAM_REMOTE_PORT: (r) => portOf(r.downstreamRemoteAddress),
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS: (r) => r.downstreamRemoteAddress,
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT: (r) => withoutPort(r.downstreamRemoteAddress),
  DOWNSTREAM_LOCAL_ADDRESS: (r) => r.downstreamLocalAddress,
  DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: (r) => withoutPort(r.downstreamLocalAddress),
  DOWNSTREAM_LOCAL_PORT: (r) => portOf(r.downstreamLocalAddress),
  ROUTE_NAME: (r) => r.routeName,
  // Inbound over mutual TLS: the caller's SPIFFE ID (its certificate's URI SAN), as Envoy logs it.
  DOWNSTREAM_PEER_URI_SAN: (r) => r.peer?.spiffeId,
  PROTOCOL: (r) => r.protocol,
  UPSTREAM_PROTOCOL: (r) => (r.upstreamHost === undefined ? undefined : r.protocol),
  REQUEST_PROTOCOL: (r) => r.protocol,
  GRPC_STATUS: (r) => {
    const v = header(r.responseHeaders, 'grpc-status');
    if (v === undefined) return undefined;
    return GRPC_NAMES[Number(v)] ?? v;
  },
  GRPC_STATUS_NUMBER: (r) => {
    const v = header(r.responseHeaders, 'grpc-status');
    return v === undefined || !/^\d+$/.test(v) ? undefined : Number(v);
  },
  // The request id is the proxy's x-request-id (generated when the app sent none).
  STREAM_ID: (r) => r.requestId || undefined,
  START_TIME: startTimeOp(undefined),
};

const OPERATOR = /%([A-Z_]+)(?:\(([^)]*)\))?(?::(\d+))?%/y;

/** Compile one `%COMMAND(arg):len%` at the start of `s[i..]`; returns the op and the index after it. */
function compileOperator(s: string, i: number, opts: CompileOptions): { op: Op; end: number } {
  OPERATOR.lastIndex = i;
  const m = OPERATOR.exec(s);
  if (m === null) {
    const close = s.indexOf('%', i + 1);
    const snippet = close < 0 ? s.slice(i, i + 40) : s.slice(i, close + 1);
    throw new AccessLogFormatError(`malformed operator ${JSON.stringify(snippet)} at offset ${i} (a literal percent sign is written %%)`);
  }
  const [, name, arg, len] = m as unknown as [string, string, string | undefined, string | undefined];
  const maxLen = len === undefined ? undefined : Number(len);
  const end = i + m[0].length;
  switch (name) {
    case 'REQ':
    case 'RESP':
    case 'REQ_WITHOUT_QUERY':
      if (arg === undefined) throw new AccessLogFormatError(`%${name}%: needs a header name, e.g. %${name}(X-REQUEST-ID)%`);
      return { op: headerOp(arg, maxLen, name), end };
    case 'START_TIME':
      return { op: startTimeOp(arg), end };
    case 'ENVIRONMENT': {
      if (!arg) throw new AccessLogFormatError('%ENVIRONMENT%: needs a variable name, e.g. %ENVIRONMENT(POD_NAME)%');
      const env = opts.env ?? NO_ENV;
      let v = env[arg];
      if (v !== undefined && maxLen !== undefined) v = v.slice(0, maxLen);
      return { op: () => v, end };
    }
    case 'HOSTNAME': {
      const v = (opts.env ?? NO_ENV).HOSTNAME;
      return { op: () => v, end };
    }
  }
  const op = SIMPLE[name];
  if (op === undefined) throw new AccessLogFormatError(`unknown access log operator %${name}% at offset ${i}`);
  if (arg !== undefined) throw new AccessLogFormatError(`%${name}% takes no argument`);
  return { op, end };
}

type Part = string | Op;

function compileParts(format: string, opts: CompileOptions): Part[] {
  const parts: Part[] = [];
  let lit = '';
  let i = 0;
  while (i < format.length) {
    const p = format.indexOf('%', i);
    if (p < 0) {
      lit += format.slice(i);
      break;
    }
    lit += format.slice(i, p);
    if (format[p + 1] === '%') {
      lit += '%';
      i = p + 2;
      continue;
    }
    const { op, end } = compileOperator(format, p, opts);
    if (lit !== '') parts.push(lit);
    lit = '';
    parts.push(op);
    i = end;
  }
  if (lit !== '') parts.push(lit);
  return parts;
}

/**
 * Compile an Envoy text format string into a line formatter. Empty values print `-`; header values are
 * control-character escaped. A newline is appended when missing (Istio: "Istio will insert a newline on all formats").
 */
export function compileTextFormat(format: string, opts: CompileOptions = {}): (rec: RequestRecord) => string {
  const f = format.endsWith('\n') ? format : format + '\n';
  const parts = compileParts(f, opts);
  return (rec) => {
    let s = '';
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (typeof p === 'string') {
        s += p;
        continue;
      }
      const v = p(rec);
      s += v === undefined || v === '' ? '-' : typeof v === 'number' ? String(v) : escapeControl(v);
    }
    return s;
  };
}

/**
 * Compile a JSON format (key → format string, as Envoy's `json_format`). A value that is exactly one operator keeps
 * its type (numbers stay numbers, unset is null, as Envoy does); mixed values are strings. One object per line.
 */
export function compileJsonFormat(fields: Readonly<Record<string, string>>, opts: CompileOptions = {}): (rec: RequestRecord) => string {
  const keys = Object.keys(fields);
  const compiled = keys.map((k) => {
    const parts = compileParts(fields[k]!, opts);
    if (parts.length === 1 && typeof parts[0] === 'function') return parts[0];
    return (rec: RequestRecord): Value => {
      let s = '';
      for (const p of parts) {
        if (typeof p === 'string') s += p;
        else {
          const v = p(rec);
          s += v === undefined || v === '' ? '-' : String(v);
        }
      }
      return s;
    };
  });
  const prefixes = keys.map((k, i) => (i === 0 ? '{' : ',') + JSON.stringify(k) + ':');
  return (rec) => {
    let s = '';
    for (let i = 0; i < compiled.length; i++) {
      const v = compiled[i]!(rec);
      // JSON.stringify escapes C0 controls (\n, \u001b …), so values cannot break the line; jsonString adds DEL and C1.
      s += prefixes[i]! + (v === undefined || v === '' ? 'null' : typeof v === 'number' ? String(v) : jsonString(v));
    }
    return (compiled.length === 0 ? '{' : s) + '}\n';
  };
}

/**
 * `--access-log-format`: 'text' (Istio's default TEXT), 'json' (Istio's JSON), a JSON object text (custom JSON
 * format, like MeshConfig.accessLogFormat with JSON encoding) or any other string (custom Envoy text format).
 */
export function compileAccessLogFormat(format: 'text' | 'json' | string, opts: CompileOptions = {}): (rec: RequestRecord) => string {
  if (format === 'text' || format === '') return compileTextFormat(ISTIO_TEXT_FORMAT, opts);
  if (format === 'json') return compileJsonFormat(ISTIO_JSON_FORMAT, opts);
  const t = format.trim();
  if (t.startsWith('{') && t.endsWith('}')) {
    let obj: unknown;
    try {
      obj = JSON.parse(t);
    } catch (e) {
      throw new AccessLogFormatError(`custom JSON access log format does not parse: ${(e as Error).message}`);
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj) || !Object.values(obj).every((v) => typeof v === 'string')) {
      throw new AccessLogFormatError('custom JSON access log format must be an object of string values');
    }
    return compileJsonFormat(obj as Record<string, string>, opts);
  }
  return compileTextFormat(format, opts);
}
