/**
 * IPv4/IPv6 address and CIDR parsing for NetworkPolicy ipBlock and AuthorizationPolicy ipBlocks.
 * Pure. IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`, as Node reports them on dual-stack sockets) match IPv4 CIDRs.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface ParsedIp {
  family: 4 | 6;
  value: bigint;
}

export interface Cidr {
  family: 4 | 6;
  base: bigint;
  prefix: number;
}

export function parseIp(input: string): ParsedIp | undefined {
  let ip = input.trim();
  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  const zone = ip.indexOf('%');
  if (zone >= 0) ip = ip.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) ip = mapped[1]!;
  if (isIPv4(ip)) {
    const v = ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
    return { family: 4, value: v };
  }
  if (!isIPv6(ip)) return undefined;
  // Expand `::` and an embedded dotted IPv4 tail into 8 hextets.
  let head = ip;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(head);
  if (dotted) {
    const v4 = parseIp(dotted[1]!)!.value;
    head = head.slice(0, -dotted[1]!.length) + `${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [l, r] = head.split('::') as [string, string | undefined];
  const left = l === '' ? [] : l.split(':');
  const right = r === undefined ? [] : r === '' ? [] : r.split(':');
  const fill = r === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0');
  const parts = [...left, ...fill, ...right];
  if (parts.length !== 8) return undefined;
  const value = parts.reduce((acc, h) => (acc << 16n) | BigInt(parseInt(h, 16)), 0n);
  return { family: 6, value };
}

/** `10.0.0.0/8`, `fd00::/64`, or a bare address (a /32 or /128). undefined when invalid. */
export function parseCidr(input: string): Cidr | undefined {
  const slash = input.indexOf('/');
  const ip = parseIp(slash >= 0 ? input.slice(0, slash) : input);
  if (!ip) return undefined;
  const bits = ip.family === 4 ? 32 : 128;
  const prefixText = slash >= 0 ? input.slice(slash + 1) : String(bits);
  if (!/^\d+$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > bits) return undefined;
  return { family: ip.family, base: ip.value & mask(bits, prefix), prefix };
}

function mask(bits: number, prefix: number): bigint {
  if (prefix === 0) return 0n;
  return ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
}

export function cidrContains(cidr: Cidr, ip: ParsedIp): boolean {
  if (cidr.family !== ip.family) return false;
  const bits = cidr.family === 4 ? 32 : 128;
  return (ip.value & mask(bits, cidr.prefix)) === cidr.base;
}
