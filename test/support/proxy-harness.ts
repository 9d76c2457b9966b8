/**
 * Start `remora run` through the real CLI (node dist/cli.js) on free ports with a config directory,
 * wait for its `remora ready {json}` line, and stop it by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'undici';

export const REPO = resolve(import.meta.dirname, '../..');
export const CLI = join(REPO, 'dist/cli.js');

export interface ReadyInfo { outbound: number; inbound: number; admin: number; stats: number; health: number; pid: number; config: number }

export class RunningProxy {
  stdout = '';
  stderr = '';
  exitCode: number | null = null;
  exited: Promise<number | null>;
  constructor(readonly child: ChildProcess, readonly dir: string, public info: ReadyInfo) {
    this.exited = new Promise((r) => child.once('exit', (code) => { this.exitCode = code; r(code); }));
    child.stdout!.on('data', (d: Buffer) => { this.stdout += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString(); });
  }

  url(path = '/'): string { return `http://127.0.0.1:${this.info.outbound}${path}`; }

  async get(path: string, headers: Record<string, string>, method = 'GET', body?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string; json: () => any }> {
    const r = await request(this.url(path), { method: method as 'GET', headers, body: body ?? null });
    const text = await r.body.text();
    return { status: r.statusCode, headers: r.headers, body: text, json: () => JSON.parse(text) };
  }

  async admin(path: string, method = 'GET'): Promise<{ status: number; body: string }> {
    const r = await request(`http://127.0.0.1:${this.info.admin}${path}`, { method: method as 'GET' });
    return { status: r.statusCode, body: await r.body.text() };
  }

  writeConfig(name: string, yaml: string): void {
    writeFileSync(join(this.dir, name), yaml);
  }

  async stop(): Promise<void> {
    if (this.exitCode === null && this.child.pid) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function configDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'remora-test-'));
  for (const [n, c] of Object.entries(files)) writeFileSync(join(dir, n), c);
  return dir;
}

export async function startProxy(files: Record<string, string> | string, extraArgs: string[] = [], opts: { expectFailure?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<RunningProxy> {
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run npm run build first`);
  const dir = typeof files === 'string' ? files : configDir(files);
  const args = [CLI, 'run', '--config', dir, '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0', '--health-port', '0', '--log-level', 'warn', ...extraArgs];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let out = '';
  let err = '';
  const info = await new Promise<ReadyInfo>((resolveReady, reject) => {
    const timer = setTimeout(() => reject(new Error(`proxy did not become ready in 10s\nstdout: ${out}\nstderr: ${err}`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /remora ready (\{.*\})/.exec(out);
      if (m) { clearTimeout(timer); resolveReady(JSON.parse(m[1]!) as ReadyInfo); }
    });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    child.once('exit', (code) => {
      clearTimeout(timer);
      const e = new Error(`proxy exited with ${code}\nstdout: ${out}\nstderr: ${err}`) as Error & { code?: number | null; stderr?: string };
      e.code = code;
      e.stderr = err;
      reject(e);
    });
  });
  const p = new RunningProxy(child, dir, info);
  p.stdout = out;
  p.stderr = err;
  return p;
}

/** Kept here for the tests that import it from the harness; the one implementation is ./wait-for.ts. */
export { waitFor } from './wait-for.js';
