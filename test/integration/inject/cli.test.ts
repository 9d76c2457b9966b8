// `remora inject`, `remora wait` and `remora iptables` as a user runs them: through the built CLI
// (dist/cli.js) when it exists, else through each command's main() in this process.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { selfSignedCert } from '../../support/tls.js';
import { fakeUpstream } from '../../support/fake-upstream.js';
import { waitFor } from '../../support/wait-for.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cliJs = join(root, 'dist', 'cli.js');
const useDist = existsSync(cliJs);
const fixture = (name: string): string => join(root, 'test', 'fixtures', 'inject', name);
const tmp = mkdtempSync(join(tmpdir(), 'remora-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const commands: Record<string, () => Promise<{ main(argv: string[]): Promise<number> }>> = {
  inject: () => import('../../../src/cli/inject.js'),
  wait: () => import('../../../src/cli/wait.js'),
  iptables: () => import('../../../src/cli/iptables.js'),
  injector: () => import('../../../src/cli/injector.js'),
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function runInProcess(command: string, args: string[]): Promise<Run> {
  const mod = await commands[command]!();
  let stdout = '';
  let stderr = '';
  const capture = (append: (s: string) => void) => (chunk: unknown, ...rest: unknown[]): boolean => {
    append(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    const cb = rest.find((r) => typeof r === 'function') as ((e?: Error) => void) | undefined;
    cb?.();
    return true;
  };
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(capture((s) => (stdout += s)) as typeof process.stdout.write);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(capture((s) => (stderr += s)) as typeof process.stderr.write);
  try {
    const code = await mod.main(args);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

function runDist(command: string, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cliJs, command, ...args], { timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(input ?? '');
  });
}

const run = (command: string, args: string[]): Promise<Run> => (useDist ? runDist(command, args) : runInProcess(command, args));

describe(`remora inject (${useDist ? 'dist/cli.js' : 'main() in process'})`, () => {
  it('prints every document with pod templates injected', async () => {
    const r = await run('inject', ['-f', fixture('workloads.yaml'), '--image', 'registry.test/remora:2', '--config-map', 'cfg']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS());
    expect(docs.map((d) => d.kind)).toEqual(['Pod', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'ReplicationController', 'Job', 'CronJob']);
    for (const d of docs) {
      const tpl = d.kind === 'Pod' ? d : d.kind === 'CronJob' ? d.spec.jobTemplate.spec.template : d.spec.template;
      expect(tpl.spec.initContainers[0]).toMatchObject({ name: 'remora-proxy', image: 'registry.test/remora:2', restartPolicy: 'Always' });
      expect(tpl.spec.volumes.find((v: any) => v.name === 'remora-config').configMap.name).toBe('cfg');
    }
  });

  it('--no-native-sidecar and --inject-iptables, written with -o', async () => {
    const outFile = join(tmp, 'out.yaml');
    const r = await run('inject', ['-f', fixture('iptables.yaml'), '--no-native-sidecar', '--inject-iptables', '-o', outFile]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    const [dep] = parseAllDocuments(readFileSync(outFile, 'utf8')).map((d) => d.toJS());
    expect(dep.spec.template.spec.initContainers.map((c: any) => c.name)).toEqual(['remora-init']);
    expect(dep.spec.template.spec.containers[0].name).toBe('remora-proxy');
    expect(dep.spec.template.spec.containers[0].lifecycle.postStart.exec.command).toEqual(['remora', 'wait', '--timeout', '60s']);
  });

  it('keeps comments and untouched documents', async () => {
    const r = await run('inject', ['-f', fixture('deployment.yaml')]);
    expect(r.code).toBe(0);
    const src = readFileSync(fixture('deployment.yaml'), 'utf8');
    expect(r.stdout.startsWith(src.split(/^---\n/m)[0]!)).toBe(true);
    expect(r.stdout).toContain('replicas: 2 # two replicas');
    // The default image follows the package version.
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    expect(r.stdout).toContain(`image: ghcr.io/remora-mesh/remora:${version}`);
  });

  it.runIf(useDist)('reads standard input with -f -', async () => {
    const r = await runDist('inject', ['-f', '-'], readFileSync(fixture('list.yaml'), 'utf8'));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('name: remora-proxy');
  });

  it('fails with exit 1 on a missing file and on a YAML syntax error (with line)', async () => {
    const missing = await run('inject', ['-f', join(tmp, 'nope.yaml')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read .*nope\.yaml: no such file/);
    const bad = join(tmp, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x\nspec: {}\n');
    const syntax = await run('inject', ['-f', bad]);
    expect(syntax.code).toBe(1);
    expect(syntax.stderr).toMatch(/bad\.yaml:\d+: YAML syntax:/);
    expect(syntax.stdout).toBe('');
  });

  it('prints usage on --help and exits 2 without -f', async () => {
    expect(await run('inject', ['--help'])).toMatchObject({ code: 0, stdout: expect.stringContaining('Usage: remora inject') });
    expect((await run('inject', [])).code).toBe(2);
  });
});

describe('remora wait', () => {
  let server: Server | undefined;
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  });

  it('returns 0 once the health endpoint turns ready (300 ms after the first probe)', async () => {
    // The clock starts at the first probe, so a slow process start cannot make the test vacuous.
    let ready = false;
    let flip: NodeJS.Timeout | undefined;
    const answers: number[] = [];
    server = createServer((req, res) => {
      flip ??= setTimeout(() => (ready = true), 300);
      const status = ready && req.url === '/healthz/ready' ? 200 : 503;
      answers.push(status);
      res.writeHead(status).end();
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz/ready`;
    const r = await run('wait', ['--url', url, '--timeout', '10s', '--interval', '50ms']);
    clearTimeout(flip);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('is ready');
    expect(answers.at(-1)).toBe(200); // it stopped at the first 200 …
    expect(answers.slice(0, -1).every((s) => s === 503)).toBe(true); // … after polling through the 503s
    expect(answers.length).toBeGreaterThanOrEqual(3); // 300 ms at a 50 ms interval
  });

  it('returns 1 with a message when not ready within the timeout', async () => {
    const always503 = await fakeUpstream().route('*', 503).start();
    try {
      const url = `${always503.url()}/healthz/ready`;
      const r = await run('wait', ['--url', url, '--timeout', '300ms', '--interval', '50ms']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/not ready after 300ms \(last: HTTP 503\)/);
    } finally {
      await always503.close();
    }
  });

  it('reports a refused connection', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const r = await run('wait', ['--url', `http://127.0.0.1:${port}/`, '--timeout', '200ms']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/connection refused/);
  });

  it('rejects a bad duration with exit 2', async () => {
    expect((await run('wait', ['--timeout', 'soon'])).code).toBe(2);
  });
});

describe('remora iptables', () => {
  it('prints the iptables-restore rules for the flags given: every inbound port but the sidecar’s by default', async () => {
    const r = await run('iptables', ['--app-ports', '8080', '--exclude-outbound-ports=5432']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('*nat');
    expect(lines).toContain('-A REMORA_INBOUND -p tcp --dport 15006 -j RETURN');
    expect(lines).toContain('-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT');
    expect(lines).toContain('-A REMORA_OUTPUT -p tcp --dport 5432 -j RETURN');
    expect(lines.at(-1)).toBe('COMMIT');
    // The annotation's narrower list still works.
    const narrow = await run('iptables', ['--include-inbound-ports', '8080']);
    expect(narrow.stdout).toContain('-A REMORA_INBOUND -p tcp --dport 8080 -j REMORA_IN_REDIRECT');
    expect(narrow.stdout).not.toContain('-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT');
  });

  it('prints the IPv6 rules as a second, separate input with --ipv6 on, none with --ipv6 off', async () => {
    const on = await run('iptables', ['--app-ports', '8080', '--ipv6', 'on', '--exclude-outbound-ip-ranges', '10.0.0.0/8,fd00:1::/64']);
    expect(on.code).toBe(0);
    const [v4, v6] = on.stdout.split('# ip6tables-restore input:\n') as [string, string];
    expect(v4).toContain('-A REMORA_OUTPUT -d 127.0.0.1/32 -j RETURN');
    expect(v4).toContain('-A REMORA_OUTPUT -d 10.0.0.0/8 -j RETURN');
    expect(v4).not.toContain('fd00');
    expect(v6.split('\n')[0]).toBe('*nat');
    expect(v6).toContain('-A REMORA_OUTPUT -d ::1/128 -j RETURN');
    expect(v6).toContain('-A REMORA_OUTPUT -d fd00:1::/64 -j RETURN');
    expect(v6.trim().split('\n').at(-1)).toBe('COMMIT');
    const off = await run('iptables', ['--app-ports', '8080', '--ipv6', 'off']);
    expect(off.stdout).not.toContain('ip6tables');
    const bad = await run('iptables', ['--ipv6', 'maybe']);
    expect(bad.code).toBe(2);
  });

  it('exits 2 on a malformed value', async () => {
    const r = await run('iptables', ['--exclude-outbound-ip-ranges', '10.0.0.0/99']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not an IPv4 or IPv6 CIDR/);
  });
});

describe('remora injector', () => {
  function post(port: number, ca: Buffer, path: string, body: string): Promise<{ status: number; json: any }> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path, method: body === '' ? 'GET' : 'POST', ca, agent: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text.startsWith('{') ? JSON.parse(text) : text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('serves reviews over HTTPS and exits 0 on SIGTERM', async () => {
    const tls = selfSignedCert(tmp, 'inj', { cn: 'localhost', subjectAltName: 'IP:127.0.0.1' });
    const ca = tls.cert;
    const args = ['--port', '0', '--host', '127.0.0.1', '--tls-cert', tls.certFile, '--tls-key', tls.keyFile, '--image', 'registry.test/r:1'];
    const review = JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'cli-1', kind: { kind: 'Pod' }, operation: 'CREATE', namespace: 'ns', object: { metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'x' }] } } },
    });
    const exercise = async (port: number): Promise<void> => {
      expect((await post(port, ca, '/healthz', '')).status).toBe(200);
      const r = await post(port, ca, '/inject', review);
      expect(r.json.response).toMatchObject({ uid: 'cli-1', allowed: true, patchType: 'JSONPatch' });
      expect(Buffer.from(r.json.response.patch, 'base64').toString()).toContain('registry.test/r:1');
    };
    if (useDist) {
      const child = spawn(process.execPath, [cliJs, 'injector', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          const m = /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        child.once('exit', (code) => reject(new Error(`injector exited ${code}`)));
      });
      try {
        await exercise(port);
      } finally {
        child.kill('SIGTERM');
      }
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      expect(code).toBe(0);
      expect(out).toContain('review cli-1 ns/p: injected');
    } else {
      const logs: string[] = [];
      const spy = vi.spyOn(process.stdout, 'write').mockImplementation(((c: unknown) => (logs.push(String(c)), true)) as typeof process.stdout.write);
      try {
        const done = (await commands.injector!()).main(args);
        const listening = await waitFor(() => /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(logs.join('')), { timeoutMs: 2000, stepMs: 10, what: 'the injector listening' });
        const port = Number(listening[1]);
        await exercise(port);
        process.emit('SIGTERM');
        expect(await done).toBe(0);
      } finally {
        spy.mockRestore();
      }
    }
  });

  it('exits 2 without TLS files and 1 when they cannot be read', async () => {
    expect((await run('injector', ['--port', '0'])).code).toBe(2);
    const r = await run('injector', ['--port', '0', '--tls-cert', join(tmp, 'missing.crt'), '--tls-key', join(tmp, 'missing.key')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot read TLS files/);
  });
});
