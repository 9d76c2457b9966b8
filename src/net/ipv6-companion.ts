/**
 * The IPv6 companion of a proxy listener: the same port on [::1] (resp. [::]) beside a listener bound to IPv4's
 * loopback (resp. any-address), handing each connection it accepts to the listener as if the listener had accepted it.
 * This module binds the companion and moves node's connection bookkeeping (adoptConnection); nothing else.
 */
import { createServer as netCreateServer, type Server as NetServer, type Socket as NetSocket } from 'node:net';
import type { Logger } from '../util/logger.js';

/**
 * IPv6 beside a proxy listener bound to IPv4's loopback or any-address: ip6tables REDIRECTs a pod's outbound IPv6
 * connections to [::1]:15001 and inbound ones to [<pod address>]:15006 (`remora iptables`, IPv6 rules), which an
 * IPv4-only listener would refuse — breaking the app's IPv6 traffic. The companion takes the same port on [::1]
 * (resp. [::], IPv6 only) and hands each connection to the listener, as if it had accepted it (original
 * destination, sniffing, HTTP/1, HTTP/2, TCP alike). A host without IPv6 (or the port taken there) keeps IPv4 alone.
 * The listener owns the connection from then on (adoptConnection): one --max-connections, overflow counter, drain
 * count and close for both families.
 * Returns the companion, or undefined when there is none (another address, or IPv6 not available: logged).
 */
export async function listenIPv6Companion(name: string, primary: NetServer, address: string, port: number, logger: Logger): Promise<NetServer | undefined> {
  const v6 = address === '127.0.0.1' ? '::1' : address === '0.0.0.0' ? '::' : undefined;
  if (v6 === undefined) return undefined;
  const companion = netCreateServer({ allowHalfOpen: true, noDelay: true }, (sock) => adoptConnection(primary, companion, sock));
  try {
    await new Promise<void>((resolve, reject) => {
      companion.once('error', reject);
      companion.listen({ port, host: v6, ipv6Only: true }, () => { companion.off('error', reject); resolve(); });
    });
  } catch (err) {
    logger.log('info', `${name} listener: IPv4 only ([${v6}]:${port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    return undefined;
  }
  companion.on('error', (err) => logger.log('error', `${name} IPv6 listener: ${err.message}`));
  return companion;
}

/** node's net.Server/Socket bookkeeping that `adoptConnection` moves (stable in node's net.js since 0.x). */
interface ServerCount { _connections: number; maxConnections: number }
interface OwnedSocket { server: NetServer; _server: NetServer }

/**
 * Hand a socket the IPv6 companion accepted over to the listener, which then owns it exactly as if it had accepted
 * it: counted in the listener's open connections (its `--max-connections`, `getConnections` for the drain, and its
 * 'close' waiting for it), or dropped past the limit and counted as the listener's overflow ('drop').
 */
export function adoptConnection(primary: NetServer, companion: NetServer, sock: NetSocket): void {
  const p = primary as unknown as ServerCount;
  (companion as unknown as ServerCount)._connections--;
  if (p.maxConnections > 0 && p._connections >= p.maxConnections) {
    primary.emit('drop', { localAddress: sock.localAddress, localPort: sock.localPort, remoteAddress: sock.remoteAddress, remotePort: sock.remotePort, remoteFamily: sock.remoteFamily });
    (sock as unknown as Partial<OwnedSocket>)._server = undefined;
    sock.destroy();
    return;
  }
  p._connections++;
  const owned = sock as unknown as OwnedSocket;
  owned.server = primary;
  owned._server = primary;
  primary.emit('connection', sock);
}
