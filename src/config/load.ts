/**
 * Read config paths (files or directories, recursively) into Resources. Directories follow Kubernetes
 * ConfigMap mounts: entries whose names start with `..` (`..data`, `..2026_…`) are skipped, and the
 * visible names are symlinks through `..data`, so an atomic `..data` swap is read consistently.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { parseDocuments } from './parse.js';
import type { ConfigError, Resource } from './resource.js';

const EXTENSIONS = ['.yaml', '.yml', '.json'];

export interface LoadResult {
  resources: Resource[];
  errors: ConfigError[];
  files: string[];
  /** SHA-256 (hex) of every file's name and contents, in order: the config hash, and "did anything change". */
  digest: string;
  /** The files parsed again (new or changed text); the others' resources are the cache's, the same objects as before. */
  parsed?: string[];
  /** Of the files parsed again, the resources of documents whose text was unchanged: the same objects as before. */
  reused?: number;
  /**
   * Takes this load back out of the cache (when its result is not adopted: a rejected config): the files parsed again
   * get their previous entries, and the resources taken over from them their previous lines, so that the resources of
   * the config still in use say where they are in the text they were read from.
   */
  undo?: () => void;
}

/**
 * Per-file parse results from an earlier load, by file name: a file whose text hashes the same is not parsed again
 * and gives the same Resource objects (so a later stage can tell what changed by identity). Owned by the caller.
 */
export type ParseCache = Map<string, CachedFile>;

export interface CachedFile {
  hash: string;
  resources: readonly Resource[];
  errors: readonly ConfigError[];
  /** Its documents' hashes (parse.ts ParseResult.docHashes): the next parse of a changed text reuses unchanged documents. */
  docHashes?: Int32Array;
  /** The default namespace its resources were read with (set with docHashes). */
  namespace?: string;
  /**
   * The file's identity, size and change times (ns) when read, set only when its last change was well before
   * that (RACY_MS): a file whose stat still says the same is not read again. A change made within the same clock
   * tick as the read would keep the size and times, so a file changed just before it was read is read every time
   * until it has been left alone for RACY_MS (as git treats "racily clean" index entries).
   */
  stat?: string;
}

/** How long a file must have gone unchanged (by its ctime) before its stat alone is trusted to say "unchanged". */
const RACY_MS = 2000;

function statKey(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** A listed file with its stat, or a path that could not be read or listed. */
type Listed = { file: string; st: BigIntStats } | { error: ConfigError };

/**
 * The files under `path` in order (names sorted, depth first). The entries of a directory are stat'ed concurrently:
 * one after the other, the 100 stats of a large mesh's directory took a round trip through the thread pool each on
 * every reload.
 */
async function listFiles(path: string, top: boolean): Promise<Listed[]> {
  let st;
  try {
    st = await stat(path, { bigint: true });
  } catch (err) {
    return [{ error: { file: path, line: 0, object: '', field: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` } }];
  }
  if (st.isDirectory()) {
    let names: string[];
    try {
      names = await readdir(path);
    } catch (err) {
      return [{ error: { file: path, line: 0, object: '', field: '', message: `cannot list: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` } }];
    }
    names.sort();
    // ConfigMap internals (..data, ..2026_…) and hidden files are skipped.
    const parts = await Promise.all(names.filter((n) => !n.startsWith('.')).map((n) => listFiles(join(path, n), false)));
    return parts.length === 1 ? parts[0]! : ([] as Listed[]).concat(...parts);
  }
  if (top || EXTENSIONS.some((e) => path.endsWith(e))) return [{ file: path, st }];
  return [];
}

export async function loadConfig(paths: readonly string[], defaultNamespace: string, cache?: ParseCache): Promise<LoadResult> {
  const files: string[] = [];
  const errors: ConfigError[] = [];
  const stats = new Map<string, BigIntStats>();
  // Earlier than every stat below: a file whose ctime is RACY_MS older than this was unchanged when it was read.
  const listedAt = Date.now();
  for (const p of paths) {
    for (const x of await listFiles(p, true)) {
      if ('error' in x) errors.push(x.error);
      else { files.push(x.file); stats.set(x.file, x.st); }
    }
  }
  // Each file's resources, joined at the end.
  const lists: Array<readonly Resource[]> = [];
  // The digest covers every file's name and the SHA-256 of its text; the per-file hash also lets a resource read its
  // file again for the line numbers of a later error instead of keeping the text (parse.ts, ParseOptions.reread).
  const hash = createHash('sha256');
  const parsed: string[] = [];
  let reused = 0;
  const undo: Array<() => void> = [];
  for (const f of files) {
    const st = stats.get(f);
    const cached = cache?.get(f);
    if (cached?.stat !== undefined && st !== undefined && cached.stat === statKey(st)) {
      hash.update(`\0${f}\0`).update(cached.hash);
      lists.push(cached.resources);
      for (const x of cached.errors) errors.push(x);
      continue;
    }
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (err) {
      errors.push({ file: f, line: 0, object: '', field: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      continue;
    }
    const fileHash = sha256(text);
    hash.update(`\0${f}\0`).update(fileHash);
    let r = cached;
    if (r === undefined || r.hash !== fileHash) {
      const p = parseDocuments(text, f, defaultNamespace, { reread: () => rereadIfUnchanged(f, fileHash), previous: r });
      if (cache !== undefined) {
        const was = r;
        const back = p.undo;
        undo.push(() => { back?.(); if (was === undefined) cache.delete(f); else cache.set(f, was); });
      }
      r = { hash: fileHash, resources: p.resources, errors: p.errors };
      if (p.docHashes !== undefined) {
        r.docHashes = p.docHashes;
        r.namespace = p.namespace;
      }
      reused += p.reused ?? 0;
      cache?.set(f, r);
      parsed.push(f);
    }
    // The stat taken before this read describes this text if nothing changed the file since; trusted next time only
    // when its last change was long enough before (a later change then has a later ctime).
    r.stat = st !== undefined && Number(st.ctimeNs / 1_000_000n) < listedAt - RACY_MS ? statKey(st) : undefined;
    lists.push(r.resources);
    for (const x of r.errors) errors.push(x);
  }
  if (cache !== undefined && cache.size > files.length) {
    const present = new Set(files);
    for (const [f, was] of cache) {
      if (present.has(f)) continue;
      cache.delete(f);
      undo.push(() => cache.set(f, was));
    }
  }
  // One array of the final length (pushed one by one, 150,000 resources grew it through 4 MB of copies per load).
  const resources = ([] as Resource[]).concat(...lists);
  const out: LoadResult = { resources, errors, files, digest: hash.digest('hex'), parsed, reused };
  if (undo.length > 0) out.undo = () => { for (let i = undo.length - 1; i >= 0; i--) undo[i]!(); };
  return out;
}

/**
 * Files read within RACY_MS of their last change got no stat key, so every reload reads and hashes them again: all of
 * them after files written just before start or a ConfigMap swap (75 MB at 50,000 services, the first edit's 150–190
 * ms). Once their change has aged, this reads each such file once more, one at a time off the reload path, and gives
 * it its stat key when its text is still the one parsed (the stat taken before that read, as loadConfig does). An
 * entry a reload replaced meanwhile is left to that reload. Returns how many files are still without a key (changed
 * since, or changed too recently).
 */
export async function settleParseCache(cache: ParseCache): Promise<number> {
  let left = 0;
  for (const [f, entry] of [...cache]) {
    if (entry.stat !== undefined) continue;
    const listedAt = Date.now();
    let st: BigIntStats;
    let text: string;
    try {
      st = await stat(f, { bigint: true });
      if (Number(st.ctimeNs / 1_000_000n) >= listedAt - RACY_MS) { left++; continue; }
      text = await readFile(f, 'utf8');
    } catch {
      continue; // gone or unreadable: the next reload says so
    }
    if (cache.get(f) !== entry || entry.stat !== undefined) continue;
    if (sha256(text) === entry.hash) entry.stat = statKey(st);
    else left++;
  }
  return left;
}

/** Whether some file of the cache has no stat key yet (see settleParseCache). */
export function unsettled(cache: ParseCache): boolean {
  for (const e of cache.values()) if (e.stat === undefined) return true;
  return false;
}

/** How long a file must go unchanged before settleParseCache can give it its stat key (ms). */
export const SETTLE_AFTER_MS = RACY_MS;

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64');
}

/** The file's text if it still hashes to `expected`, else undefined (changed, removed, unreadable). */
function rereadIfUnchanged(file: string, expected: string): string | undefined {
  try {
    const text = readFileSync(file, 'utf8');
    return sha256(text) === expected ? text : undefined;
  } catch {
    return undefined;
  }
}
