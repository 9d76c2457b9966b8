// The scale scenario's upstream: the bench upstream's raw HTTP/1.1 server on many loopback addresses at once (one per
// service that receives traffic), each on the same two ports (subsets v1 and v2), so every service endpoint is a
// distinct address:port as in a mesh. Usage: node scale-upstream.js ADDRESSES.json [--tagged] → "scale-upstream ready
// {v1, v2}"; --tagged: every response names the address that served it (x-served-by).
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { serve } from './upstream.js';

function listen(host: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer((sock) => serve(sock, TAGGED));
    s.once('error', reject);
    s.listen({ host, port, backlog: 4096 }, () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

/** One port free on every address: the first address picks it, the others bind it too; retried if one is taken. */
async function listenAll(addresses: readonly string[]): Promise<{ port: number; servers: net.Server[] }> {
  for (let attempt = 0; ; attempt++) {
    const servers: net.Server[] = [];
    try {
      const first = await listen(addresses[0]!, 0);
      servers.push(first);
      const port = (first.address() as net.AddressInfo).port;
      for (const a of addresses.slice(1)) servers.push(await listen(a, port));
      return { port, servers };
    } catch (e) {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      if (attempt >= 20 || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
    }
  }
}

const TAGGED = process.argv.includes('--tagged');
const addresses = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as string[];
const v1 = await listenAll(addresses);
const v2 = await listenAll(addresses);
process.stdout.write(`scale-upstream ready ${JSON.stringify({ v1: v1.port, v2: v2.port, addresses: addresses.length, pid: process.pid })}\n`);
process.on('SIGTERM', () => process.exit(0));
