// The Node.js anchor peer: `http-proxy` (the design card's naive Node proxy) in front of the
// upstream, with a keep-alive agent. Usage: node http-proxy.js UPSTREAM_PORT [LISTEN_PORT]
import http from 'node:http';
import httpProxy from 'http-proxy';

const upstreamPort = Number(process.argv[2]);
const listenPort = Number(process.argv[3] ?? 0);
if (!(upstreamPort > 0)) {
  process.stderr.write('usage: http-proxy.js UPSTREAM_PORT [LISTEN_PORT]\n');
  process.exit(2);
}
// Keep-alive to the upstream, as nginx (keepalive 64) and Remora's undici pool do; maxSockets
// unbounded like an undici Pool without `connections`.
const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${upstreamPort}`, agent });
proxy.on('error', (_err, _req, res) => {
  const r = res as http.ServerResponse;
  if (!r.headersSent) r.writeHead(502);
  r.end();
});
const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 60_000;
server.listen(listenPort, '127.0.0.1', () => {
  const port = (server.address() as { port: number }).port;
  process.stdout.write(`http-proxy ready ${JSON.stringify({ port, pid: process.pid })}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  agent.destroy();
  process.exit(0);
});
