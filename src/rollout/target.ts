/**
 * Where the routed object lives (a VirtualService, HTTPRoute or GRPCRoute): a YAML file (edited in place, comments
 * kept, written atomically) or the Kubernetes API (read, then server-side apply of `spec.http` / `spec.rules` and the
 * state annotation with field manager `remora-rollout`, the read resourceVersion as precondition). Both hand out an
 * editor (vs-edit.ts, route-edit.ts) and take it back.
 */
import { closeSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { VsEditor, VsFile } from './vs-edit.js';
import { GatewayRouteEditor } from './route-edit.js';
import type { Document } from '../util/yaml.js';

/** The kinds a rollout moves weights in. */
export type RolloutKind = 'VirtualService' | 'HTTPRoute' | 'GRPCRoute';
export type RouteEditor = VsEditor | GatewayRouteEditor;

function editorFor(kind: RolloutKind, doc: Document): RouteEditor {
  return kind === 'VirtualService' ? new VsEditor(doc) : new GatewayRouteEditor(doc);
}
import { ANNOTATION, COMMAND_ANNOTATION, parseCommand, parseState, type Command, type RolloutState } from './state.js';

export interface Loaded {
  editor: RouteEditor;
  state: RolloutState | undefined;
  /** Version of what was read (file text / resourceVersion): a write fails with ConflictError if it changed. */
  version: string;
  /** File mode: the parsed file the editor's document belongs to. */
  file?: VsFile;
}

export class ConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

export interface Target {
  readonly description: string;
  read(): Promise<Loaded>;
  /** Write the edited VirtualService with `state` in its annotation, if nothing changed since `loaded` was read. */
  write(loaded: Loaded, state: RolloutState): Promise<void>;
  readCommand(): Promise<Command | undefined>;
  /** Send (or, with undefined, clear) an abort/promote request for the running rollout. */
  writeCommand(c: Command | undefined): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The VirtualService in a YAML file (one document among others). The state sits in its annotation. */
export class FileTarget implements Target {
  readonly description: string;
  private readonly lockPath: string;
  private readonly commandPath: string;

  constructor(private readonly path: string, private readonly name: string, private readonly namespace: string, private readonly defaultNamespace = namespace, private readonly kind: RolloutKind = 'VirtualService') {
    this.description = `${path} (${kind} ${namespace}/${name})`;
    // Hidden names: the config loader and the watcher skip files that start with a dot.
    this.lockPath = join(dirname(path), `.${basename(path)}.rollout.lock`);
    this.commandPath = join(dirname(path), `.${basename(path)}.rollout-command.json`);
  }

  async read(): Promise<Loaded> {
    const text = readFileSync(this.path, 'utf8');
    const file = new VsFile(text);
    const editor = editorFor(this.kind, file.findDocument(this.kind, this.name, this.namespace, this.defaultNamespace));
    return { editor, state: parseState(editor.annotation(ANNOTATION)), version: text, file };
  }

  /** The file is re-read inside a short exclusive section (an O_EXCL lock file) and written by rename. */
  async write(loaded: Loaded, state: RolloutState): Promise<void> {
    await this.exclusive(async () => {
      const now = readFileSync(this.path, 'utf8');
      if (now !== loaded.version) throw new ConflictError(`${this.path} changed since it was read`);
      loaded.editor.setAnnotation(ANNOTATION, JSON.stringify(state));
      // The editor's document belongs to the VsFile the unchanged text was parsed into: serialise that whole file.
      const out = loaded.file!.toString();
      const tmp = join(dirname(this.path), `.${basename(this.path)}.rollout-${process.pid}.tmp`);
      writeFileSync(tmp, out);
      renameSync(tmp, this.path);
      loaded.version = out;
    });
  }

  async readCommand(): Promise<Command | undefined> {
    try {
      return parseCommand(readFileSync(this.commandPath, 'utf8'));
    } catch {
      return undefined;
    }
  }

  async writeCommand(c: Command | undefined): Promise<void> {
    if (c === undefined) rmSync(this.commandPath, { force: true });
    else writeFileSync(this.commandPath, JSON.stringify(c));
  }

  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        closeSync(openSync(this.lockPath, 'wx'));
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // A lock file older than 10 s was left by a crashed writer.
        try {
          if (Date.now() - statSync(this.lockPath).mtimeMs > 10_000) rmSync(this.lockPath, { force: true });
        } catch { /* gone meanwhile */ }
        if (Date.now() > deadline) throw new Error(`${this.lockPath}: held for more than 10 s`);
        await sleep(20);
      }
    }
    try {
      return await fn();
    } finally {
      rmSync(this.lockPath, { force: true });
    }
  }
}

/**
 * `--config` may name the directory `remora run --config` reads: the file holding the VirtualService is found in it
 * (recursively, `.yaml`/`.yml`/`.json`, hidden names and ConfigMap internals skipped, as the config loader does).
 */
export function resolveVsFile(path: string, name: string, namespace: string, kind: RolloutKind = 'VirtualService'): string {
  if (!statSync(path).isDirectory()) return path;
  const hits: string[] = [];
  const walk = (dir: string, depth: number): void => {
    for (const n of readdirSync(dir).sort()) {
      if (n.startsWith('.')) continue;
      const p = join(dir, n);
      let st;
      try { st = statSync(p); } catch { continue; }
      if (st.isDirectory()) { if (depth < 8) walk(p, depth + 1); continue; }
      if (!/\.(ya?ml|json)$/.test(n)) continue;
      try {
        new VsFile(readFileSync(p, 'utf8')).findDocument(kind, name, namespace, namespace);
        hits.push(p);
      } catch { /* not here */ }
    }
  };
  walk(path, 0);
  if (hits.length === 0) throw new Error(`no ${kind} ${namespace}/${name} in ${path}`);
  if (hits.length > 1) throw new Error(`${kind} ${namespace}/${name} is in ${hits.length} files (${hits.join(', ')}); give --config the one file`);
  return hits[0]!;
}

/** The subset of client-node's KubernetesObjectApi the target uses (injectable for tests). */
export interface KubeObjectApi {
  read(spec: { apiVersion: string; kind: string; metadata: { name: string; namespace: string } }): Promise<Record<string, any>>;
  patch(spec: Record<string, unknown>, pretty?: string, dryRun?: string, fieldManager?: string, force?: boolean, patchStrategy?: any): Promise<Record<string, any>>;
}

export const FIELD_MANAGER = 'remora-rollout';

/** The VirtualService (or HTTPRoute, GRPCRoute) through the Kubernetes API. */
export class KubeTarget implements Target {
  readonly description: string;
  constructor(private readonly api: KubeObjectApi, private readonly name: string, private readonly namespace: string, private readonly apiVersion = 'networking.istio.io/v1', private readonly kind: RolloutKind = 'VirtualService') {
    this.description = `${kind} ${namespace}/${name} (Kubernetes API)`;
  }

  private async get(): Promise<Record<string, any>> {
    return this.api.read({ apiVersion: this.apiVersion, kind: this.kind, metadata: { name: this.name, namespace: this.namespace } });
  }

  async read(): Promise<Loaded> {
    const obj = await this.get();
    const plain = { apiVersion: obj.apiVersion, kind: obj.kind, metadata: obj.metadata, spec: obj.spec };
    const editor = this.kind === 'VirtualService' ? VsEditor.fromObject(plain) : GatewayRouteEditor.fromObject(plain);
    return { editor, state: parseState(editor.annotation(ANNOTATION)), version: String(obj.metadata?.resourceVersion ?? '') };
  }

  /**
   * Server-side apply of the routes (`spec.http` of a VirtualService, `spec.rules` of an HTTPRoute or GRPCRoute:
   * atomic lists in both CRDs, so they are replaced whole) and the annotation.
   */
  async write(loaded: Loaded, state: RolloutState): Promise<void> {
    const obj = loaded.editor.toObject() as { spec?: { http?: unknown; rules?: unknown } };
    const patch = {
      apiVersion: this.apiVersion,
      kind: this.kind,
      metadata: { name: this.name, namespace: this.namespace, resourceVersion: loaded.version, annotations: { [ANNOTATION]: JSON.stringify(state) } },
      spec: this.kind === 'VirtualService' ? { http: obj.spec?.http ?? [] } : { rules: obj.spec?.rules ?? [] },
    };
    try {
      const out = await this.api.patch(patch, undefined, undefined, FIELD_MANAGER, true, 'application/apply-patch+yaml');
      loaded.version = String(out?.metadata?.resourceVersion ?? loaded.version);
    } catch (err) {
      if (statusOf(err) === 409) throw new ConflictError(`${this.kind} ${this.namespace}/${this.name} changed since it was read`);
      throw err;
    }
  }

  async readCommand(): Promise<Command | undefined> {
    const obj = await this.get();
    return parseCommand(obj.metadata?.annotations?.[COMMAND_ANNOTATION]);
  }

  /** A JSON merge patch on the command annotation alone (null removes it). */
  async writeCommand(c: Command | undefined): Promise<void> {
    await this.api.patch(
      { apiVersion: this.apiVersion, kind: this.kind, metadata: { name: this.name, namespace: this.namespace, annotations: { [COMMAND_ANNOTATION]: c === undefined ? null : JSON.stringify(c) } } },
      undefined, undefined, `${FIELD_MANAGER}-command`, undefined, 'application/merge-patch+json',
    );
  }
}

function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  for (const v of [e?.code, e?.statusCode, e?.response?.statusCode]) if (typeof v === 'number') return v;
  return undefined;
}
