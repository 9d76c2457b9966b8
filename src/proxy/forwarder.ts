/**
 * The forwarder's entry point: how a request's body is taken (none, read whole to be replayable, or streamed with a
 * bounded copy for retries and shadows) and the request's Exchange started (./exchange.ts: admission, tries, retries,
 * timeouts, the response; ./attempt.ts: one try; ./proxy-record.ts: the record). With ./mirror.ts (shadow requests),
 * the only code that sequences request I/O; the decisions come from pure modules.
 */
import type { DownstreamRequest, DownstreamResponse } from './downstream.js';
import type { ForwardContext, ForwardPlan } from './forward-plan.js';
import { Exchange } from './exchange.js';

/** Read a request body into memory when it is small enough to replay; otherwise stream it (no retries). */
function bodyMode(req: DownstreamRequest, limit: number): 'none' | 'buffer' | 'stream' {
  // The server layers decide whether a body follows (HTTP/1: Content-Length > 0 or Transfer-Encoding; HTTP/2: the
  // HEADERS frame did not end the stream, with or without a content-length).
  if (req.body === null) return 'none';
  // Expect: 100-continue: the client sends its body only once the upstream said 100, so it cannot be read first.
  if (req.expectContinue) return 'stream';
  if (req.headers['transfer-encoding'] !== undefined) return 'stream';
  const cl = req.headers['content-length'];
  if (cl === undefined) return 'stream';
  return Number(cl) <= limit ? 'buffer' : 'stream';
}

export function forward(req: DownstreamRequest, res: DownstreamResponse, plan: ForwardPlan, ctx: ForwardContext): void {
  const ex = new Exchange(req, res, plan, ctx);
  const mode = bodyMode(req, ctx.retryBufferBytes);
  // Shadows leave once the body is whole and the primary's first try went out (never before, never instead).
  const shadows = plan.shadows;
  if (mode === 'none') {
    ex.body = null;
    ex.replayable = true;
    ex.start();
    if (shadows !== undefined) { if (ex.finished) shadows.drop(); else shadows.send(null); }
  } else if (mode === 'stream') {
    ex.body = req.body;
    ex.replayable = false;
    const cl = req.headers['content-length'];
    // Larger than the retry buffer (by its Content-Length): never retried. Envoy counts it as retry_or_shadow_abandoned.
    // A body of unknown length (chunked HTTP/1, any HTTP/2 body: a gRPC call), or one that waits for 100 Continue,
    // streams at once, and a copy is kept while it stays within the retry buffer: if it ended there, a retry replays
    // it (Envoy buffers for retries too).
    if (cl !== undefined && Number(cl) > ctx.retryBufferBytes) ex.bufferAbandoned(true);
    else ex.copy = [];
    if (shadows !== undefined) {
      // The shadows keep their own copy of the chunks as they go to the primary, up to --mirror-body-bytes.
      if (cl !== undefined && Number(cl) > shadows.maxBody) {
        shadows.drop();
        ex.bufferAbandoned(false);
      } else {
        ex.shadows = shadows;
      }
    }
    ex.start();
  } else {
    ex.replayable = true;
    const chunks: Buffer[] = [];
    let size = 0;
    const body = req.body!;
    body.on('data', (c: Buffer) => { chunks.push(c); size += c.length; });
    body.on('end', () => {
      ex.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      ex.bytesReceived = size;
      ex.start();
      if (shadows !== undefined) {
        if (ex.finished) shadows.drop();
        else if (!shadows.send(ex.body)) ex.bufferAbandoned(false);
      }
    });
    body.on('error', () => { shadows?.drop(); ex.downstreamGone(); });
  }
}
