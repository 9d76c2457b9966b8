/** The access logger writing to real files: appends lines, and survives unwritable destinations without crashing. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessLogger } from '../../../src/telemetry/access-log.js';
import { record } from '../../unit/telemetry/records.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-accesslog-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const waitFor = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('AccessLogger with file destinations', () => {
  it('appends text and JSON lines to a file', async () => {
    const file = path.join(dir, 'access.log');
    fs.writeFileSync(file, 'existing\n');
    const text = new AccessLogger(file, 'text');
    text.log(record({ status: 503, flags: 'UO', details: 'overflow' }));
    text.log(record({ status: 504, flags: 'UT', attempts: 2 }));
    await text.close();
    const json = new AccessLogger(file, 'json');
    json.log(record({ status: 200 }));
    await json.close();
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    expect(lines[0]).toBe('existing');
    expect(lines[1]).toMatch(/^\[2024-05-01T12:30:45\.123Z\] "GET \/reviews\/1\?x=1 HTTP\/1\.1" 503 UO overflow /);
    expect(lines[2]).toMatch(/" 504 UT /);
    expect(JSON.parse(lines[3]!)).toMatchObject({ response_code: 200, response_flags: '-' });
    expect(lines[4]).toBe('');
    expect(lines).toHaveLength(5);
    expect(text.writtenLines() + json.writtenLines()).toBe(3);
  });

  it('does not crash when the directory does not exist; counts drops and reopens once it exists', async () => {
    const sub = path.join(dir, 'missing');
    const file = path.join(sub, 'access.log');
    let now = 0;
    const errors: string[] = [];
    const log = new AccessLogger(file, 'text', { now: () => now, reopenAfterMs: 1000, onError: (e) => errors.push(e.code ?? '?') });
    log.log(record());
    await log.flush();
    await waitFor(() => errors.length === 1);
    expect(errors).toEqual(['ENOENT']);
    expect(log.droppedLines()).toBe(1);
    log.log(record()); // within the back-off: dropped without touching the file system
    expect(log.droppedLines()).toBe(2);
    fs.mkdirSync(sub);
    now = 1000;
    log.log(record({ status: 201 }));
    await log.close();
    expect(fs.readFileSync(file, 'utf8')).toMatch(/" 201 - /);
    expect(log.writtenLines()).toBe(1);
  });

  it('does not crash when the path is not writable (a directory: EISDIR)', async () => {
    const errors: string[] = [];
    const log = new AccessLogger(dir, 'json', { onError: (e) => errors.push(e.code ?? '?') });
    for (let i = 0; i < 5; i++) log.log(record());
    await log.flush();
    await waitFor(() => errors.length === 1);
    expect(errors[0]).toBe('EISDIR');
    expect(log.droppedLines()).toBe(5);
    await log.close();
  });
});

describe('FdSink (the stdout writer)', () => {
  it('delivers everything through a slow non-blocking pipe (EAGAIN and partial writes are retried)', async () => {
    const { spawn } = await import('node:child_process');
    const { FdSink } = await import('../../../src/telemetry/access-log.js');
    // The reader starts 300 ms late, so the 64 KiB pipe fills and writes hit EAGAIN.
    const child = spawn(
      process.execPath,
      ['-e', "setTimeout(()=>{let n=0;process.stdin.on('data',d=>n+=d.length);process.stdin.on('end',()=>process.stdout.write(String(n)))},300)"],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    try {
      const fd = (child.stdin as unknown as { _handle: { fd: number } })._handle.fd;
      expect(fd).toBeGreaterThan(2);
      const sink = new FdSink(fd, 2);
      const chunk = Buffer.alloc(100_000, 97);
      const writes: Array<Promise<void>> = [];
      for (let i = 0; i < 20; i++) writes.push(new Promise((resolve, reject) => sink.write(chunk, (e) => (e ? reject(e) : resolve()))));
      await Promise.all(writes);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin!.end();
      await exited;
      expect(Number(out)).toBe(2_000_000);
    } finally {
      if (child.exitCode === null) child.kill();
    }
  });
});
