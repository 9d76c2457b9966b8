// Sidecar-to-sidecar mTLS primitives over loopback sockets with certificates from the development CA: termination
// after the ClientHello was already read (as capture reads it), the peer's SPIFFE identity, refusal of clients
// without a certificate or from another CA, and the client's check of the server identity.
import net from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRoot, issueWorkload } from '../../../src/security/dev-ca.js';
import { loadWorkloadCert, type WorkloadCert } from '../../../src/security/workload-cert.js';
import { MtlsContext, checkPeerSan, offersIstioAlpn, originationOptions, peerOf, terminateMtls, xfcc, type TerminateResult } from '../../../src/security/mtls.js';
import { serverIdentities } from '../../../src/security/spiffe.js';
import { readClientHelloSni } from '../../../src/net/tls-sni.js';
import { waitFor } from '../../support/wait-for.js';

let dir: string;
let server: MtlsContext;
let client: MtlsContext;
let stranger: MtlsContext;

function load(d: string): WorkloadCert {
  const r = loadWorkloadCert(d);
  if (!r.ok) throw new Error(r.error);
  return r.cert;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'remora-mtls-'));
  const root = createRoot(join(dir, 'root'));
  const other = createRoot(join(dir, 'other'));
  server = new MtlsContext(load(issueWorkload(root, { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' }, join(dir, 'server')).dir));
  client = new MtlsContext(load(issueWorkload(root, { trustDomain: 'cluster.local', namespace: 'web', serviceAccount: 'frontend' }, join(dir, 'client')).dir));
  stranger = new MtlsContext(load(issueWorkload(other, { trustDomain: 'cluster.local', namespace: 'web', serviceAccount: 'frontend' }, join(dir, 'stranger')).dir));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A listener that reads the ClientHello first (as capture does), then terminates mTLS and echoes. */
async function listen(): Promise<{ port: number; results: TerminateResult[]; hellos: Array<string[] | undefined>; close: () => void }> {
  const results: TerminateResult[] = [];
  const hellos: Array<string[] | undefined> = [];
  const srv = net.createServer((sock) => {
    sock.on('error', () => {});
    let head = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const h = readClientHelloSni(head);
      if (h.kind === 'need-more') return;
      sock.off('data', onData);
      hellos.push(h.kind === 'sni' ? h.alpn : undefined);
      void terminateMtls(sock, head, server, 2000).then((r) => {
        results.push(r);
        if (r.ok) r.socket.on('data', (x: Buffer) => r.socket.write(`${peerOf(r.socket)?.principal}:${x.toString()}`));
      });
    };
    sock.on('data', onData);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, results, hellos, close: () => srv.close() };
}

function dial(port: number, opts: tls.ConnectionOptions): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({ port, host: '127.0.0.1', ...opts }, () => s.write('hello'));
    let data = '';
    s.on('data', (d: Buffer) => { data += d.toString(); s.end(); });
    s.on('error', (e) => resolve({ data, error: (e as NodeJS.ErrnoException).code ?? e.message }));
    s.on('close', () => resolve({ data }));
  });
}

describe('mTLS termination and origination', () => {
  it('a sidecar client: terminated, ALPN istio, the peer identity attached to the decrypted socket', async () => {
    const l = await listen();
    try {
      const r = await dial(l.port, originationOptions(client, 'http/1.1', ['spiffe://cluster.local/ns/shop/sa/cart']));
      expect(r).toEqual({ data: 'cluster.local/ns/web/sa/frontend:hello' });
      expect(offersIstioAlpn(l.hellos[0])).toBe(true);
      const t = l.results[0]!;
      expect(t.ok && t.alpn).toBe('istio-http/1.1');
      expect(t.ok && t.peer.spiffeId).toBe('spiffe://cluster.local/ns/web/sa/frontend');
      expect(t.ok && xfcc(server.ownUri, t.peer)).toMatch(/^By=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/web\/sa\/frontend$/);
    } finally {
      l.close();
    }
  });

  it('refused: a client without a certificate, and one from another CA that does not check the server', async () => {
    const l = await listen();
    try {
      const none = await dial(l.port, { ALPNProtocols: ['istio-http/1.1'], rejectUnauthorized: false });
      // The attacker's client does not care who the server is: only the server's check stands between it and the app.
      const foreign = await dial(l.port, { ...originationOptions(stranger, 'http/1.1', []), rejectUnauthorized: false, checkServerIdentity: () => undefined });
      await waitFor(() => l.results.length >= 2, { what: 'both handshakes decided' });
      expect(none.data).toBe('');
      expect(foreign).toEqual({ data: '', error: 'ECONNRESET' });
      expect(l.results.map((r) => !r.ok && r.reason)).toEqual(['fail_verify_no_cert', 'fail_verify_error']);
      expect(server.inboundStats.failures).toMatchObject({ fail_verify_no_cert: 1, fail_verify_error: 1 });
    } finally {
      l.close();
    }
  });

  it('the client refuses a server whose identity is not the expected one', async () => {
    const l = await listen();
    try {
      const r = await dial(l.port, originationOptions(client, 'tcp', ['spiffe://cluster.local/ns/shop/sa/payments']));
      expect(r.error).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
      const ok = await dial(l.port, originationOptions(client, 'tcp', ['spiffe://cluster.local/ns/shop/sa/cart']));
      expect(ok.data).toBe('cluster.local/ns/web/sa/frontend:hello');
    } finally {
      l.close();
    }
  });

  it('checkPeerSan: one of the expected identities, never any identity of the trust domain', () => {
    expect(checkPeerSan('URI:spiffe://cluster.local/ns/a/sa/b', ['spiffe://cluster.local/ns/a/sa/b'])).toBeUndefined();
    expect(checkPeerSan('URI:spiffe://cluster.local/ns/a/sa/b', [])?.message).toMatch(/no identity is known/);
    expect(checkPeerSan('URI:spiffe://evil/ns/a/sa/b', ['spiffe://cluster.local/ns/a/sa/b'])?.message).toMatch(/is not one of/);
    expect(checkPeerSan('DNS:x', ['spiffe://cluster.local/ns/a/sa/b'])?.message).toMatch(/without one SPIFFE identity/);
    expect(checkPeerSan('URI:spiffe://cluster.local/ns/a/sa/b', ['spiffe://cluster.local/ns/a/sa/c'])?.message).toMatch(/is not one of/);
  });

  it('serverIdentities: DestinationRule subjectAltNames win; else ServiceEntry subjectAltNames and the endpoint\'s account; aliases', () => {
    const one = new Set(['cluster.local']);
    const ep = { namespace: 'shop', serviceAccount: 'cart' };
    expect(serverIdentities(['spiffe://cluster.local/ns/x/sa/y'], ['spiffe://cluster.local/ns/se/sa/z'], ep, 'cluster.local', one)).toEqual(['spiffe://cluster.local/ns/x/sa/y']);
    expect(serverIdentities(undefined, ['spiffe://cluster.local/ns/se/sa/z'], ep, 'cluster.local', one)).toEqual(['spiffe://cluster.local/ns/se/sa/z', 'spiffe://cluster.local/ns/shop/sa/cart']);
    expect(serverIdentities(undefined, undefined, ep, 'cluster.local', one)).toEqual(['spiffe://cluster.local/ns/shop/sa/cart']);
    expect(serverIdentities([], undefined, undefined, 'cluster.local', one)).toEqual([]);
    expect(serverIdentities(undefined, undefined, ep, 'cluster.local', new Set(['cluster.local', 'old.example']))).toEqual(['spiffe://cluster.local/ns/shop/sa/cart', 'spiffe://old.example/ns/shop/sa/cart']);
  });
});
