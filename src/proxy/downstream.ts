/**
 * One request model on the proxy path: a downstream request/response is an HTTP/1.x pair (Http1Server) or an
 * HTTP/2 stream (Http2Listener) with the same surface, so routing, retries, outlier detection, circuit breaking,
 * tracing, metrics and access logs are one implementation. A call site that only ever sees HTTP/1 (the benchmark,
 * explicit-mode apps) stays monomorphic.
 */
import type { Http1Request, Http1Response } from '../http1/server.js';
import type { Http2Request, Http2Response } from '../http2/server.js';

export type DownstreamRequest = Http1Request | Http2Request;
export type DownstreamResponse = Http1Response | Http2Response;
