// The images as built by the global setup (stand-in base, then podman build of the Dockerfile's two targets): they
// built, their sizes, what their configuration promises (UID 1337, exec-form entry point and HEALTHCHECK, the ports
// and health URL inject uses, the bench's NODE_OPTIONS), and that they run with a read-only root and no capabilities.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { DISTROLESS_IMAGE, SLIM_IMAGE } from './build.js';
import { appPod, injectWithImage } from './pod-fixture.js';
import { podman, podmanAt, podmanStatus } from './podman.js';

const build = inject('imageBuild');
const p = podmanAt(inject('podmanDir'));
const repo = fileURLToPath(new URL('../../', import.meta.url));
const MB = 1e6;

/** The last lines of the build log, for a failure message. */
function logTail(): string {
  return existsSync(build.log) ? readFileSync(build.log, 'utf8').split('\n').slice(-40).join('\n') : '(no log)';
}

/** The Node flags the benchmarks run Remora with (bench/run.ts REMORA_NODE_FLAGS). */
function benchNodeFlags(): string[] {
  const m = /const REMORA_NODE_FLAGS = \[([^\]]*)\]/.exec(readFileSync(`${repo}/bench/run.ts`, 'utf8'));
  if (!m) throw new Error('bench/run.ts has no REMORA_NODE_FLAGS');
  return [...m[1]!.matchAll(/'([^']*)'/g)].map((x) => x[1]!);
}

interface ImageConfig {
  User: string;
  Env: string[];
  Entrypoint: string[];
  Cmd: string[];
  ExposedPorts: Record<string, unknown>;
  Healthcheck?: { Test: string[] };
}

/** The image's configuration; podman reports a docker-format image's HEALTHCHECK beside Config, not in it. */
function config(image: string): ImageConfig {
  const [i] = JSON.parse(podman(p, ['image', 'inspect', image])) as Array<{ Config: ImageConfig; Healthcheck?: { Test: string[] } }>;
  return { ...i!.Config, ...(i!.Healthcheck !== undefined ? { Healthcheck: i!.Healthcheck } : {}) };
}

/** Run the image once with a read-only root as the injected sidecar is run, and return stdout. */
function runReadOnly(image: string, args: string[], entrypoint?: string): string {
  return podman(p, [
    'run', '--rm', '--network', 'none', '--pull=never', '--no-healthcheck', '--read-only', '--read-only-tmpfs=false',
    '--user', '1337:1337', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges',
    ...(entrypoint !== undefined ? ['--entrypoint', entrypoint] : []), image, ...args,
  ]);
}

describe('the image build', () => {
  it('makes the stand-in base and builds both targets of the Dockerfile with podman build --runtime runc', () => {
    expect(build.error ?? '', logTail()).toBe('');
    expect(build.ok).toBe(true);
    // The build stage ran what a user's `docker build` runs (its RUN checks that npm ci compiled the native addon).
    const log = readFileSync(build.log, 'utf8');
    for (const step of ['RUN npm ci && test -f native/build/Release/remora_net.node', 'RUN npm run build && npm prune --omit=dev']) expect(log).toContain(step);
  });

  it('is small: the slim image adds under 80 MB to the base; the distroless variant is smaller than the slim one', () => {
    expect(build.ok).toBe(true);
    const added = build.slim!.bytes - build.base!.bytes;
    console.log(`image sizes: stand-in base ${(build.base!.bytes / MB).toFixed(1)} MB, slim ${(build.slim!.bytes / MB).toFixed(1)} MB (+${(added / MB).toFixed(1)} MB), distroless ${(build.distroless!.bytes / MB).toFixed(1)} MB`);
    // The layers the slim image adds to the base, newest first (history entries beyond the base's).
    type Layer = { size: number; CreatedBy?: string; createdBy?: string };
    const history = (image: string): Layer[] => JSON.parse(podman(p, ['history', '--format', 'json', image])) as Layer[];
    const layers = history(build.slim!.name).slice(0, -history(build.base!.name).length).filter((l) => l.size > 0);
    for (const l of layers) console.log(`  ${(l.size / MB).toFixed(1).padStart(6)} MB  ${(l.CreatedBy ?? l.createdBy ?? '').replace(/^\/bin\/sh -c (#\(nop\) )?/, '').slice(0, 90)}`);
    expect(layers.reduce((sum, l) => sum + l.size, 0)).toBeLessThan(80 * MB);
    expect(added).toBeLessThan(80 * MB);
    expect(build.distroless!.bytes).toBeLessThan(build.slim!.bytes * 0.75);
  });
});

describe.each([
  { variant: 'slim', image: SLIM_IMAGE },
  { variant: 'distroless', image: DISTROLESS_IMAGE },
])('the $variant image', ({ image }) => {
  const sidecar = (): Record<string, any> => {
    const pod = injectWithImage(p, image, appPod('app:1'), ['--image', image]).pod;
    return pod.spec.initContainers.find((c: { name: string }) => c.name === 'remora-proxy');
  };

  it('runs as 1337:1337 and needs no shell: exec-form ENTRYPOINT, CMD and HEALTHCHECK', () => {
    const c = config(image);
    expect(c.User).toBe('1337:1337');
    expect(c.Entrypoint).toEqual(['remora']);
    expect(c.Cmd).toEqual(['run', '--config', '/etc/remora/config']);
    expect(c.Healthcheck?.Test[0]).toBe('CMD'); // not CMD-SHELL
  });

  it("exposes the ports inject declares, and its HEALTHCHECK asks the URL of inject's startup and readiness probes", () => {
    const c = config(image);
    const s = sidecar();
    for (const port of s.ports as Array<{ containerPort: number }>) expect(Object.keys(c.ExposedPorts)).toContain(`${port.containerPort}/tcp`);
    for (const probe of [s.startupProbe, s.readinessProbe]) {
      expect(c.Healthcheck!.Test).toContain(`http://127.0.0.1:${probe.httpGet.port}${probe.httpGet.path}`);
    }
    expect(s.image).toBe(image);
  });

  it("has the bench's NODE_OPTIONS, which the injected sidecar keeps (adding only its heap cap)", () => {
    const env = Object.fromEntries(config(image).Env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
    expect(env.NODE_OPTIONS!.split(' ')).toEqual(benchNodeFlags());
    const injected = (sidecar().env as Array<{ name: string; value?: string }>).find((e) => e.name === 'NODE_OPTIONS')!.value!.split(' ');
    expect(injected).toEqual(expect.arrayContaining(benchNodeFlags()));
    expect(injected.filter((f) => !benchNodeFlags().includes(f))).toEqual(['--max-old-space-size=96']);
  });

  it('loads every production dependency and the native addon as UID 1337 with a read-only root and no capabilities', () => {
    const deps = Object.keys((JSON.parse(readFileSync(`${repo}/package.json`, 'utf8')) as { dependencies: Record<string, string> }).dependencies);
    const script = `const deps = ${JSON.stringify(deps)}; for (const d of deps) await import(d);
      const { createRequire } = await import('node:module');
      createRequire('/app/')('./native/build/Release/remora_net.node');
      console.log('loaded ' + deps.length);`;
    expect(runReadOnly(image, ['--input-type=module', '-e', script], 'node').trim()).toBe(`loaded ${deps.length}`);
    expect(runReadOnly(image, ['version']).trim()).toMatch(/^remora \d+\.\d+\.\d+/);
  });

  it('its HEALTHCHECK command fails while nothing serves and passes once the sidecar is ready', async () => {
    const test = config(image).Healthcheck!.Test.slice(1);
    const name = `remora-image-health-${process.pid}-${image.endsWith('distroless') ? 'd' : 's'}`;
    podman(p, ['run', '--detach', '--name', name, '--network', 'none', '--pull=never', '--no-healthcheck', '--read-only', '--read-only-tmpfs=false', '--cap-drop', 'ALL', '--entrypoint', 'node', image, '-e', 'setTimeout(() => {}, 60000)']);
    try {
      expect(podmanStatus(p, ['exec', name, ...test]).code).not.toBe(0);
    } finally {
      podman(p, ['rm', '--force', '--time', '0', name]);
    }
    // The sidecar itself, with no config volume (inject's ConfigMap volume is optional: an empty directory).
    podman(p, ['run', '--detach', '--name', name, '--network', 'none', '--pull=never', '--no-healthcheck', '--read-only', '--read-only-tmpfs=false', '--cap-drop', 'ALL', '--tmpfs', '/etc/remora/config:ro', image]);
    try {
      let code: number | null = null;
      for (let i = 0; i < 50 && code !== 0; i++) {
        code = podmanStatus(p, ['exec', name, ...test]).code;
        if (code !== 0) await new Promise((r) => setTimeout(r, 200));
      }
      expect(code, podman(p, ['logs', name])).toBe(0);
    } finally {
      podman(p, ['rm', '--force', '--time', '0', name]);
    }
  });
});

describe('the distroless variant', () => {
  it('has no shell and no package manager, only node, iptables, env and the app', () => {
    for (const path of ['/bin/sh', '/bin/bash', '/usr/bin/dash', '/usr/bin/apt-get', '/usr/bin/dpkg']) {
      const r = podmanStatus(p, ['run', '--rm', '--network', 'none', '--pull=never', '--no-healthcheck', '--entrypoint', path, DISTROLESS_IMAGE]);
      expect(r.code, path).not.toBe(0);
      expect(r.stderr, path).toMatch(/no such file or directory|not found/i);
    }
    const listing = runReadOnly(DISTROLESS_IMAGE, ['-e', 'console.log(require("fs").readdirSync("/usr/bin").concat(require("fs").readdirSync("/usr/sbin")).join(" "))'], 'node');
    expect(listing.trim().split(' ').sort()).toEqual(expect.arrayContaining(['env', 'iptables-restore', 'ip6tables-restore']));
    expect(listing).not.toMatch(/\b(sh|bash|dash|apt|dpkg)\b/);
  });

  it('has the app where the slim image has it, with the same Node settings', () => {
    const slim = parse(podman(p, ['image', 'inspect', '--format', '{{json .Config.WorkingDir}}', SLIM_IMAGE])) as string;
    const dl = parse(podman(p, ['image', 'inspect', '--format', '{{json .Config.WorkingDir}}', DISTROLESS_IMAGE])) as string;
    expect(dl).toBe(slim);
    expect(config(DISTROLESS_IMAGE).Env).toEqual(expect.arrayContaining(config(SLIM_IMAGE).Env.filter((e) => /^NODE_(ENV|OPTIONS)=/.test(e))));
  });
});
