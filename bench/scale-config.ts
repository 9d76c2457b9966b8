// The mesh of the scale scenario (issue #26): N services, each a ServiceEntry with two endpoints (subsets v1 and v2),
// a DestinationRule with two subsets and an 80/20 VirtualService, spread over 100 files; and the one-service edit
// the scenario times. Pure: returns file names and text.

/** Files the services are spread over (contiguous blocks: file f holds services [f·N/100, (f+1)·N/100)). */
export const SCALE_FILES = 100;
/** The namespace every generated object is in. */
export const SCALE_NAMESPACE = 'default';
/** The service port every ServiceEntry declares (endpoints map the port name to their own port). */
export const SCALE_SERVICE_PORT = 80;
/** The response header a timed edit sets, to tell the new route from the old one. */
export const EDIT_HEADER = 'x-scale-edit';

export const scaleHost = (i: number): string => `svc-${i}.scale.local`;

/**
 * The endpoint address of service `i`: one loopback address per service (127.1.0.0 upwards; 127.0.0.0/24 is left to
 * everything else), both subsets on it (ports v1 and v2), so traffic to 1,000 services opens 2,000 upstream pools as
 * it would in a mesh. Up to 2^23 services.
 */
export function scaleAddress(i: number): string {
  const n = (1 << 16) + i;
  return `127.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

export interface ScalePorts {
  /** The upstream port of subset v1's endpoints. */
  v1: number;
  /** The upstream port of subset v2's endpoints. */
  v2: number;
}

/** The services of file `f` (0-based) when `n` are spread over SCALE_FILES files. */
export function fileRange(n: number, f: number): [number, number] {
  return [Math.floor((f * n) / SCALE_FILES), Math.floor(((f + 1) * n) / SCALE_FILES)];
}

/** The file holding service `i`. */
export function fileOf(n: number, i: number): number {
  for (let f = Math.min(SCALE_FILES - 1, Math.floor((i * SCALE_FILES) / Math.max(1, n))); f >= 0; f--) {
    const [lo, hi] = fileRange(n, f);
    if (i >= lo && i < hi) return f;
    if (i >= hi) break;
  }
  for (let f = 0; f < SCALE_FILES; f++) {
    const [lo, hi] = fileRange(n, f);
    if (i >= lo && i < hi) return f;
  }
  throw new RangeError(`service ${i} is not among ${n}`);
}

export const fileName = (f: number): string => `mesh-${String(f).padStart(3, '0')}.yaml`;

/**
 * An edit of one service. `vs` (the default): its VirtualService's weights and a response header that marks it.
 * `dr`: its DestinationRule's subset v1 selects the `version: v3` endpoint (on SPARE_ADDRESS) instead of v1's.
 * `endpoints`: its ServiceEntry's endpoints move to SPARE_ADDRESS. Either shows as `x-served-by: SPARE_ADDRESS` from
 * the tagged upstream (the scenario edits each service at most once in those modes).
 */
export interface ScaleEdit {
  service: number;
  weights: [number, number];
  marker: string;
  kind?: ScaleEditKind;
}

export type ScaleEditKind = 'vs' | 'dr' | 'endpoints';

/** The address the `dr` and `endpoints` edits send a service's traffic to (no service has it: 2^22 is past any size). */
export const SPARE_ADDRESS = scaleAddress(1 << 22);

/**
 * Services with a third endpoint (`version: v3` on SPARE_ADDRESS, on port v1) that no subset selects until a `dr`
 * edit: the services a `dr` run may edit (not every service, so that the mesh costs what the other runs' does).
 */
export interface ScaleShape { v3?: ReadonlySet<number> }

/** The three documents of service `i`, in the plain YAML Istio files are written in. */
export function serviceYaml(i: number, ports: ScalePorts, edit?: ScaleEdit, shape?: ScaleShape): string {
  const host = scaleHost(i);
  const kind = edit?.kind ?? 'vs';
  const addr = kind === 'endpoints' ? SPARE_ADDRESS : scaleAddress(i);
  const [w1, w2] = kind === 'vs' ? edit?.weights ?? [80, 20] : [80, 20];
  const headers = edit && kind === 'vs' ? `\n    headers:\n      response:\n        set:\n          ${EDIT_HEADER}: "${edit.marker}"` : '';
  const v3 = shape?.v3?.has(i) === true ? `\n  - address: ${SPARE_ADDRESS}\n    ports:\n      http: ${ports.v1}\n    labels:\n      version: v3` : '';
  const v1Label = kind === 'dr' ? 'v3' : 'v1';
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: svc-${i}
  namespace: ${SCALE_NAMESPACE}
spec:
  hosts:
  - ${host}
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: ${SCALE_SERVICE_PORT}
    name: http
    protocol: HTTP
  endpoints:
  - address: ${addr}
    ports:
      http: ${ports.v1}
    labels:
      version: v1
  - address: ${addr}
    ports:
      http: ${ports.v2}
    labels:
      version: v2${v3}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: svc-${i}
  namespace: ${SCALE_NAMESPACE}
spec:
  host: ${host}
  subsets:
  - name: v1
    labels:
      version: ${v1Label}
  - name: v2
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: svc-${i}
  namespace: ${SCALE_NAMESPACE}
spec:
  hosts:
  - ${host}
  http:
  - route:
    - destination:
        host: ${host}
        subset: v1
      weight: ${w1}
    - destination:
        host: ${host}
        subset: v2
      weight: ${w2}${headers}
`;
}

/** The text of file `f` of an `n`-service mesh, with the edits (by service) that fall in this file applied. */
export function fileYaml(n: number, f: number, ports: ScalePorts, edits?: ReadonlyMap<number, ScaleEdit>, shape?: ScaleShape): string {
  const [lo, hi] = fileRange(n, f);
  const docs: string[] = [];
  for (let i = lo; i < hi; i++) docs.push(serviceYaml(i, ports, edits?.get(i), shape));
  return docs.join('---\n');
}

/** Every file of an `n`-service mesh: [name, text]. Files left empty (n < 100) are omitted. */
export function meshFiles(n: number, ports: ScalePorts, shape?: ScaleShape): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let f = 0; f < SCALE_FILES; f++) {
    const [lo, hi] = fileRange(n, f);
    if (hi > lo) out.push([fileName(f), fileYaml(n, f, ports, undefined, shape)]);
  }
  return out;
}

/** `count` services spread evenly over the mesh (every file gets its share), for traffic to "1,000 of them". */
export function spreadServices(n: number, count: number): number[] {
  const k = Math.min(n, count);
  const out: number[] = [];
  for (let j = 0; j < k; j++) out.push(Math.floor((j * n) / k));
  return out;
}
