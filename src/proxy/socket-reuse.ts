/**
 * Knows whether an upstream attempt went out on a reused keep-alive connection, the precondition for
 * the safe keep-alive-race retry (ISTIO-SEMANTICS pain 1). undici publishes `undici:client:sendHeaders`
 * with the request and its socket; the request holds our handler under its private `handler` symbol.
 */
import diagnostics from 'node:diagnostics_channel';
import type { Socket } from 'node:net';

const kUses = Symbol('remora.socketUses');
let handlerSymbol: symbol | undefined;

export interface ReuseAware {
  reused: boolean;
}

let installed = false;

export function installReuseTracking(isOurs: (h: unknown) => h is ReuseAware): void {
  if (installed) return;
  installed = true;
  diagnostics.subscribe('undici:client:sendHeaders', (msg) => {
    const { request, socket } = msg as { request: Record<symbol, unknown>; socket: Socket & { [kUses]?: number } };
    const uses = (socket[kUses] ?? 0) + 1;
    socket[kUses] = uses;
    if (uses === 1) return;
    if (handlerSymbol === undefined) handlerSymbol = Object.getOwnPropertySymbols(request).find((s) => s.description === 'handler');
    if (handlerSymbol === undefined) return;
    const h = request[handlerSymbol];
    if (isOurs(h)) h.reused = true;
  });
}
