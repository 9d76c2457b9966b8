/**
 * Upgraded connections (101 Switching Protocols, e.g. WebSocket) as a group: the idle timeout they get and how many
 * are open and were opened, per listener. Each one is a BytePipe (src/proxy/byte-pipe.ts) whose owner, the
 * forwarder's record, holds nothing of the configuration snapshot, so a tunnel outlives reloads.
 */

/** The sidecar's tunnels: the idle timeout they get, and how many are open and were opened, per listener. */
export class Tunnels {
  readonly active = { outbound: 0, inbound: 0 };
  readonly total = { outbound: 0, inbound: 0 };

  /** `idleTimeoutMs` 0 = no idle timeout. */
  constructor(readonly idleTimeoutMs: number) {}
}

/** Envoy's stream idle timeout for upgraded connections: 1 h (`--tunnel-idle-timeout`). */
export const DEFAULT_TUNNEL_IDLE_TIMEOUT_MS = 3_600_000;
