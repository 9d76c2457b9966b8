/**
 * The mutating admission webhook: AdmissionReview (admission.k8s.io/v1) in, JSONPatch out, over HTTPS.
 * Never throws on input: unusable requests get HTTP 400/413; internal errors get 500 (failurePolicy decides).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { injectObject, InjectError, type InjectOptions } from './inject.js';
import { diff } from './json-patch.js';

/** Kubernetes caps admission request bodies well below this; anything larger is not a real review. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024; // 1 MiB

export interface ReviewOutcome {
  /** HTTP status to answer with. */
  status: number;
  /** An AdmissionReview object (status 200) or a plain-text error. */
  body: Record<string, unknown> | string;
  /** For the log line: what happened to the pod. */
  result: 'injected' | 'skipped' | 'denied' | 'invalid' | 'error';
  detail?: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

function review(apiVersion: string, response: Obj): Record<string, unknown> {
  return { apiVersion, kind: 'AdmissionReview', response };
}

/** Decide the answer to one parsed request body. Pure apart from the options given. */
export function handleAdmissionReview(input: unknown, opts: InjectOptions = {}): ReviewOutcome {
  if (!isObj(input) || input.kind !== 'AdmissionReview') {
    return { status: 400, body: 'expected an AdmissionReview object\n', result: 'invalid', detail: 'not an AdmissionReview' };
  }
  const apiVersion = input.apiVersion;
  if (apiVersion !== 'admission.k8s.io/v1' && apiVersion !== 'admission.k8s.io/v1beta1') {
    return { status: 400, body: `unsupported AdmissionReview apiVersion ${JSON.stringify(apiVersion)}\n`, result: 'invalid', detail: 'bad apiVersion' };
  }
  const req = input.request;
  if (!isObj(req) || typeof req.uid !== 'string' || req.uid === '') {
    // Without a uid there is nothing the API server could match an answer to.
    return { status: 400, body: 'AdmissionReview has no request.uid\n', result: 'invalid', detail: 'missing request.uid' };
  }
  const uid = req.uid;
  const allow = (detail: string, warning?: string): ReviewOutcome => ({
    status: 200,
    body: review(apiVersion, warning === undefined ? { uid, allowed: true } : { uid, allowed: true, warnings: [warning] }),
    result: 'skipped',
    detail,
  });
  const kind = isObj(req.kind) ? req.kind.kind : undefined;
  if (kind !== 'Pod' || req.subResource !== undefined) {
    return allow(`not a Pod (${String(kind)}${req.subResource ? '/' + String(req.subResource) : ''})`, `remora-injector: only Pods are injected; ${String(kind)} was passed through`);
  }
  if (req.operation !== 'CREATE') return allow(`operation ${String(req.operation)}`);
  const pod = req.object;
  if (!isObj(pod)) return allow('no object', 'remora-injector: the review carried no Pod object; nothing injected');
  // The API server sends the pod before defaulting; kind/apiVersion may be absent on the object itself.
  const subject = { ...pod, kind: 'Pod' };
  try {
    const r = injectObject(subject, opts);
    if (!r.changed) return allow(r.skipped ?? 'unchanged');
    const patch = diff(subject, r.object).filter((op) => op.path !== '/kind');
    return {
      status: 200,
      body: review(apiVersion, { uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') }),
      result: 'injected',
    };
  } catch (err) {
    if (err instanceof InjectError) {
      const message = `remora-injector: ${err.message}`;
      return { status: 200, body: review(apiVersion, { uid, allowed: false, status: { code: 400, reason: 'BadRequest', message } }), result: 'denied', detail: err.message };
    }
    return { status: 500, body: 'internal error while injecting\n', result: 'error', detail: (err as Error).message };
  }
}

export interface InjectorServerOptions {
  cert: string | Buffer;
  key: string | Buffer;
  inject?: InjectOptions;
  maxBodyBytes?: number;
  /** Called once per review with the pod's namespace/name and the outcome (for logs). */
  onReview?: (info: { uid?: string; pod: string; result: ReviewOutcome['result']; detail?: string }) => void;
}

function send(res: ServerResponse, status: number, body: Record<string, unknown> | string, close = false): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const headers: Record<string, string | number> = {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
  };
  if (close) headers.connection = 'close';
  res.writeHead(status, headers).end(text);
}

function podName(input: unknown): { uid?: string; pod: string } {
  const req = isObj(input) && isObj(input.request) ? input.request : {};
  const obj = isObj(req.object) ? req.object : {};
  const md = isObj(obj.metadata) ? obj.metadata : {};
  const name = typeof md.name === 'string' && md.name !== '' ? md.name : typeof md.generateName === 'string' ? `${md.generateName}*` : '?';
  const ns = typeof req.namespace === 'string' ? req.namespace : '?';
  return { uid: typeof req.uid === 'string' ? req.uid : undefined, pod: `${ns}/${name}` };
}

/** The request handler, separate from TLS so that it can be reused behind any server. */
export function injectorHandler(opts: Omit<InjectorServerOptions, 'cert' | 'key'>): (req: IncomingMessage, res: ServerResponse) => void {
  const limit = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && (path === '/healthz' || path === '/readyz')) return send(res, 200, 'ok\n');
    if (path !== '/inject' && path !== '/mutate') return send(res, 404, 'not found\n');
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return send(res, 405, 'use POST\n');
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limit) {
      req.resume(); // discard; the connection closes after the answer
      return send(res, 413, `body larger than ${limit} bytes\n`, true);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) tooLarge = true;
      else chunks.push(c);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      if (tooLarge) return send(res, 413, `body larger than ${limit} bytes\n`, true);
      let input: unknown;
      try {
        input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        opts.onReview?.({ pod: '?', result: 'invalid', detail: `malformed JSON: ${(err as Error).message}` });
        return send(res, 400, 'malformed JSON\n');
      }
      const outcome = handleAdmissionReview(input, opts.inject);
      opts.onReview?.({ ...podName(input), result: outcome.result, detail: outcome.detail });
      send(res, outcome.status, outcome.body);
    });
  };
}

/** An HTTPS server answering POST /inject and /mutate, GET /healthz. Not listening yet. */
export function createInjectorServer(opts: InjectorServerOptions): Server {
  const server = createServer({ cert: opts.cert, key: opts.key, minVersion: 'TLSv1.2' }, injectorHandler(opts));
  server.requestTimeout = 10_000; // ms; the API server's own timeoutSeconds is at most 30
  server.headersTimeout = 5_000; // ms
  server.keepAliveTimeout = 30_000; // ms; the API server reuses connections
  return server;
}
