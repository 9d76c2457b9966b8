/**
 * Remote JSON Web Key Sets for RequestAuthentication: fetched by the sidecar itself over https (plain http only for
 * an issuer the operator names: `--jwks-allow-http`), bounded (a timeout, a size cap, no redirects), cached, and kept
 * when a refetch fails — a key set that was good stays in use until a new good one arrives. A token naming a key the
 * set does not have triggers a refetch, at most once per cooldown; the set is also refreshed in the background after
 * `cacheMs`. The sidecar's own fetches run as its own user (UID 1337), which capture leaves alone: they are not
 * redirected, and Sidecar egress or REGISTRY_ONLY do not apply to them (docs/security.md).
 */
import http from 'node:http';
import https from 'node:https';
import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

/** Envoy remote_jwks' cache_duration default (5 min) before a background refresh. */
export const JWKS_CACHE_MS = 300_000;
/** At most one refetch for an unknown `kid` per this interval (jose's cooldown). */
export const JWKS_COOLDOWN_MS = 30_000;
/** Without any good key set yet, a failed fetch is retried at most this often (ms). */
const RETRY_WITHOUT_KEYS_MS = 1000;
/** The largest key set (or OpenID document) read; a bigger answer is a failed fetch. */
export const JWKS_MAX_BYTES = 256 * 1024;

export interface FetchLimits {
  timeoutMs: number;
  maxBytes?: number;
  /** Extra trusted CAs for https (tests); the system store and NODE_EXTRA_CA_CERTS otherwise. */
  ca?: string | Buffer;
}

export { urlRefusal } from './jwks-url.js';

/** GET `url` and parse its JSON body, within the limits; rejects with jose's JWKSTimeout or JWKSInvalid. */
export function fetchJson(url: string, limits: FetchLimits): Promise<unknown> {
  const max = limits.maxBytes ?? JWKS_MAX_BYTES;
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const get = u.protocol === 'https:' ? https.get : http.get;
    const req = get(u, { headers: { accept: 'application/json' }, ...(limits.ca !== undefined && u.protocol === 'https:' ? { ca: limits.ca } : {}) }, (res) => {
      // No redirects: a 3xx (possibly to plain http or elsewhere) is a failed fetch.
      if (res.statusCode !== 200) {
        res.resume();
        reject(new joseErrors.JWKSInvalid(`${url}: HTTP ${res.statusCode ?? 0}`));
        return;
      }
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > max) {
        req.destroy();
        reject(new joseErrors.JWKSInvalid(`${url}: ${declared} bytes is more than the ${max} allowed`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (d: Buffer) => {
        size += d.length;
        if (size > max) {
          req.destroy();
          reject(new joseErrors.JWKSInvalid(`${url}: more than the ${max} bytes allowed`));
          return;
        }
        chunks.push(d);
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          reject(new joseErrors.JWKSInvalid(`${url}: not JSON`));
        }
      });
      res.on('error', (e) => reject(new joseErrors.JWKSInvalid(`${url}: ${e.message}`)));
    });
    req.setTimeout(limits.timeoutMs, () => {
      req.destroy();
      reject(new joseErrors.JWKSTimeout(`${url}: no answer within ${limits.timeoutMs} ms`));
    });
    req.on('error', (e) => reject(new joseErrors.JWKSInvalid(`${url}: ${e.message}`)));
  });
}

export interface RemoteJwksOptions extends FetchLimits {
  cacheMs?: number;
  cooldownMs?: number;
  now?: () => number;
  /** The fetch itself (tests); default fetchJson. */
  fetch?: (url: string, limits: FetchLimits) => Promise<unknown>;
  /** A refetch failed while a good set stays in use. */
  onStale?: (url: string, error: string) => void;
}

/** A remote key set with jose's getKey shape; see the module comment for the fetch rules. */
export class RemoteJwks {
  fetches = 0;
  failures = 0;
  private keys: JWTVerifyGetKey | undefined;
  private fetchedAt = 0;
  private lastAttempt = -Infinity;
  private inflight: Promise<void> | undefined;

  constructor(readonly url: string, private readonly opts: RemoteJwksOptions) {}

  /** For jwtVerify. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    const now = this.now();
    if (this.keys === undefined) {
      // Never fetched successfully: one attempt per second at most, however many tokens arrive.
      if (this.inflight === undefined && now - this.lastAttempt < RETRY_WITHOUT_KEYS_MS) throw new joseErrors.JWKSInvalid(`${this.url}: the last fetch failed`);
      await this.refresh();
    }
    // Stale: refresh in the background (a failing key server is asked at most once per cooldown meanwhile).
    else if (now - this.fetchedAt >= (this.opts.cacheMs ?? JWKS_CACHE_MS) && now - this.lastAttempt >= (this.opts.cooldownMs ?? JWKS_COOLDOWN_MS)) void this.refresh().catch(() => { /* the old set stays */ });
    try {
      return await this.keys!(header, token);
    } catch (e) {
      // A key the set does not have: maybe it rotated. Refetch (at most once per cooldown), keep the set on failure.
      if (!(e instanceof joseErrors.JWKSNoMatchingKey) || now - this.lastAttempt < (this.opts.cooldownMs ?? JWKS_COOLDOWN_MS)) throw e;
      await this.refresh().catch(() => { /* the old set stays */ });
      return this.keys!(header, token);
    }
  };

  /** Fetch now (one fetch at a time); a failure leaves the last good set in place and rejects. */
  refresh(): Promise<void> {
    this.inflight ??= this.load().finally(() => { this.inflight = undefined; });
    return this.inflight;
  }

  private async load(): Promise<void> {
    this.lastAttempt = this.now();
    this.fetches++;
    try {
      const body = await (this.opts.fetch ?? fetchJson)(this.url, this.opts);
      const set = body as JSONWebKeySet;
      if (typeof set !== 'object' || set === null || !Array.isArray(set.keys)) throw new joseErrors.JWKSInvalid(`${this.url}: not a JSON Web Key Set`);
      this.keys = createLocalJWKSet(set);
      this.fetchedAt = this.now();
    } catch (e) {
      this.failures++;
      if (this.keys !== undefined) this.opts.onStale?.(this.url, (e as Error).message);
      throw e instanceof joseErrors.JOSEError ? e : new joseErrors.JWKSInvalid(`${this.url}: ${(e as Error).message}`);
    }
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }
}
