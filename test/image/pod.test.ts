// The image run as a pod would run it, in network namespaces this test makes: the "pod" (every container joins it)
// and the "world" (the node's side: probes, inbound calls, the demo v1/v2 servers and a TCP echo), joined by a veth
// pair. The containers come from `remora inject --inject-iptables`, run from the image itself, turned into podman
// flags by the test kubelet: a drift between inject and the image (path, port, UID, capability) fails here.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createNetnsPair, peerClient, type NetnsPair } from '../support/netns.js';
import { BASE_IMAGE, DISTROLESS_IMAGE, SLIM_IMAGE } from './build.js';
import { APP_PORT, DEMO_HOST, WORLD_PORTS, appPod, configMaps, injectWithImage } from './pod-fixture.js';
import { startPod, type RunningPod } from './pod-runner.js';
import { podmanAt } from './podman.js';

const build = inject('imageBuild');
const p = podmanAt(inject('podmanDir'));
const peer = fileURLToPath(new URL('../support/netns-peer.mjs', import.meta.url));
const REQUESTS = 200;

/** /proc/<pid>/status fields of the container's main process, as the host sees it. */
function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** The options of the process's root mount ("ro,…" for a read-only root filesystem). */
function rootMountOptions(pid: number): string {
  const line = readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').find((l) => l.split(' ')[4] === '/');
  return line?.split(' ')[5] ?? '';
}

describe.each([
  // inject's default image is the slim one: no --image flag.
  { variant: 'slim', mode: 'native', image: SLIM_IMAGE, flags: [] as string[], subnet: 121 },
  { variant: 'distroless', mode: 'native', image: DISTROLESS_IMAGE, flags: ['--image', DISTROLESS_IMAGE], subnet: 122 },
  // Classic: the sidecar is the first app container, and its postStart hook execs `remora wait` in the image.
  { variant: 'distroless', mode: 'classic', image: DISTROLESS_IMAGE, flags: ['--image', DISTROLESS_IMAGE, '--no-native-sidecar'], subnet: 123 },
])('a pod with the $variant sidecar ($mode), as inject writes it', ({ variant, mode, image, flags, subnet }) => {
  let net: NetnsPair;
  let pod: RunningPod;
  let injected: Record<string, any>;
  const world = (op: Record<string, unknown>): ReturnType<typeof peerClient> => peerClient(net, 'world', op, 0);
  const app = (args: string[]): any => JSON.parse(pod.exec('app', ['node', '/peer/pod-app.mjs', ...args]).trim().split('\n').pop()!);
  const stats = (): string => world({ op: 'http', host: net.podIp, port: 15090, path: '/stats/prometheus' }).body ?? '';

  beforeAll(async () => {
    if (!build.ok) throw new Error(`the images were not built (${build.error}): see the build test`);
    net = createNetnsPair(`im${variant[0]}${mode[0]}`, subnet);
    await net.start(net.world, [process.execPath, peer, 'serve', JSON.stringify([
      { kind: 'http', host: net.worldIp, port: WORLD_PORTS.v1, name: 'demo v1' },
      { kind: 'http', host: net.worldIp, port: WORLD_PORTS.v2, name: 'demo v2' },
      { kind: 'echo', host: net.worldIp, port: WORLD_PORTS.echo },
    ])], { readyLine: /listening/ });
    injected = injectWithImage(p, image, appPod(BASE_IMAGE), ['--inject-iptables', ...flags]).pod;
    pod = await startPod(p, injected, {
      netns: net.pod,
      podIp: net.podIp,
      prefix: `remora-image-${variant}-${mode}-${process.pid}`,
      configMaps: configMaps(net.worldIp),
      // The kubelet probes from the node: here, the world namespace.
      probe: (port, path, timeoutSeconds) => world({ op: 'http', host: net.podIp, port, path, timeoutMs: timeoutSeconds * 1000 }).status,
      dns: { nameserver: net.worldIp, search: ['remora-demo.svc.cluster.local', 'svc.cluster.local', 'cluster.local'], ndots: 5 },
    });
    // What was run, for a reader who wants to repeat it by hand (docs/operations.md, "The image").
    writeFileSync(fileURLToPath(new URL(`../../test-results/image-pod-${variant}-${mode}.sh`, import.meta.url)), `${pod.commands.join('\n')}\n`);
  }, 180_000);

  afterAll(() => {
    pod?.destroy();
    net?.destroy();
  });

  it('inject names this image for both containers; remora-init applied the capture rules as root with NET_ADMIN', () => {
    const names = (list: Array<{ name: string; image: string }>): string[][] => list.map((c) => [c.name, c.image]);
    if (mode === 'native') {
      expect(names(injected.spec.initContainers)).toEqual([['remora-init', image], ['remora-proxy', image]]);
    } else {
      expect(names(injected.spec.initContainers)).toEqual([['remora-init', image]]);
      expect(names(injected.spec.containers)[0]).toEqual(['remora-proxy', image]);
      expect(pod.plan.containers.find((c) => c.name === 'remora-proxy')!.postStart).toEqual(['remora', 'wait', '--timeout', '60s']);
    }
    const initPlan = pod.plan.containers.find((c) => c.name === 'remora-init')!;
    expect(initPlan.user).toEqual({ uid: 0, gid: 0 });
    expect(initPlan.runArgs).toEqual(expect.arrayContaining(['--cap-drop=ALL', '--cap-add=NET_ADMIN', '--cap-add=NET_RAW']));
    expect(pod.logs('remora-init')).toMatch(/remora iptables: rules applied/);
    const nat = net.exec(net.pod, ['iptables-save', '-t', 'nat']);
    // Every inbound port is captured (Istio's includeInboundPorts "*"), the sidecar's own 15006, 15021 and 15090 excepted.
    expect(nat).toMatch(/-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT/);
    for (const port of [15006, 15021, 15090]) expect(nat).toMatch(new RegExp(`-A REMORA_INBOUND -p tcp -m tcp --dport ${port} -j RETURN`));
    expect(nat).toMatch(/-A REMORA_OUTPUT -m owner --uid-owner 1337 -j RETURN/);
  });

  it('the sidecar runs as 1337:1337 with no capabilities, no new privileges and a read-only root, and became ready', () => {
    const status = procStatus(pod.pid('remora-proxy'));
    expect(status.Uid!.split(/\s+/)).toEqual(['1337', '1337', '1337', '1337']);
    expect(status.Gid!.split(/\s+/)).toEqual(['1337', '1337', '1337', '1337']);
    expect(status.CapEff).toBe('0000000000000000');
    expect(status.CapBnd).toBe('0000000000000000');
    expect(status.NoNewPrivs).toBe('1');
    expect(rootMountOptions(pod.pid('remora-proxy'))).toMatch(/^ro(,|$)/);
    // The runner waited for the startup probe before starting the app, then for every readiness probe: the
    // sidecar's own and the app's, which inject rewrote to the sidecar's health port.
    const appPlan = pod.plan.containers.find((c) => c.name === 'app')!;
    expect(appPlan.readinessProbe).toMatchObject({ port: 15021, path: '/app-health/app/readyz' });
    expect(pod.logs('remora-proxy')).toMatch(/remora ready/);
    // The containerPorts inject declares: health and stats answer the node; the inbound port, dialled directly rather
    // than redirected, is refused (--capture-mode redirect, Envoy's virtualInbound blackhole chain): no answer.
    const ports = pod.plan.containers.find((c) => c.name === 'remora-proxy')!.ports;
    expect(ports.sort()).toEqual([15006, 15021, 15090]);
    for (const port of [15021, 15090]) expect(world({ op: 'tcp', host: net.podIp, port, send: 'GET / HTTP/1.0\r\n\r\n', expectBytes: 4 }).ok, `port ${port}`).toBe(true);
    const direct = world({ op: 'tcp', host: net.podIp, port: 15006, send: 'GET / HTTP/1.0\r\n\r\n', expectBytes: 4 });
    expect(direct.data ?? '', 'port 15006 dialled directly').toBe('');
    // The native addon the build stage compiled reads the original destinations.
    const dump = JSON.parse(app(['get', 'http://127.0.0.1:15000/config_dump']).body) as { capture: { originalDestination: string } };
    expect(dump.capture.originalDestination).toBe('native');
  });

  it("routes the app's outbound HTTP by the VirtualService's weights (80/20 over subsets v1/v2), through the capture", () => {
    const r = app(['tally', `http://${DEMO_HOST}/`, String(REQUESTS)]) as { counts: Record<string, number>; errors: string[]; viaSidecar: number };
    expect(r.errors).toEqual([]);
    expect(r.viaSidecar).toBe(REQUESTS);
    const v1 = r.counts['demo v1'] ?? 0;
    expect(v1 + (r.counts['demo v2'] ?? 0)).toBe(REQUESTS);
    // Binomial(200, 0.8): mean 160, sd 5.7; the bounds are ±4 sd (a false failure about once in 16,000 runs).
    expect(v1).toBeGreaterThanOrEqual(137);
    expect(v1).toBeLessThanOrEqual(183);
    const s = stats();
    // The pod's labels reached the sidecar through the downward-API file inject mounts (--labels-file).
    expect(s).toMatch(/istio_requests_total\{[^}]*reporter="source"[^}]*source_app="client",source_version="v1"[^}]*destination_version="v1"[^}]*\} [1-9]/);
    expect(s).toMatch(/istio_requests_total\{[^}]*reporter="source"[^}]*destination_version="v2"[^}]*\} [1-9]/);
  });

  it("serves inbound: the node calls the app port, the sidecar hands the request to the app at the pod's address (as Istio since 1.10)", () => {
    const r = world({ op: 'http', host: net.podIp, port: APP_PORT, path: '/hello' });
    expect(r).toMatchObject({ ok: true, status: 200 });
    const seen = JSON.parse(r.body!) as { server: string; peer: string; headers: Record<string, string> };
    expect(seen.server).toBe('app');
    expect(seen.peer).toBe(net.podIp);
    expect(seen.headers['x-forwarded-for']).toBe(net.worldIp);
    expect(stats()).toMatch(/istio_requests_total\{[^}]*reporter="destination"[^}]*response_code="200"[^}]*\} [1-9]/);
  });

  it('passes a non-HTTP TCP connection through to the address the app dialled', () => {
    const r = app(['tcp', net.worldIp, String(WORLD_PORTS.echo), 'not http, just bytes']);
    expect(r).toMatchObject({ ok: true, data: 'not http, just bytes' });
    expect(stats()).toMatch(/istio_tcp_connections_opened_total\{[^}]*destination_service_name="PassthroughCluster"[^}]*\} [1-9]/);
  });

  it('on SIGTERM the sidecar drains: not ready at once, the in-flight request completes, exit 0; then the app stops', async () => {
    const slow = net.start(net.world, [process.execPath, peer, 'client', JSON.stringify({ op: 'http', host: net.podIp, port: APP_PORT, path: '/slow?ms=1500', timeoutMs: 10_000 })]);
    const { child, output } = await slow;
    const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await new Promise((r) => setTimeout(r, 500)); // the request is in flight (the app answers after 1.5 s)
    pod.signal('remora-proxy', 'TERM');
    await new Promise((r) => setTimeout(r, 200));
    expect(world({ op: 'http', host: net.podIp, port: 15021, path: '/healthz/ready' }).status).not.toBe(200);
    await done;
    const answer = JSON.parse(output().trim().split('\n').pop()!) as { ok: boolean; status: number; body: string };
    expect(answer).toMatchObject({ ok: true, status: 200 });
    expect((JSON.parse(answer.body) as { server: string }).server).toBe('app');
    expect(await pod.waitExit('remora-proxy', 15_000)).toBe(0);
    expect(pod.logs('remora-proxy')).not.toMatch(/EROFS|EACCES/); // a read-only root: it never tried to write
    // The rest of the pod as Kubernetes deletes it: the app gets SIGTERM and exits on its own.
    const codes = await pod.terminate();
    expect(codes.app).toBe(0);
    expect(codes['remora-proxy']).toBe(0);
  });
});
