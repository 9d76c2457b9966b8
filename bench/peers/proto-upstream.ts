// The upstream of the gRPC and WebSocket scenarios: a gRPC-framed HTTP/2 server (every call answered with the
// request's message and grpc-status 0 in the trailers, as a unary gRPC handler does) and a WebSocket echo server.
// Usage: node proto-upstream.js   (prints `proto-upstream ready {"grpc":P,"ws":Q,"pid":N}`)
import http2 from 'node:http2';
import { WebSocketServer } from 'ws';

const h2 = http2.createServer({ settings: { maxConcurrentStreams: 1024 } });
h2.on('stream', (stream) => {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('end', () => {
    if (stream.destroyed) return;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(Buffer.concat(chunks));
  });
  stream.on('error', () => {});
});
const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
wss.on('connection', (ws) => ws.on('message', (m, isBinary) => ws.send(m, { binary: isBinary })));
h2.listen(0, '127.0.0.1', () => {
  const grpc = (h2.address() as { port: number }).port;
  const ws = (wss.address() as { port: number }).port;
  process.stdout.write(`proto-upstream ready ${JSON.stringify({ grpc, ws, pid: process.pid })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
