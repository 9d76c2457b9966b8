// `remora bench` argument parsing.
import { describe, it, expect } from 'vitest';
import { parseBenchArgs, UsageError } from '../../../src/cli/bench.js';

describe('parseBenchArgs', () => {
  it('parses load, request and output options', () => {
    const a = parseBenchArgs(['--rate', '3000', '--duration', '2', '--warmup', '0.5', '-c', '8', '-H', 'Host: svc:80', '--body-size', '1024', '--arrival', 'poisson', '--json', 'out.json', 'http://127.0.0.1:1/']);
    expect(a.targets).toEqual([{ name: 'target', url: 'http://127.0.0.1:1/' }]);
    expect(a.load).toMatchObject({ mode: 'open', rate: 3000, durationMs: 2000, warmupMs: 500, connections: 8, arrival: 'poisson', method: 'POST', headers: [['Host', 'svc:80']] });
    expect(a.load.body?.length).toBe(1024);
    expect(a.rounds).toBe(1);
    expect(a.outputs.json).toBe('out.json');
  });

  it('--compare takes name=URL, defaults to 3 rounds and the direct baseline, attaches PIDs', () => {
    const a = parseBenchArgs(['--compare', '--max', '--pid', 'remora=12,13', 'direct=http://127.0.0.1:1/', 'remora=http://127.0.0.1:2/']);
    expect(a.rounds).toBe(3);
    expect(a.baseline).toBe('direct');
    expect(a.load.mode).toBe('max');
    expect(a.targets[1]).toEqual({ name: 'remora', url: 'http://127.0.0.1:2/', pids: [12, 13] });
  });

  it('rejects bad input with a usage error', () => {
    expect(() => parseBenchArgs([])).toThrow(UsageError);
    expect(() => parseBenchArgs(['--compare', 'http://127.0.0.1:1/'])).toThrow(/name=URL/);
    expect(() => parseBenchArgs(['--rate', 'fast', 'http://x/'])).toThrow(/--rate/);
    expect(() => parseBenchArgs(['https://x/'])).toThrow(/http:/);
    expect(() => parseBenchArgs(['--pid', 'nope=1', 'a=http://x/'])).toThrow(/--pid/);
    expect(() => parseBenchArgs(['--baseline', 'zz', 'a=http://x/'])).toThrow(/baseline/);
    expect(parseBenchArgs(['--help']).help).toBe(true);
  });
});
