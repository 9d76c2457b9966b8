// `--compare` end to end: two loopback targets run interleaved, the slower one shows its added
// latency over `direct`; the report files are written; and the real CLI when dist/cli.js exists.
import { describe, it, expect, afterAll } from 'vitest';
import http from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { main } from '../../../src/cli/bench.js';
import { runBench } from '../../../src/bench/runner.js';
import { DEFAULT_LOAD_OPTIONS } from '../../../src/bench/generator.js';
import { validateReport, type BenchReport } from '../../../src/bench/report.js';

const servers: http.Server[] = [];
const dir = mkdtempSync(join(tmpdir(), 'remora-bench-'));
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); })));
  rmSync(dir, { recursive: true, force: true });
});

async function server(delayMs: number): Promise<string> {
  const s = http.createServer((req, res) => {
    if (delayMs > 0) setTimeout(() => res.end('ok'), delayMs);
    else res.end('ok');
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}/`;
}

describe('--compare', () => {
  it('runs targets interleaved and reports the added latency over direct', async () => {
    const direct = await server(0);
    const slow = await server(5);
    const order: string[] = [];
    const r = await runBench({
      targets: [{ name: 'direct', url: direct }, { name: 'slow', url: slow, pids: [process.pid] }],
      load: { ...DEFAULT_LOAD_OPTIONS, rate: 100, durationMs: 300, warmupMs: 50, connections: 4 },
      rounds: 2,
      baseline: 'direct',
      command: ['test'],
      onRun: (t, round) => order.push(`${t.name}${round}`),
    });
    expect(order).toEqual(['direct1', 'slow1', 'direct2', 'slow2']);
    const slowT = r.targets.find((t) => t.name === 'slow')!;
    expect(slowT.rounds).toHaveLength(2);
    expect(slowT.comparison!.addedMs.p50).toBeGreaterThan(4);
    // No upper bound: on a loaded machine the 5 ms server can be slower still.
    expect(slowT.summary.cpuMsPer1000Req).not.toBeNull();
    expect(slowT.summary.peakRssMB).toBeGreaterThan(10);
    expect(validateReport(JSON.parse(JSON.stringify(r)))).toEqual([]);
  });

  it('main() writes JSON, Markdown, HTML and SVG reports', async () => {
    const a = await server(0);
    const b = await server(0);
    const files = { json: join(dir, 'r.json'), markdown: join(dir, 'r.md'), html: join(dir, 'r.html'), svg: join(dir, 'r.svg') };
    const code = await main(['--compare', '--rounds', '1', '--rate', '100', '--duration', '0.3', '--warmup', '0', '--quiet',
      '--json', files.json, '--markdown', files.markdown, '--html', files.html, '--svg', files.svg, `direct=${a}`, `other=${b}`]);
    expect(code).toBe(0);
    const rep = JSON.parse(readFileSync(files.json, 'utf8')) as BenchReport;
    expect(validateReport(rep)).toEqual([]);
    expect(rep.targets.map((t) => t.name)).toEqual(['direct', 'other']);
    expect(readFileSync(files.markdown, 'utf8')).toContain('| other |');
    expect(readFileSync(files.svg, 'utf8').match(/<polyline class="series"/g)).toHaveLength(2);
    expect(readFileSync(files.html, 'utf8')).toContain('<svg');
  });

  it('main() returns 2 on bad arguments', async () => {
    expect(await main(['--rate', 'x', 'http://127.0.0.1:1/'])).toBe(2);
  });

  it.runIf(existsSync('dist/cli.js'))('runs through the real CLI: node dist/cli.js bench', async () => {
    const url = await server(0);
    const out = join(dir, 'cli.json');
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['dist/cli.js', 'bench', '--rate', '100', '--duration', '0.5', '--warmup', '0', '--json', out, url], { timeout: 20_000 }, (err, so) => (err ? reject(err) : resolve(so))),
    );
    expect(stdout).toMatch(/p50 ms/);
    const rep = JSON.parse(readFileSync(out, 'utf8')) as BenchReport;
    expect(rep.targets[0]!.summary.errors).toBe(0);
    expect(rep.targets[0]!.rounds[0]!.completed).toBeGreaterThan(40);
  });
});
