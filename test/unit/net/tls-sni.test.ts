// SNI from real ClientHellos (made by node:tls against a socket that only records), whole, cut at every byte,
// split over several TLS records, and without a server_name.
import net from 'node:net';
import tls from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { readClientHelloSni } from '../../../src/net/tls-sni.js';

function clientHello(servername: string | undefined, ALPNProtocols?: string[]): Promise<Buffer> {
  return new Promise((resolve) => {
    const srv = net.createServer((c) => {
      const chunks: Buffer[] = [];
      c.on('data', (d: Buffer) => {
        chunks.push(d);
        const all = Buffer.concat(chunks);
        if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) { resolve(all); c.destroy(); srv.close(); }
      });
    }).listen(0, '127.0.0.1', () => {
      const s = tls.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', ...(servername !== undefined ? { servername } : {}), ...(ALPNProtocols ? { ALPNProtocols } : {}), rejectUnauthorized: false });
      s.on('error', () => {});
    });
  });
}

/** The same handshake message re-cut into TLS records of at most `size` bytes of payload. */
function resplit(hello: Buffer, size: number): Buffer {
  const body = hello.subarray(5);
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) {
    const part = body.subarray(i, i + size);
    const head = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    head.writeUInt16BE(part.length, 3);
    out.push(head, part);
  }
  return Buffer.concat(out);
}

describe('readClientHelloSni', () => {
  let hello: Buffer;
  let noSni: Buffer;
  let istio: Buffer;
  beforeAll(async () => {
    hello = await clientHello('API.Example.com');
    noSni = await clientHello(undefined); // node sends no SNI when connecting to an IP without servername
    istio = await clientHello('outbound_.9080_._.reviews.default.svc.cluster.local', ['istio-http/1.1', 'istio']);
  });

  it('reads the server name, lowercased, from a whole ClientHello', () => {
    expect(readClientHelloSni(hello)).toEqual({ kind: 'sni', serverName: 'api.example.com', alpn: [] });
    expect(readClientHelloSni(noSni)).toEqual({ kind: 'sni', serverName: '', alpn: [] });
  });

  it('reads the ALPN protocols offered (what tells a sidecar\'s mTLS from an app\'s own TLS)', () => {
    expect(readClientHelloSni(istio)).toEqual({ kind: 'sni', serverName: 'outbound_.9080_._.reviews.default.svc.cluster.local', alpn: ['istio-http/1.1', 'istio'] });
  });

  it('asks for more at every cut, and decides once whole', () => {
    for (let i = 1; i < hello.length; i++) expect(readClientHelloSni(hello.subarray(0, i)).kind, `cut at ${i}`).toBe('need-more');
  });

  it('reassembles a ClientHello split over several records', () => {
    for (const size of [1, 7, 64, 200]) expect(readClientHelloSni(resplit(hello, size))).toEqual({ kind: 'sni', serverName: 'api.example.com', alpn: [] });
  });

  it('says not-tls for other bytes and for a handshake that is not a ClientHello', () => {
    expect(readClientHelloSni(Buffer.from('GET / HTTP/1.1\r\n'))).toEqual({ kind: 'not-tls' });
    const serverHello = Buffer.from(hello);
    serverHello[5] = 0x02;
    expect(readClientHelloSni(serverHello)).toEqual({ kind: 'not-tls' });
    const broken = Buffer.from(hello);
    broken.writeUInt16BE(0xffff, 5 + 4 + 2 + 32 + 1 + broken[5 + 4 + 2 + 32]!); // cipher suites longer than the message
    expect(readClientHelloSni(broken)).toEqual({ kind: 'not-tls' });
  });
});
