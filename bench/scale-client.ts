// HTTP helpers of the scale scenario: requests through the proxy with a given Host over keep-alive connections —
// traffic to many services, a prober that waits for a response header to take a value (an edit serving), and a
// steady background load that counts every error. Not on any measured path's CPU: run from the generator's CPU.
import http from 'node:http';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
}

/** One GET to 127.0.0.1:port with `host`, over `agent`. Rejects on a socket error or after `timeoutMs`. */
export function get(agent: http.Agent, port: number, host: string, path = '/', timeoutMs = 30_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent, headers: { host }, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** `perHost` requests to each of `hosts`, `concurrency` at a time; returns the status counts (0 = transport error). */
export async function visitAll(port: number, hosts: readonly string[], perHost: number, concurrency: number): Promise<Record<string, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const counts: Record<string, number> = {};
  let next = 0;
  const work = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= hosts.length * perHost) return;
      const host = hosts[i % hosts.length]!;
      const status = await get(agent, port, host).then((r) => r.status, () => 0);
      counts[status] = (counts[status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, work));
  agent.destroy();
  return counts;
}

/**
 * Requests `host` one after the other (a pause of `gapMs` between them) until the response header `header` equals
 * `value`; resolves with the time of that response (performance.now()). Errors are counted, not fatal.
 */
export async function waitForHeader(port: number, host: string, header: string, value: string, opts: { gapMs: number; timeoutMs: number }): Promise<{ at: number; requests: number; errors: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const deadline = performance.now() + opts.timeoutMs;
  let requests = 0;
  let errors = 0;
  try {
    for (;;) {
      requests++;
      const r = await get(agent, port, host).catch(() => undefined);
      const at = performance.now();
      if (r === undefined || r.status >= 500) errors++;
      else if (r.headers[header] === value) return { at, requests, errors };
      if (at > deadline) throw new Error(`${host}: ${header}: ${value} not served after ${opts.timeoutMs} ms (${requests} requests, ${errors} errors)`);
      if (opts.gapMs > 0) await new Promise((res) => setTimeout(res, opts.gapMs));
    }
  } finally {
    agent.destroy();
  }
}

/** A steady background load (`rate` req/s over `hosts` in turn) whose every error and non-2xx status is counted. */
export class BackgroundLoad {
  private timer: NodeJS.Timeout | undefined;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private inflight = 0;
  private i = 0;
  sent = 0;
  ok = 0;
  readonly failures: Record<string, number> = {};

  constructor(private readonly port: number, private readonly hosts: readonly string[], private readonly rate: number) {}

  start(): void {
    const tickMs = 10;
    const perTick = this.rate / (1000 / tickMs);
    let credit = 0;
    this.timer = setInterval(() => {
      credit += perTick;
      while (credit >= 1) {
        credit--;
        this.one();
      }
    }, tickMs);
  }

  private one(): void {
    const host = this.hosts[this.i++ % this.hosts.length]!;
    this.sent++;
    this.inflight++;
    get(this.agent, this.port, host).then(
      (r) => {
        if (r.status >= 200 && r.status < 300) this.ok++;
        else this.failures[r.status] = (this.failures[r.status] ?? 0) + 1;
      },
      (e: Error) => {
        const k = e.message.startsWith('timeout') ? 'timeout' : 'transport';
        this.failures[k] = (this.failures[k] ?? 0) + 1;
      },
    ).finally(() => this.inflight--);
  }

  async stop(): Promise<{ sent: number; ok: number; failures: Record<string, number> }> {
    if (this.timer) clearInterval(this.timer);
    while (this.inflight > 0) await new Promise((r) => setTimeout(r, 10));
    this.agent.destroy();
    return { sent: this.sent, ok: this.ok, failures: { ...this.failures } };
  }
}

/** Percentile of `xs` (nearest rank). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
