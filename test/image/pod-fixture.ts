/**
 * What the image test's pod is made of: the app's Pod manifest (before injection), the ConfigMaps its volumes
 * mount (the sample's remora-config from deploy/config, plus a ServiceEntry standing in for the Service and its
 * EndpointSlices that an API server would give), and `remora inject` run from the image under test.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { podman, type Podman } from './podman.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(`${repo}/${path}`, 'utf8');

export const APP_PORT = 8080;
export const APP_UID = 1000;
export const DEMO_HOST = 'demo.remora-demo.svc.cluster.local';
/** The demo Service's ClusterIP: only the app's /etc/hosts (hostAliases) and the sidecar's registry know it. */
export const DEMO_VIP = '198.18.210.10';
/** Where the world namespace serves demo v1, demo v2 and a TCP echo that is in no registry. */
export const WORLD_PORTS = { v1: 8081, v2: 8082, echo: 7000 } as const;

/** The app's Pod, as its owner would write it: the stand-in Node image runs pod-app.mjs from a ConfigMap. */
export function appPod(appImage: string): string {
  return `apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: remora-demo
  labels:
    app: client
    version: v1
spec:
  serviceAccountName: demo
  hostAliases:
    - ip: ${DEMO_VIP}
      hostnames: [${DEMO_HOST}]
  containers:
    - name: app
      image: ${appImage}
      command: [node, /peer/pod-app.mjs, serve, "${APP_PORT}"]
      ports:
        - name: http
          containerPort: ${APP_PORT}
      readinessProbe:
        httpGet:
          path: /health
          port: http
        periodSeconds: 1
      securityContext:
        runAsUser: ${APP_UID}
        runAsGroup: ${APP_UID}
        runAsNonRoot: true
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities:
          drop: [ALL]
      volumeMounts:
        - name: peer
          mountPath: /peer
          readOnly: true
  volumes:
    - name: peer
      configMap:
        name: image-test-peer
`;
}

/** The ConfigMaps the pod mounts: remora-config (the sample's, unchanged, plus the demo Service) and the app's script. */
export function configMaps(worldIp: string): Record<string, Record<string, string>> {
  const sample = parseAllDocuments(read('deploy/config/remora-config.yaml')).map((d) => d.toJS() as { kind: string; data: Record<string, string> });
  const remoraConfig = sample.find((o) => o.kind === 'ConfigMap')!.data;
  // With --kubernetes the sidecar would learn the demo Service (its ClusterIP) and its pods (their version labels)
  // from the API server; without one, a ServiceEntry says the same.
  const services = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: demo
  namespace: remora-demo
spec:
  hosts: [${DEMO_HOST}]
  addresses: [${DEMO_VIP}]
  ports:
    - number: 80
      name: http
      protocol: HTTP
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints:
    - address: ${worldIp}
      ports: { http: ${WORLD_PORTS.v1} }
      labels: { app: demo, version: v1 }
    - address: ${worldIp}
      ports: { http: ${WORLD_PORTS.v2} }
      labels: { app: demo, version: v2 }
`;
  return {
    'remora-config': { ...remoraConfig, 'services.yaml': services },
    'image-test-peer': { 'pod-app.mjs': read('test/image/pod-app.mjs') },
  };
}

/** `remora inject` as a user without Node would run it: from the image, manifest on stdin. Returns the parsed Pod. */
export function injectWithImage(p: Podman, image: string, manifest: string, flags: string[]): { text: string; pod: Record<string, any> } {
  const text = podman(p, ['run', '--rm', '-i', '--network', 'none', '--pull=never', '--no-healthcheck', image, 'inject', '-f', '-', ...flags], { input: manifest });
  return { text, pod: parse(text) as Record<string, any> };
}
