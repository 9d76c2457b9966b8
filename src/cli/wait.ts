/**
 * `remora wait`: blocks until the local sidecar answers 200 on its readiness URL (like `pilot-agent wait`),
 * for a postStart hook or a script. Exit 0 when ready, 1 on timeout.
 */
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import { parseDurationMs } from '../config/duration.js';

const USAGE = `Usage: remora wait [--timeout 60s] [--url URL] [--interval 100ms]

Polls URL until it answers 200. Exit 0 when ready, 1 after the timeout.

Options:
      --timeout D    give up after D (default 60s)
      --url URL      readiness URL (default http://127.0.0.1:15021/healthz/ready)
      --interval D   pause between attempts (default 100ms)
  -h, --help         show this help
`;

/** One GET; resolves to the status code or an error description, never rejects. */
function probe(url: URL, timeoutMs: number): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs}ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'connection refused' : err.message));
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        timeout: { type: 'string', default: '60s' },
        url: { type: 'string', default: 'http://127.0.0.1:15021/healthz/ready' },
        interval: { type: 'string', default: '100ms' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`remora wait: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const timeoutMs = parseDurationMs(values.timeout);
  const intervalMs = parseDurationMs(values.interval);
  if (timeoutMs === undefined || intervalMs === undefined) {
    process.stderr.write('remora wait: --timeout and --interval take durations such as 60s, 500ms\n');
    return 2;
  }
  let url: URL;
  try {
    url = new URL(values.url);
    if (url.protocol !== 'http:') throw new Error('only http:// URLs are supported');
  } catch (err) {
    process.stderr.write(`remora wait: bad --url ${values.url}: ${(err as Error).message}\n`);
    return 2;
  }
  const deadline = performance.now() + timeoutMs;
  let last: number | string = 'no attempt';
  for (;;) {
    const left = deadline - performance.now();
    if (left <= 0) break;
    const budget = Math.max(1, Math.round(Math.min(1000, left))); // ms: one slow answer must not eat the budget
    const result = await probe(url, budget);
    // A probe cut short by the deadline says less than the answer before it: keep that one for the message.
    if (typeof result === 'number' || budget >= 1000 || last === 'no attempt') last = result;
    if (result === 200) {
      process.stdout.write(`remora wait: ${url.href} is ready\n`);
      return 0;
    }
    const pause = Math.min(intervalMs, deadline - performance.now());
    if (pause > 0) await sleep(pause);
  }
  const why = typeof last === 'number' ? `HTTP ${last}` : last;
  process.stderr.write(`remora wait: ${url.href} not ready after ${values.timeout} (last: ${why})\n`);
  return 1;
}
