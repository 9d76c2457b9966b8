// A test peer run inside a network namespace by test/support/netns.ts (plain JavaScript: it runs as another user
// with bare node). `serve` starts servers from a JSON list and prints "listening" once all are bound; `client`
// runs one operation and prints its result as one JSON line, then exits. Every operation is bounded in time.
//   node netns-peer.mjs serve '[{"kind":"http","host":"0.0.0.0","port":8080,"name":"app"}, …]'
//   node netns-peer.mjs client '{"op":"http","host":"…","port":80,"path":"/x","headers":{…}}'
// A server with `"log": true` prints one `seen {json}` line per connection and per HTTP request it gets, so a test
// can tell what reached it.
import net from 'node:net';
import http from 'node:http';

const [mode, arg] = process.argv.slice(2);
const spec = JSON.parse(arg ?? 'null');

function serve(list) {
  let pending = list.length;
  const bound = () => { if (--pending === 0) process.stdout.write('listening\n'); };
  const seen = (s, what) => { if (s.log) process.stdout.write(`seen ${JSON.stringify({ server: s.name ?? `${s.kind}:${s.port}`, ...what })}\n`); };
  for (const s of list) {
    if (s.kind === 'http') {
      // Answers with who it is, what it saw, and the peer it saw (so a test can tell a sidecar hop).
      const server = http.createServer((req, res) => {
        seen(s, { kind: 'request', method: req.method, url: req.url, peer: req.socket.remoteAddress });
        const body = JSON.stringify({ server: s.name, method: req.method, url: req.url, headers: req.headers, peer: req.socket.remoteAddress });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      server.on('connection', (c) => seen(s, { kind: 'connection', peer: c.remoteAddress }));
      server.listen(s.port, s.host, bound);
    } else if (s.kind === 'echo') {
      net.createServer((c) => {
        seen(s, { kind: 'connection', peer: c.remoteAddress });
        c.on('error', () => {});
        // Each chunk is logged once echoed back (written out): a test can wait for the echo to be on its way.
        c.on('data', (d) => { if (c.write(d)) seen(s, { kind: 'data', bytes: d.length }); else c.pause(), c.once('drain', () => { seen(s, { kind: 'data', bytes: d.length }); c.resume(); }); });
        c.on('end', () => c.end());
      }).listen(s.port, s.host, bound);
    } else if (s.kind === 'banner') {
      // Server speaks first (MySQL, SMTP style): a greeting on connect, then echo.
      net.createServer((c) => { c.on('error', () => {}); c.write(`${s.banner}\r\n`); c.pipe(c); }).listen(s.port, s.host, bound);
    }
  }
}

let finished = false;
function done(result) {
  if (finished) return;
  finished = true;
  // Exit once the line is written: a large result (a /config_dump body) must not be cut by exit() while the pipe
  // to the test still holds part of it (seen once: a 219 KB line cut short).
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

function client(op) {
  const started = Date.now();
  setTimeout(() => done({ ok: false, error: 'timeout', ms: Date.now() - started }), op.timeoutMs ?? 5000).unref();
  if (op.op === 'http') {
    const req = http.request({ host: op.host, port: op.port, path: op.path ?? '/', headers: op.headers ?? {}, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => done({ ok: true, status: res.statusCode, headers: res.headers, body, ms: Date.now() - started }));
    });
    req.on('error', (e) => done({ ok: false, error: e.code ?? e.message, ms: Date.now() - started }));
    req.end();
  } else if (op.op === 'tcp') {
    // Connect, optionally send, and collect what comes back until `expectBytes` arrived or the peer closed.
    const sock = net.connect({ host: op.host, port: op.port });
    let got = Buffer.alloc(0);
    let connectedAt = 0;
    let firstByteMs;
    // `delayMs`: say nothing for that long after connecting before sending (a slow client).
    sock.on('connect', () => {
      connectedAt = Date.now();
      if (op.send !== undefined) setTimeout(() => sock.write(op.send), op.delayMs ?? 0);
    });
    sock.on('data', (d) => {
      if (firstByteMs === undefined) firstByteMs = Date.now() - connectedAt;
      got = Buffer.concat([got, d]);
      if (got.length >= (op.expectBytes ?? Infinity)) { sock.destroy(); done({ ok: true, data: got.toString('latin1'), firstByteMs, ms: Date.now() - started }); }
    });
    sock.on('end', () => done({ ok: true, data: got.toString('latin1'), firstByteMs, closed: true, ms: Date.now() - started }));
    sock.on('error', (e) => done({ ok: false, error: e.code ?? e.message, data: got.toString('latin1'), ms: Date.now() - started }));
  } else {
    done({ ok: false, error: `unknown op ${op.op}` });
  }
}

if (mode === 'serve') serve(spec);
else if (mode === 'client') client(spec);
else { process.stderr.write('usage: netns-peer.mjs serve JSON | client JSON\n'); process.exit(2); }
