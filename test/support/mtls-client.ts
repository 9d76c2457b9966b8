/**
 * A hostile mTLS client for tests: it dials a sidecar's inbound port with TLS, Istio's ALPN and whatever certificate
 * the test hands it (forged, expired, none) without checking the server, then speaks raw HTTP/1, HTTP/2 (node:http2
 * over that socket) or bytes, and reports what came back and whether the connection was refused.
 */
import tls from 'node:tls';
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';

export interface ClientCert { certFile: string; keyFile: string }

export interface Exchange {
  /** The TLS handshake completed from the client's side. */
  secure: boolean;
  /** Everything the server sent (decrypted). */
  data: string;
  /** The error that ended the connection, if any (ECONNRESET, an alert …). */
  error?: string;
}

function tlsOptions(port: number, cert: ClientCert | undefined, alpn: string): tls.ConnectionOptions {
  return {
    port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: [alpn],
    ...(cert !== undefined ? { cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) } : {}),
  };
}

/** TLS with `alpn` and `cert`, write `payload` once the handshake is done, read until close (bounded). */
export function mtlsExchange(port: number, cert: ClientCert | undefined, payload: string | Buffer, opts: { alpn?: string; timeoutMs?: number; until?: (data: string) => boolean } = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const out: Exchange = { secure: false, data: '' };
    const s = tls.connect(tlsOptions(port, cert, opts.alpn ?? 'istio-http/1.1'), () => { out.secure = true; s.write(payload); });
    const timer = setTimeout(() => s.destroy(), opts.timeoutMs ?? 3000);
    s.on('data', (d: Buffer) => { out.data += d.toString('latin1'); if (opts.until?.(out.data)) s.end(); });
    s.on('error', (e: NodeJS.ErrnoException) => { out.error = e.code ?? e.message; });
    s.on('close', () => { clearTimeout(timer); resolve(out); });
  });
}

/** One HTTP/1.1 request over mTLS; `until` stops at the end of the first response head. */
export function mtlsHttp1(port: number, cert: ClientCert | undefined, head: string, opts: { timeoutMs?: number } = {}): Promise<Exchange & { status: number }> {
  return mtlsExchange(port, cert, head, { ...opts, until: (d) => d.includes('\r\n\r\n') }).then((r) => ({ ...r, status: statusOf(r.data) }));
}

export function statusOf(data: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
  return m ? Number(m[1]) : 0;
}

/** One HTTP/2 request (node:http2 over a TLS socket with ALPN istio-h2): the status, or 0 with the error. */
export function mtlsHttp2(port: number, cert: ClientCert | undefined, headers: http2.OutgoingHttpHeaders, opts: { timeoutMs?: number } = {}): Promise<{ status: number; body: string; error?: string; headers?: http2.IncomingHttpHeaders }> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: { status: number; body: string; error?: string; headers?: http2.IncomingHttpHeaders }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve(r);
    };
    const session = http2.connect(`http://127.0.0.1:${port}`, { createConnection: () => tls.connect(tlsOptions(port, cert, 'istio-h2')) });
    const timer = setTimeout(() => done({ status: 0, body: '', error: 'timeout' }), opts.timeoutMs ?? 3000);
    session.on('error', (e: NodeJS.ErrnoException) => done({ status: 0, body: '', error: e.code ?? e.message }));
    session.on('close', () => done({ status: 0, body: '', error: 'closed' }));
    const req = session.request({ ':method': 'GET', ':path': '/', ...headers });
    req.on('error', (e: NodeJS.ErrnoException) => done({ status: 0, body: '', error: e.code ?? e.message }));
    let status = 0;
    let rh: http2.IncomingHttpHeaders | undefined;
    let body = '';
    req.on('response', (h) => { status = Number(h[':status']); rh = h; });
    req.on('data', (d: Buffer) => { body += d.toString(); });
    req.on('end', () => done({ status, body, ...(rh !== undefined ? { headers: rh } : {}) }));
    req.end();
  });
}
