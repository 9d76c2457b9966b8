/**
 * Edits of a VirtualService for a rollout, on the `yaml` package's Document model so a file keeps its comments,
 * key order, flow/block style and every field the rollout does not touch. The Kubernetes path builds a Document
 * from the object it read and takes `.toJS()` of the result. Pure: no I/O.
 *
 * The rollout route is the first `http[]` route with a destination whose subset is the stable (or canary) one, on
 * `host` when given. Its destinations are the stable and canary subsets of one host, and nothing else.
 */
import { isMap, isScalar, isSeq, newDocument, parseAllDocuments, type Document, type Node, type YAMLSeq } from '../util/yaml.js';

import { HEADER_ROUTE_NAME } from './state.js';
import { DocEditor, str, type AnyMap } from './doc-editor.js';

export { HEADER_ROUTE_NAME };

export interface RouteWeights {
  /** Index of the route in `spec.http`. */
  index: number;
  /** The route's `name`, if any. */
  name: string | undefined;
  host: string;
  stable: number;
  canary: number;
  /** Canary destination present at all. */
  hasCanary: boolean;
  hasStable: boolean;
  mirrorPercent: number;
  headerRoute: boolean;
}

function num(n: unknown): number | undefined {
  const v = isScalar(n) ? n.value : n;
  return typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : undefined;
}

/** `reviews` matches `reviews`, `reviews.default`, `reviews.default.svc.cluster.local`; a dotted host matches itself. */
export function sameHost(a: string, b: string): boolean {
  if (a === b) return true;
  const sa = a.split('.')[0]!;
  const sb = b.split('.')[0]!;
  return (!a.includes('.') || !b.includes('.')) && sa === sb;
}

export class VsEditor extends DocEditor {
  static fromObject(obj: unknown): VsEditor {
    return new VsEditor(newDocument(obj));
  }

  private http(): YAMLSeq<unknown> {
    const h = this.doc.getIn(['spec', 'http']);
    if (!isSeq(h)) throw new Error(`VirtualService ${this.name} has no spec.http routes`);
    return h as YAMLSeq<unknown>;
  }

  /** The route the rollout moves (see the module comment); throws with a precise reason when there is none. */
  findRoute(stable: string, canary: string, host?: string): RouteWeights {
    const http = this.http();
    for (let i = 0; i < http.items.length; i++) {
      const r = http.items[i];
      if (!isMap(r) || str(r.get('name')) === HEADER_ROUTE_NAME) continue;
      const route = r.get('route', true);
      if (!isSeq(route)) continue;
      const dests = route.items.filter(isMap) as AnyMap[];
      const hit = dests.find((d) => {
        const sub = str(d.getIn(['destination', 'subset']));
        const h = str(d.getIn(['destination', 'host']));
        return (sub === stable || sub === canary) && h !== undefined && (host === undefined || sameHost(h, host));
      });
      if (!hit) continue;
      const theHost = str(hit.getIn(['destination', 'host']))!;
      let sw = 0;
      let cw = 0;
      let hasS = false;
      let hasC = false;
      for (const d of dests) {
        const sub = str(d.getIn(['destination', 'subset']));
        const h = str(d.getIn(['destination', 'host'])) ?? '';
        const w = num(d.get('weight')) ?? (dests.length === 1 ? 100 : 0);
        if (sameHost(h, theHost) && sub === stable) { sw += w; hasS = true; }
        else if (sameHost(h, theHost) && sub === canary) { cw += w; hasC = true; }
        else throw new Error(`VirtualService ${this.name}: http[${i}] also routes to ${h}${sub ? ` subset ${sub}` : ''}; a rollout route holds only the ${stable} and ${canary} subsets of one host`);
      }
      const total = sw + cw;
      const mirrorSub = str(r.getIn(['mirror', 'subset']));
      const mp = mirrorSub === canary ? (num(r.getIn(['mirrorPercentage', 'value'])) ?? 100) : 0;
      const prev = http.items[i - 1];
      return {
        index: i, name: str(r.get('name')), host: theHost,
        stable: total > 0 ? Math.round((sw / total) * 100) : 0, canary: total > 0 ? Math.round((cw / total) * 100) : 0,
        hasStable: hasS, hasCanary: hasC, mirrorPercent: mp,
        headerRoute: isMap(prev) && str(prev.get('name')) === HEADER_ROUTE_NAME,
      };
    }
    throw new Error(`VirtualService ${this.name}: no http route sends to subset ${stable} or ${canary}${host ? ` of ${host}` : ''}`);
  }

  private routeMap(ref: RouteWeights): AnyMap {
    return this.http().items[ref.index] as AnyMap;
  }

  /**
   * Set the canary's weight (0..100) and the stable's to the rest. 0 leaves the stable destination alone at 100
   * (the canary destination is removed); 100 leaves the canary alone at 100 (promotion).
   */
  setWeights(stable: string, canary: string, canaryWeight: number, host?: string): void {
    if (!Number.isInteger(canaryWeight) || canaryWeight < 0 || canaryWeight > 100) throw new Error(`weight ${canaryWeight}: 0..100`);
    const ref = this.findRoute(stable, canary, host);
    const r = this.routeMap(ref);
    const route = r.get('route', true) as unknown as YAMLSeq<unknown>;
    const dests = route.items as AnyMap[];
    const isSub = (d: AnyMap, s: string): boolean => str(d.getIn(['destination', 'subset'])) === s;
    const template = dests.find((d) => isSub(d, stable)) ?? dests.find((d) => isSub(d, canary))!;
    const ensure = (subset: string): AnyMap => {
      let d = dests.find((x) => isSub(x, subset));
      if (d) return d;
      const dest = (template.get('destination', true) as unknown as AnyMap).toJSON() as Record<string, unknown>;
      d = this.doc.createNode({ destination: { ...dest, subset }, weight: 0 }) as AnyMap;
      d.flow = template.flow;
      (d.get('destination', true) as unknown as AnyMap).flow = (template.get('destination', true) as unknown as AnyMap).flow;
      // Stable first, canary second: the order people write and read.
      if (subset === stable) route.items.unshift(d);
      else route.items.push(d);
      return d;
    };
    const drop = (subset: string): void => {
      route.items = route.items.filter((x) => !(isMap(x) && isSub(x as AnyMap, subset)));
    };
    if (canaryWeight === 0) {
      ensure(stable).set('weight', 100);
      drop(canary);
    } else if (canaryWeight === 100) {
      ensure(canary).set('weight', 100);
      drop(stable);
    } else {
      ensure(stable).set('weight', 100 - canaryWeight);
      ensure(canary).set('weight', canaryWeight);
    }
  }

  /** Mirror `percent` % of the route's requests to the canary subset (0 removes a mirror to the canary). */
  setMirror(stable: string, canary: string, percent: number, host?: string): void {
    const ref = this.findRoute(stable, canary, host);
    const r = this.routeMap(ref);
    if (percent <= 0) {
      if (str(r.getIn(['mirror', 'subset'])) === canary) {
        r.delete('mirror');
        r.delete('mirrorPercentage');
      }
      return;
    }
    const existing = str(r.getIn(['mirror', 'subset']));
    if (r.has('mirror') && existing !== canary) throw new Error(`VirtualService ${this.name}: http[${ref.index}] already mirrors elsewhere; --mirror would replace it`);
    const route = r.get('route', true) as unknown as YAMLSeq<unknown>;
    const dest = ((route.items[0] as AnyMap).get('destination', true) as unknown as AnyMap).toJSON() as Record<string, unknown>;
    r.set('mirror', this.doc.createNode({ ...dest, subset: canary }));
    r.set('mirrorPercentage', this.doc.createNode({ value: percent }));
  }

  /**
   * With a header, a route in front of the rollout route sends requests carrying it to the canary at 100 % (test
   * users), under the rollout route's own match conditions; without, that route is removed.
   */
  setHeaderRoute(stable: string, canary: string, header: { name: string; value: string } | undefined, host?: string): void {
    const ref = this.findRoute(stable, canary, host);
    const http = this.http();
    if (ref.headerRoute) http.items.splice(ref.index - 1, 1);
    if (!header) return;
    const r = http.items[ref.headerRoute ? ref.index - 1 : ref.index] as AnyMap;
    const route = r.get('route', true) as unknown as YAMLSeq<unknown>;
    const dest = ((route.items[0] as AnyMap).get('destination', true) as unknown as AnyMap).toJSON() as Record<string, unknown>;
    const own = r.get('match', true);
    const blocks: Array<Record<string, unknown>> = isSeq(own) && own.items.length > 0
      ? own.items.map((m) => (isMap(m) ? (m.toJSON() as Record<string, unknown>) : {}))
      : [{}];
    const match = blocks.map((b) => ({ ...b, headers: { ...((b.headers as Record<string, unknown> | undefined) ?? {}), [header.name]: { exact: header.value } } }));
    const node = this.doc.createNode({ name: HEADER_ROUTE_NAME, match, route: [{ destination: { ...dest, subset: canary }, weight: 100 }] }) as Node;
    http.items.splice(ref.headerRoute ? ref.index - 1 : ref.index, 0, node);
  }
}

/** A YAML file of one or more documents, one of them the VirtualService; serialised in the file's own list indent. */
export class VsFile {
  private readonly docs: Document[];
  private readonly indentSeq: boolean;

  constructor(readonly text: string) {
    this.docs = parseAllDocuments(text);
    for (const d of this.docs) if (d.errors.length > 0) throw new Error(`YAML: ${d.errors[0]!.message}`);
    this.indentSeq = detectIndentSeq(text);
  }

  /** The VirtualService called `name` (in `namespace`, a document without one counting as `defaultNamespace`). */
  find(name: string, namespace: string, defaultNamespace: string): VsEditor {
    return new VsEditor(this.findDocument('VirtualService', name, namespace, defaultNamespace));
  }

  /** The document of kind `kind` called `name` in `namespace` (HTTPRoute and GRPCRoute rollouts edit theirs too). */
  findDocument(kind: string, name: string, namespace: string, defaultNamespace: string): Document {
    for (const d of this.docs) {
      if (str(d.get('kind')) !== kind) continue;
      if (str(d.getIn(['metadata', 'name'])) !== name) continue;
      const ns = str(d.getIn(['metadata', 'namespace'])) ?? defaultNamespace;
      if (ns !== namespace) continue;
      return d;
    }
    throw new Error(`no ${kind} ${namespace}/${name} in the file`);
  }

  toString(): string {
    return this.docs.map((d) => d.toString({ lineWidth: 0, indentSeq: this.indentSeq, flowCollectionPadding: false })).join('');
  }
}

/** Whether block lists are indented under their key (`key:\n  - x`) or not (`key:\n- x`, kubectl's style). */
function detectIndentSeq(text: string): boolean {
  const lines = text.split('\n');
  for (let i = 0; i + 1 < lines.length; i++) {
    const k = /^(\s*)[^\s#-][^:]*:\s*(#.*)?$/.exec(lines[i]!);
    if (!k) continue;
    let j = i + 1;
    while (j < lines.length && /^\s*(#.*)?$/.test(lines[j]!)) j++;
    const d = /^(\s*)- /.exec(lines[j] ?? '');
    if (d) return d[1]!.length > k[1]!.length;
  }
  return false;
}
