// The benchmark's upstream: a minimal raw-`net` HTTP/1.1 server (keep-alive, pipelining-safe)
// answering 98-byte bodies, or N bytes for `/bytes/N`, so the floor ("direct") costs as little
// CPU as possible next to the load generator. Usage: node upstream.js [PORT...] (0 = any).
// GET /__counts returns requests served per local port and OTLP posts (/v1/traces) received, so
// the harness can check that weighted subsets, header matches and trace export were active.
import net from 'node:net';

const counts = new Map<number, number>();
let tracePosts = 0;

const BODY_98 = Buffer.alloc(98, 'a');
const cache = new Map<number, Buffer>();

function responseFor(size: number): Buffer {
  let r = cache.get(size);
  if (!r) {
    const head = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${size}\r\n\r\n`);
    r = Buffer.concat([head, size === 98 ? BODY_98 : Buffer.alloc(size, 'a')]);
    if (cache.size < 64) cache.set(size, r);
  }
  return r;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const MAX_BODY = 64 * 1024 * 1024;

/**
 * Parses requests off one connection and writes one response per request, in order. `tagged`: every response says
 * which local address served it (`x-served-by: <address>`), for the scale scenario's endpoint moves.
 */
export function serve(sock: net.Socket, tagged = false): void {
  sock.setNoDelay(true);
  const port = sock.localPort ?? 0;
  const tag = tagged ? `x-served-by: ${sock.localAddress ?? ''}\r\n` : '';
  const respond = (size: number): Buffer => (tag === '' ? responseFor(size) : Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n${tag}content-length: ${size}\r\n\r\n${'a'.repeat(Math.min(size, 1 << 20))}`));
  let pending: Buffer | undefined;
  let skip = 0; // request body bytes still to discard
  // Chunked request bodies (the OTLP exporter sends them): 0 = none, 1 = at a size line, 2 = trailers.
  let chunked = 0;
  sock.on('data', (chunk: Buffer) => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    pending = undefined;
    let off = 0;
    const out: Buffer[] = [];
    while (off < buf.length) {
      if (skip > 0) {
        const n = Math.min(skip, buf.length - off);
        skip -= n;
        off += n;
        continue;
      }
      if (chunked !== 0) {
        const eol = buf.indexOf('\r\n', off);
        if (eol < 0) {
          pending = buf.subarray(off);
          break;
        }
        const line = buf.toString('latin1', off, eol);
        off = eol + 2;
        if (chunked === 1) {
          const size = parseInt(line, 16);
          if (!(size >= 0)) return void sock.destroy();
          if (size === 0) chunked = 2;
          else skip = size + 2; // data + CRLF
        } else if (line === '') chunked = 0; // end of trailers: the message is complete
        continue;
      }
      const end = buf.indexOf(CRLFCRLF, off);
      if (end < 0) {
        pending = buf.subarray(off);
        break;
      }
      const head = buf.toString('latin1', off, end);
      off = end + 4;
      const sp1 = head.indexOf(' ');
      const sp2 = head.indexOf(' ', sp1 + 1);
      const path = head.slice(sp1 + 1, sp2);
      let size = 98;
      if (path.startsWith('/bytes/')) size = Math.min(MAX_BODY, parseInt(path.slice(7), 10) || 0);
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      if (cl) skip = Number(cl[1]);
      else if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head)) chunked = 1;
      if (path === '/__counts') {
        const body = JSON.stringify({ ports: Object.fromEntries(counts), tracePosts });
        out.push(Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`));
        continue;
      }
      if (path.startsWith('/v1/traces')) tracePosts++;
      else counts.set(port, (counts.get(port) ?? 0) + 1);
      out.push(respond(size));
    }
    if (out.length === 1) sock.write(out[0]!);
    else if (out.length > 1) sock.write(Buffer.concat(out));
    if (pending && pending.length > 64 * 1024) sock.destroy();
    buf = Buffer.alloc(0);
  });
  sock.on('error', () => sock.destroy());
}

export async function startUpstream(ports: number[]): Promise<{ ports: number[]; close: () => Promise<void> }> {
  const servers = await Promise.all(
    ports.map(
      (p) =>
        new Promise<net.Server>((resolve, reject) => {
          const s = net.createServer(serve);
          s.once('error', reject);
          s.listen(p, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  return {
    ports: servers.map((s) => (s.address() as net.AddressInfo).port),
    close: () => Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined),
  };
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const ports = process.argv.slice(2).map(Number);
  const up = await startUpstream(ports.length > 0 ? ports : [0]);
  process.stdout.write(`upstream ready ${JSON.stringify({ ports: up.ports, pid: process.pid })}\n`);
  process.on('SIGTERM', () => void up.close().then(() => process.exit(0)));
}
