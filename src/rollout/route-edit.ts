/**
 * Edits of an HTTPRoute or GRPCRoute for a rollout (`remora rollout --httproute/--grpcroute`), on the `yaml`
 * Document model like vs-edit.ts, so a file keeps its comments and layout. Pure: no I/O.
 *
 * The rollout rule is the first rule (other than the rollout's own header rule) whose backendRefs name the stable
 * or the canary Service, and nothing else. Weights are the backendRefs' weights; a mirror step is a RequestMirror
 * filter to the canary; `--header-canary` adds a rule with the rollout rule's matches plus the header, which the
 * Gateway API's precedence (more header matches first) puts in front.
 */
import { isMap, isScalar, isSeq, newDocument, type YAMLSeq } from '../util/yaml.js';
import { HEADER_ROUTE_NAME } from './state.js';
import { DocEditor, str, type AnyMap } from './doc-editor.js';
import type { RouteWeights } from './vs-edit.js';

function num(n: unknown): number | undefined {
  const v = isScalar(n) ? n.value : n;
  return typeof v === 'number' ? v : undefined;
}

export class GatewayRouteEditor extends DocEditor {
  static fromObject(obj: unknown): GatewayRouteEditor {
    return new GatewayRouteEditor(newDocument(obj));
  }

  get kind(): string {
    return str(this.doc.get('kind')) ?? 'HTTPRoute';
  }

  private rules(): YAMLSeq<unknown> {
    const r = this.doc.getIn(['spec', 'rules']);
    if (!isSeq(r)) throw new Error(`${this.kind} ${this.name} has no spec.rules`);
    return r as YAMLSeq<unknown>;
  }

  /** The rollout rule (see the module comment); `host` is not used (a route binds its parent Services). */
  findRoute(stable: string, canary: string, _host?: string): RouteWeights {
    const rules = this.rules();
    for (let i = 0; i < rules.items.length; i++) {
      const r = rules.items[i];
      if (!isMap(r) || str(r.get('name')) === HEADER_ROUTE_NAME) continue;
      const refs = r.get('backendRefs', true);
      if (!isSeq(refs)) continue;
      const list = refs.items.filter(isMap) as AnyMap[];
      if (!list.some((b) => { const n = str(b.get('name')); return n === stable || n === canary; })) continue;
      let sw = 0;
      let cw = 0;
      let hasS = false;
      let hasC = false;
      for (const b of list) {
        const n = str(b.get('name'));
        const w = num(b.get('weight')) ?? 1;
        if (n === stable) { sw += w; hasS = true; } else if (n === canary) { cw += w; hasC = true; } else {
          throw new Error(`${this.kind} ${this.name}: rules[${i}] also sends to ${n}; a rollout rule holds only the ${stable} and ${canary} backends`);
        }
      }
      const total = sw + cw;
      let mirrorPercent = 0;
      const filters = r.get('filters', true);
      if (isSeq(filters)) {
        for (const f of filters.items) {
          if (!isMap(f) || str(f.get('type')) !== 'RequestMirror') continue;
          if (str(f.getIn(['requestMirror', 'backendRef', 'name'])) === canary) mirrorPercent = num(f.getIn(['requestMirror', 'percent'])) ?? 100;
        }
      }
      const prev = rules.items[i - 1];
      return {
        index: i, name: str(r.get('name')), host: stable,
        stable: total > 0 ? Math.round((sw / total) * 100) : 0, canary: total > 0 ? Math.round((cw / total) * 100) : 0,
        hasStable: hasS, hasCanary: hasC, mirrorPercent,
        headerRoute: isMap(prev) && str(prev.get('name')) === HEADER_ROUTE_NAME,
      };
    }
    throw new Error(`${this.kind} ${this.name}: no rule sends to ${stable} or ${canary}`);
  }

  private rule(ref: RouteWeights): AnyMap {
    return this.rules().items[ref.index] as AnyMap;
  }

  /** The canary's weight (0..100), the stable's the rest; 0 and 100 leave the other backend out. */
  setWeights(stable: string, canary: string, canaryWeight: number, _host?: string): void {
    if (!Number.isInteger(canaryWeight) || canaryWeight < 0 || canaryWeight > 100) throw new Error(`weight ${canaryWeight}: 0..100`);
    const ref = this.findRoute(stable, canary);
    const refs = this.rule(ref).get('backendRefs', true) as unknown as YAMLSeq<unknown>;
    const list = refs.items as AnyMap[];
    const named = (b: AnyMap, n: string): boolean => str(b.get('name')) === n;
    const template = list.find((b) => named(b, stable)) ?? list.find((b) => named(b, canary))!;
    const ensure = (n: string): AnyMap => {
      let b = list.find((x) => named(x, n));
      if (b) return b;
      const copy: Record<string, unknown> = { ...(template.toJSON() as Record<string, unknown>), name: n };
      delete copy.filters;
      b = this.doc.createNode(copy) as AnyMap;
      b.flow = template.flow;
      if (n === stable) refs.items.unshift(b); else refs.items.push(b);
      return b;
    };
    const drop = (n: string): void => { refs.items = refs.items.filter((x) => !(isMap(x) && named(x as AnyMap, n))); };
    if (canaryWeight === 0) { ensure(stable).set('weight', 100); drop(canary); }
    else if (canaryWeight === 100) { ensure(canary).set('weight', 100); drop(stable); }
    else { ensure(stable).set('weight', 100 - canaryWeight); ensure(canary).set('weight', canaryWeight); }
  }

  /** Mirror `percent` % of the rule's requests to the canary (0 removes that mirror). */
  setMirror(stable: string, canary: string, percent: number, _host?: string): void {
    const ref = this.findRoute(stable, canary);
    const r = this.rule(ref);
    let filters = r.get('filters', true) as YAMLSeq<unknown> | undefined;
    const isOurs = (f: unknown): boolean => isMap(f) && str(f.get('type')) === 'RequestMirror' && str(f.getIn(['requestMirror', 'backendRef', 'name'])) === canary;
    if (isSeq(filters)) filters.items = filters.items.filter((f) => !isOurs(f));
    if (percent <= 0) {
      if (isSeq(filters) && filters.items.length === 0) r.delete('filters');
      return;
    }
    const refs = r.get('backendRefs', true) as unknown as YAMLSeq<unknown>;
    const port = num((refs.items[0] as AnyMap | undefined)?.get('port'));
    const mirror = this.doc.createNode({ type: 'RequestMirror', requestMirror: { backendRef: { name: canary, ...(port !== undefined ? { port } : {}) }, percent } });
    if (!isSeq(filters)) { filters = this.doc.createNode([]) as YAMLSeq<unknown>; r.set('filters', filters); }
    filters.items.push(mirror);
  }

  /** With a header, a rule before the rollout rule sends requests carrying it to the canary; without, it is removed. */
  setHeaderRoute(stable: string, canary: string, header: { name: string; value: string } | undefined, _host?: string): void {
    const ref = this.findRoute(stable, canary);
    const rules = this.rules();
    if (ref.headerRoute) rules.items.splice(ref.index - 1, 1);
    if (!header) return;
    const r = rules.items[ref.headerRoute ? ref.index - 1 : ref.index] as AnyMap;
    const refs = r.get('backendRefs', true) as unknown as YAMLSeq<unknown>;
    const port = num((refs.items[0] as AnyMap | undefined)?.get('port'));
    const own = r.get('matches', true);
    const blocks: Array<Record<string, unknown>> = isSeq(own) && own.items.length > 0 ? own.items.map((m) => (isMap(m) ? (m.toJSON() as Record<string, unknown>) : {})) : [{}];
    const matches = blocks.map((b) => ({ ...b, headers: [...((b.headers as unknown[] | undefined) ?? []), { name: header.name, value: header.value }] }));
    const node = this.doc.createNode({ name: HEADER_ROUTE_NAME, matches, backendRefs: [{ name: canary, ...(port !== undefined ? { port } : {}), weight: 1 }] });
    rules.items.splice(ref.headerRoute ? ref.index - 1 : ref.index, 0, node);
  }
}
