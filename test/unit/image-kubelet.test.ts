// The image test's kubelet (test/image/kubelet.ts): inject's pod spec → podman run flags, as the kubelet would run
// the containers. Pure; the image test (npm run test:image) runs the result for real.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { injectObject } from '../../src/inject/inject.js';
import { atomicWriterLayout, cpus, downwardApiFiles, downwardApiMap, memoryBytes, planPod, podVolumes, type PodContext } from '../image/kubelet.js';

const APP_IMAGE = 'localhost/app:1';
const PROXY_IMAGE = 'ghcr.io/remora-mesh/remora:0.1.0';

const pod = parse(`
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: remora-demo
  labels: { app: client, version: v1 }
spec:
  serviceAccountName: demo
  hostAliases: [{ ip: 198.18.210.10, hostnames: [demo.remora-demo.svc.cluster.local] }]
  containers:
    - name: app
      image: ${APP_IMAGE}
      command: [node, /peer/app.mjs]
      args: [serve, "8080"]
      ports: [{ name: http, containerPort: 8080 }]
      readinessProbe: { httpGet: { path: /health, port: http }, periodSeconds: 1 }
      securityContext: { runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true, readOnlyRootFilesystem: true, capabilities: { drop: [ALL] } }
      volumeMounts: [{ name: peer, mountPath: /peer, readOnly: true }]
  volumes:
    - name: peer
      configMap: { name: peer }
`) as Record<string, any>;

const ctx = (over: Partial<PodContext> = {}): PodContext => ({
  netns: 'rmr-pod-x',
  podIp: '198.18.121.2',
  nodeName: 'node-1',
  volumeDirs: { peer: '/v/peer', 'remora-config': '/v/config', 'remora-podinfo': '/v/podinfo' },
  imageUser: (image) => (image === PROXY_IMAGE ? '1337:1337' : ''),
  prefix: 't',
  ...over,
});

const injected = (opts: Parameters<typeof injectObject>[1] = {}): Record<string, any> =>
  injectObject(pod, { image: PROXY_IMAGE, iptables: true, ...opts }).object as Record<string, any>;

describe('the image test kubelet', () => {
  it('runs remora-init, then the native sidecar, then the app, each with the flags its securityContext asks for', () => {
    const plan = planPod(injected(), ctx());
    expect(plan.containers.map((c) => [c.name, c.kind])).toEqual([['remora-init', 'init'], ['remora-proxy', 'sidecar'], ['app', 'app']]);
    const [init, proxy, app] = plan.containers;

    expect(init!.user).toEqual({ uid: 0, gid: 0 });
    expect(init!.runArgs).toEqual(expect.arrayContaining(['--user=0:0', '--cap-drop=ALL', '--cap-add=NET_ADMIN', '--cap-add=NET_RAW', '--security-opt=no-new-privileges', '--network=ns:/run/netns/rmr-pod-x', '--pull=never']));
    expect(init!.runArgs).not.toContain('--read-only');
    expect(init!.runArgs.slice(init!.runArgs.indexOf(PROXY_IMAGE))).toEqual([PROXY_IMAGE, 'iptables', '--apply', '--app-ports', '8080']);

    expect(proxy!.user).toEqual({ uid: 1337, gid: 1337 });
    expect(proxy!.runArgs).toEqual(expect.arrayContaining([
      '--user=1337:1337', '--read-only', '--read-only-tmpfs=false', '--cap-drop=ALL', '--security-opt=no-new-privileges',
      `--memory=${128 * 2 ** 20}b`, '--cpu-shares=10',
      '--env=POD_NAME=client', '--env=POD_NAMESPACE=remora-demo', '--env=INSTANCE_IP=198.18.121.2', '--env=SERVICE_ACCOUNT=demo',
      '--env=NODE_OPTIONS=--max-old-space-size=96 --max-semi-space-size=1 --v8-pool-size=1',
      '--volume=/v/config:/etc/remora/config:ro', '--volume=/v/podinfo:/etc/remora/podinfo:ro',
      '--add-host=demo.remora-demo.svc.cluster.local:198.18.210.10',
    ]));
    expect(proxy!.runArgs.find((a) => a.startsWith('--env=REMORA_APP_PROBERS='))).toContain('/app-health/app/readyz');
    expect(proxy!.runArgs.slice(proxy!.runArgs.indexOf(PROXY_IMAGE))).toEqual([PROXY_IMAGE, 'run', '--config', '/etc/remora/config', '--app-port', '8080', '--capture-mode', 'redirect', '--labels-file', '/etc/remora/podinfo/labels']);
    expect(proxy!.startupProbe).toEqual({ path: '/healthz/ready', port: 15021, scheme: 'HTTP', periodSeconds: 1, failureThreshold: 600, timeoutSeconds: 3, initialDelaySeconds: 0 });
    expect(proxy!.ports).toEqual([15006, 15021, 15090]);

    // command replaces the ENTRYPOINT; the probe inject rewrote now asks the sidecar's health port.
    expect(app!.runArgs).toContain('--entrypoint=["node","/peer/app.mjs"]');
    expect(app!.runArgs.slice(-3)).toEqual([APP_IMAGE, 'serve', '8080']);
    expect(app!.readinessProbe).toMatchObject({ path: '/app-health/app/readyz', port: 15021, periodSeconds: 1, failureThreshold: 3 });
    expect(app!.user).toEqual({ uid: 1000, gid: 1000 });
  });

  it('runs a classic sidecar first among the app containers, with its postStart hook', () => {
    const plan = planPod(injected({ nativeSidecar: false }), ctx());
    expect(plan.containers.map((c) => [c.name, c.kind])).toEqual([['remora-init', 'init'], ['remora-proxy', 'app'], ['app', 'app']]);
    expect(plan.containers[1]!.postStart).toEqual(['remora', 'wait', '--timeout', '60s']);
    expect(plan.terminationGracePeriodSeconds).toBe(30);
  });

  it('adds the pod resolver (dnsPolicy ClusterFirst) when given one', () => {
    const plan = planPod(injected(), ctx({ dns: { nameserver: '198.18.121.1', search: ['remora-demo.svc.cluster.local', 'cluster.local'], ndots: 5 } }));
    expect(plan.containers[1]!.runArgs).toEqual(expect.arrayContaining(['--dns=198.18.121.1', '--dns-search=remora-demo.svc.cluster.local', '--dns-search=cluster.local', '--dns-option=ndots:5']));
  });

  it('refuses what the kubelet would refuse: runAsNonRoot with a root user', () => {
    const p = injected();
    p.spec.initContainers[1].securityContext.runAsUser = 0;
    expect(() => planPod(p, ctx())).toThrow(/runAsNonRoot and image will run as root/);
    // No runAsUser: the image's USER decides (root here).
    const q = structuredClone(pod);
    delete q.spec.containers[0].securityContext.runAsUser;
    expect(() => planPod(q, ctx())).toThrow(/spec.containers\[0\]: container has runAsNonRoot/);
  });

  it('refuses fields it does not model instead of dropping them, so a new field in inject fails the image test', () => {
    const withField = (f: (p: Record<string, any>) => void): Record<string, any> => {
      const p = injected();
      f(p);
      return p;
    };
    expect(() => planPod(withField((p) => (p.spec.initContainers[1].stdin = true)), ctx())).toThrow(/initContainers\[1\]\.stdin: not modelled/);
    expect(() => planPod(withField((p) => (p.spec.initContainers[1].securityContext.procMount = 'Default')), ctx())).toThrow(/procMount: not modelled/);
    expect(() => planPod(withField((p) => (p.spec.initContainers[1].startupProbe = { exec: { command: ['true'] } })), ctx())).toThrow(/startupProbe.exec: not modelled/);
    expect(() => planPod(withField((p) => p.spec.initContainers[1].env.push({ name: 'X', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } })), ctx())).toThrow(/env\[\d+\] X: only value and valueFrom.fieldRef/);
    expect(() => planPod(withField((p) => p.spec.initContainers[1].env.push({ name: 'X', valueFrom: { fieldRef: { fieldPath: 'status.hostIPs' } } })), ctx())).toThrow(/fieldRef status.hostIPs/);
    expect(() => planPod(withField((p) => (p.spec.initContainers[1].imagePullPolicy = 'Always')), ctx())).toThrow(/the test has no registry/);
    expect(() => podVolumes(injectObject(pod, { certs: 'csi' }).object)).toThrow(/remora-certs: only configMap, secret, downwardAPI and emptyDir/);
  });

  it('writes ConfigMaps in the atomic-writer layout and downward-API label files as the kubelet does', () => {
    expect(atomicWriterLayout({ 'mesh.yaml': 'a', 'x.yaml': 'b' }, '2026_12_07')).toEqual([
      { path: '..2026_12_07/mesh.yaml', content: 'a' },
      { path: '..2026_12_07/x.yaml', content: 'b' },
      { path: '..data', target: '..2026_12_07' },
      { path: 'mesh.yaml', target: '..data/mesh.yaml' },
      { path: 'x.yaml', target: '..data/x.yaml' },
    ]);
    expect(downwardApiMap({ version: 'v1', app: 'client', note: 'say "hi"' })).toBe('app="client"\nnote="say \\"hi\\""\nversion="v1"');
    const files = downwardApiFiles(injected(), podVolumes(injected()).find((v) => v.name === 'remora-podinfo')!.items!);
    expect(files.labels).toBe('app="client"\nversion="v1"');
    expect(files.annotations).toMatch(/^prometheus\.io\/path="\/stats\/prometheus"\n/);
  });

  it('reads Kubernetes quantities', () => {
    expect(memoryBytes('128Mi')).toBe(134217728);
    expect(memoryBytes('1G')).toBe(1e9);
    expect(memoryBytes('1000')).toBe(1000);
    expect(() => memoryBytes('lots')).toThrow(/memory quantity/);
    expect(cpus('10m')).toBe(0.01);
    expect(cpus('2')).toBe(2);
    expect(cpus(1.5)).toBe(1.5);
  });
});
