// The upstream of the raw TCP scenario: a `net` echo server (every byte sent back, with backpressure; the client's
// FIN answered with ours once the echo is written). Usage: node tcp-echo.js   (prints `tcp-echo ready {"port":P,"pid":N}`)
import net from 'node:net';

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (sock) => {
  sock.on('error', () => sock.destroy());
  sock.pipe(sock);
});
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  const port = (server.address() as net.AddressInfo).port;
  process.stdout.write(`tcp-echo ready ${JSON.stringify({ port, pid: process.pid })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
