/**
 * The app behind a sidecar in attack tests: one port answering HTTP/1.1 and cleartext HTTP/2 (the inbound side
 * speaks to the app in the caller's protocol), recording every request it sees (method, path, headers, protocol) and
 * every TCP connection made to it, so a test can say "the app never saw it". It takes an h2c upgrade (101, then
 * HTTP/2 on that connection) as a lenient app would.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { Duplex } from 'node:stream';

export interface AppRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  protocol: 'HTTP/1.1' | 'HTTP/2';
}

export class RecordingApp {
  readonly requests: AppRequest[] = [];
  connections = 0;
  port = 0;
  private readonly server: net.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly sockets = new Set<net.Socket>();

  constructor() {
    const record = (method: string, path: string, headers: Record<string, string | string[] | undefined>, protocol: AppRequest['protocol']): void => {
      this.requests.push({ method, path, headers, protocol });
    };
    this.h1 = http.createServer((req, res) => {
      record(req.method ?? '', req.url ?? '', req.headers, 'HTTP/1.1');
      req.resume();
      res.end('app');
    });
    this.h1.on('upgrade', (req, sock: net.Socket, head: Buffer) => {
      record(req.method ?? '', req.url ?? '', req.headers, 'HTTP/1.1');
      // Like an app behind Go's h2c handler or hypercorn: an h2c upgrade is taken and the connection speaks HTTP/2
      // from here on (whatever it then carries reaches the app's HTTP/2 side, which records it).
      if (String(req.headers.upgrade ?? '').toLowerCase() === 'h2c') {
        sock.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n');
        this.h2.emit('connection', replay(sock, head));
        return;
      }
      sock.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
    });
    this.h1.on('connect', (req, sock: net.Socket) => { record('CONNECT', req.url ?? '', req.headers, 'HTTP/1.1'); sock.end('HTTP/1.1 200 OK\r\n\r\n'); });
    this.h2 = http2.createServer((req, res) => {
      const h = { ...req.headers };
      record(String(h[':method'] ?? ''), String(h[':path'] ?? ''), h, 'HTTP/2');
      req.resume();
      res.end('app');
    });
    // One port for both: the first bytes say which (the HTTP/2 preface starts "PRI ").
    this.server = net.createServer((sock) => {
      this.connections++;
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => { /* the peer went away */ });
      sock.once('data', (first: Buffer) => {
        sock.pause();
        if (first.subarray(0, 4).toString('latin1') === 'PRI ') {
          // node:http2 reads the socket's handle natively, past anything unshifted: hand it a stream that replays.
          this.h2.emit('connection', replay(sock, first));
        } else {
          sock.unshift(first);
          this.h1.emit('connection', sock);
        }
        sock.resume();
      });
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  /** The requests that carried header `x-attack-id: id`. */
  seen(id: string): AppRequest[] {
    return this.requests.filter((r) => r.headers['x-attack-id'] === id);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A stream that yields `first`, then whatever `sock` reads, and writes to `sock` (node:http2 over a socket whose first bytes were already read). */
export function replay(sock: net.Socket, first: Buffer): Duplex {
  const d = new Duplex({
    read() { sock.resume(); },
    write(chunk: Buffer, _enc, cb) { sock.write(chunk, cb); },
    final(cb) { sock.end(); cb(); },
    destroy(err, cb) { sock.destroy(); cb(err); },
  });
  d.push(first);
  sock.on('data', (c: Buffer) => { if (!d.push(c)) sock.pause(); });
  sock.on('end', () => d.push(null));
  sock.on('close', () => d.destroy());
  return d;
}
