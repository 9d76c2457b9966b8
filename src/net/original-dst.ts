/**
 * Where a connection that `remora iptables` redirected into the sidecar was really going. The kernel keeps it in
 * the connection-tracking (NAT) record; two ways to read it:
 * - `native`: the remora_net addon (native/original_dst.c, built by `npm install`) calls getsockopt with
 *   SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST on the accepted socket: one system call per connection.
 * - `conntrack`: without the addon, /proc/net/nf_conntrack is read and the connection's reply tuple looked up, in
 *   JavaScript. Slower (a file read per captured connection) but exact; the start-up log says which one runs.
 * - `none`: neither is available. Captured HTTP still routes by Host; non-HTTP bytes cannot be passed through.
 */
import { createRequire } from 'node:module';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';
import type { OriginalDestination } from '../http1/server.js';

export interface OriginalDstReader {
  readonly kind: 'native' | 'conntrack' | 'none';
  /** One line for the start-up log: how original destinations are read, or why they cannot be. */
  readonly description: string;
  /**
   * The original destination of an accepted socket; undefined when the connection was not redirected (it was
   * addressed to the listener itself) or cannot be told.
   */
  read(sock: Socket): OriginalDestination | undefined | Promise<OriginalDestination | undefined>;
}

interface NativeAddon {
  originalDst(fd: number, ipv6: boolean): { address: string; port: number } | null;
}

const ADDON = 'native/build/Release/remora_net.node';

/** The addon file, searched upwards from this module (src/net, dist/chunks and build/tsc/net all sit below the root). */
export function findAddon(from: string = dirname(fileURLToPath(import.meta.url))): string | undefined {
  let dir = from;
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, ADDON);
    if (isFile(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

/**
 * stat(2), not access(2) (which existsSync uses): access() checks with the real UID and without capabilities, so a
 * proxy given CAP_DAC_READ_SEARCH to reach its files (as the capture test runs it) would be told the file is not there.
 */
function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function fdOf(sock: Socket): number {
  const h = (sock as unknown as { _handle: { fd?: number } | null })._handle;
  return h?.fd ?? -1;
}

/** `::ffff:10.0.0.1` → `10.0.0.1`: a dual-stack listener sees IPv4 peers in mapped form. */
export function unmapIpv4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

function sameAsLocal(sock: Socket, d: OriginalDestination): boolean {
  return d.port === sock.localPort && d.address === unmapIpv4(sock.localAddress ?? '');
}

class NativeReader implements OriginalDstReader {
  readonly kind = 'native';
  constructor(private readonly addon: NativeAddon, readonly description: string) {}

  read(sock: Socket): OriginalDestination | undefined {
    const fd = fdOf(sock);
    if (fd < 0) return undefined;
    const local = sock.localAddress ?? '';
    // An IPv4 connection accepted on a dual-stack socket is still IPv4 to netfilter.
    const ipv6 = local.includes(':') && !local.startsWith('::ffff:');
    const d = this.addon.originalDst(fd, ipv6);
    if (d === null || sameAsLocal(sock, d)) return undefined;
    return d;
  }
}

/**
 * The original destination of the connection whose *reply* tuple is local → remote, from the text of
 * /proc/net/nf_conntrack. A redirected connection's record reads `src=app dst=VIP sport=x dport=80 … src=127.0.0.1
 * dst=app sport=15001 dport=x`: its reply comes from the listener, its original destination is the first dst/dport.
 * Pure: unit-tested on real lines.
 */
export function conntrackLookup(table: string, local: { address: string; port: number }, remote: { address: string; port: number }): OriginalDestination | undefined {
  // IPv6 records print every address in full (`%pI6`: 8 groups of 4 hex digits); Node's addresses are compressed.
  const v6 = local.address.includes(':');
  const needle = v6
    ? `src=${expandIPv6(local.address)} dst=${expandIPv6(remote.address)} sport=${local.port} dport=${remote.port} `
    : `src=${local.address} dst=${remote.address} sport=${local.port} dport=${remote.port} `;
  let at = table.indexOf(needle);
  while (at >= 0) {
    const lineStart = table.lastIndexOf('\n', at) + 1;
    const line = table.slice(lineStart, at);
    // The needle must be the second tuple of a TCP record, not the first.
    if (/\btcp\b/.test(line)) {
      const m = /src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+) /.exec(line);
      if (m !== null) return { address: v6 ? compressIPv6(m[2]!) : m[2]!, port: Number(m[4]) };
    }
    at = table.indexOf(needle, at + needle.length);
  }
  return undefined;
}

/** `fd00:77::1` → `fd00:0077:0000:0000:0000:0000:0000:0001` (as /proc/net/nf_conntrack prints it). */
export function expandIPv6(address: string): string {
  const [head, tail] = address.includes('::') ? address.split('::') as [string, string] : [address, undefined];
  const a = head === '' ? [] : head.split(':');
  const b = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? a : [...a, ...Array<string>(8 - a.length - b.length).fill('0'), ...b];
  return groups.map((g) => g.padStart(4, '0')).join(':');
}

/** The canonical (RFC 5952) form of an IPv6 address, as Node's socket addresses are written. */
export function compressIPv6(address: string): string {
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address;
  }
}

class ConntrackReader implements OriginalDstReader {
  readonly kind = 'conntrack';
  constructor(private readonly path: string, readonly description: string) {}

  async read(sock: Socket): Promise<OriginalDestination | undefined> {
    const local = { address: unmapIpv4(sock.localAddress ?? ''), port: sock.localPort ?? 0 };
    const remote = { address: unmapIpv4(sock.remoteAddress ?? ''), port: sock.remotePort ?? 0 };
    let table: string;
    try {
      table = await readFile(this.path, 'latin1');
    } catch {
      return undefined;
    }
    const d = conntrackLookup(table, local, remote);
    if (d === undefined || sameAsLocal(sock, d)) return undefined;
    return d;
  }
}

class NoReader implements OriginalDstReader {
  readonly kind = 'none';
  constructor(readonly description: string) {}
  read(): undefined {
    return undefined;
  }
}

/**
 * The best reader this machine offers. `force: 'conntrack' | 'none'` (the CLI's `REMORA_ORIGINAL_DST`) forces a
 * fallback (tests of the fallback path, or a kernel where the addon misbehaves).
 */
export function createOriginalDstReader(opts: { force?: string; conntrackPath?: string; addonPath?: string } = {}): OriginalDstReader {
  const force = opts.force ?? '';
  const conntrackPath = opts.conntrackPath ?? '/proc/net/nf_conntrack';
  let why = '';
  if (force === '' || force === 'native') {
    const path = opts.addonPath ?? findAddon();
    if (path === undefined) {
      why = `native addon not found (${ADDON}; run npm install with python3, make and g++)`;
    } else {
      try {
        const addon = createRequire(import.meta.url)(path) as NativeAddon;
        return new NativeReader(addon, `original destinations: SO_ORIGINAL_DST (native addon ${path})`);
      } catch (err) {
        why = `native addon ${path} failed to load: ${(err as Error).message}`;
      }
    }
  } else {
    why = `REMORA_ORIGINAL_DST=${force}`;
  }
  if (force !== 'none') {
    // The table is readable by root only (mode 0440): a sidecar running as UID 1337 without privileges cannot use it.
    let readable = '';
    try {
      accessSync(conntrackPath, constants.R_OK);
    } catch (err) {
      readable = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    }
    if (readable === '') return new ConntrackReader(conntrackPath, `original destinations: ${conntrackPath}, read per captured connection (${why})`);
    why += `; ${conntrackPath}: ${readable}`;
  }
  return new NoReader(`original destinations unavailable (${why}): captured HTTP is routed by Host and inbound goes to the first --app-port; captured non-HTTP connections cannot be passed on`);
}
