// The app container of the image test's pod, and the commands the test runs in it with `podman exec` (plain
// JavaScript: it runs on the stand-in base's bare node, mounted read-only at /peer). Every operation is bounded in time.
//   node pod-app.mjs serve PORT                  HTTP: /health, /slow?ms=N, anything else echoes what it saw
//   node pod-app.mjs tally URL N                 N sequential GETs; prints {"counts":{server:n},"errors":[…],"viaSidecar":n}
//   node pod-app.mjs tcp HOST PORT TEXT          connect, send TEXT, print what came back (echo) as JSON
//   node pod-app.mjs get URL                     one GET; prints {"status":…,"body":…}
//   node pod-app.mjs request JSON                {url, method, headers, body, caFile, insecure}: one HTTP(S) request
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

const [mode, ...args] = process.argv.slice(2);

function print(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

function get(url, timeoutMs = 5000) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ error: e.code ?? e.message }));
  });
}

if (mode === 'serve') {
  const server = http.createServer((req, res) => {
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    const url = new URL(req.url, 'http://app');
    if (url.pathname === '/health') return reply(200, '{"ok":true}');
    const seen = JSON.stringify({ server: 'app', url: req.url, headers: req.headers, peer: req.socket.remoteAddress });
    if (url.pathname === '/slow') return void setTimeout(() => reply(200, seen), Number(url.searchParams.get('ms') ?? 1000));
    reply(200, seen);
  }).listen(Number(args[0]), '0.0.0.0', () => process.stdout.write(`app listening on ${args[0]}\n`));
  // PID 1 in its container: without a handler SIGTERM would be ignored and the kubelet would kill it after the grace
  // period. A well-behaved app stops accepting, finishes what it has, and exits 0.
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
} else if (mode === 'tally') {
  const [url, n] = args;
  const counts = {};
  const errors = [];
  let viaSidecar = 0;
  setTimeout(() => print({ counts, errors: [...errors, 'timeout'], viaSidecar }), 60_000).unref();
  for (let i = 0; i < Number(n); i++) {
    const r = await get(url);
    if (r.error !== undefined || r.status !== 200) {
      errors.push(r.error ?? `status ${r.status}`);
      continue;
    }
    const seen = JSON.parse(r.body);
    counts[seen.server] = (counts[seen.server] ?? 0) + 1;
    // The sidecar adds x-request-id to what it forwards: proof the request went through it, not around it.
    if (typeof seen.headers['x-request-id'] === 'string') viaSidecar++;
  }
  print({ counts, errors, viaSidecar });
} else if (mode === 'tcp') {
  const [host, port, text] = args;
  const sock = net.connect({ host, port: Number(port) });
  let got = '';
  setTimeout(() => print({ ok: false, error: 'timeout', data: got }), 5000).unref();
  sock.setEncoding('latin1');
  sock.on('connect', () => sock.write(text));
  sock.on('data', (d) => {
    got += d;
    if (got.length >= text.length) { sock.destroy(); print({ ok: true, data: got }); }
  });
  sock.on('error', (e) => print({ ok: false, error: e.code ?? e.message, data: got }));
  sock.on('end', () => print({ ok: got === text, data: got, closed: true }));
} else if (mode === 'get') {
  print(await get(args[0]));
} else if (mode === 'request') {
  // As the node would: the kubelet's HTTPS probes skip verification (insecure), the API server verifies the webhook
  // against its caBundle (caFile).
  const op = JSON.parse(args[0]);
  const url = new URL(op.url);
  const mod = url.protocol === 'https:' ? https : http;
  setTimeout(() => print({ error: 'timeout' }), op.timeoutMs ?? 5000).unref();
  const req = mod.request(url, {
    method: op.method ?? 'GET',
    headers: op.headers ?? {},
    agent: false,
    ...(op.caFile ? { ca: readFileSync(op.caFile), servername: op.servername } : {}),
    ...(op.insecure ? { rejectUnauthorized: false } : {}),
  }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d) => (body += d));
    res.on('end', () => print({ status: res.statusCode, body }));
  });
  req.on('error', (e) => print({ error: e.code ?? e.message }));
  req.end(op.body);
} else {
  process.stderr.write('usage: pod-app.mjs serve PORT | tally URL N | tcp HOST PORT TEXT | get URL | request JSON\n');
  process.exit(2);
}
