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

async function listFiles(path: string, out: string[], errors: ConfigError[], top: boolean, stats: Map<string, BigIntStats>): Promise<void> {
  let st;
  try {
    st = await stat(path, { bigint: true });
  } catch (err) {
    errors.push({ file: path, line: 0, object: '', field: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return;
  }
  if (st.isDirectory()) {
    let names: string[];
    try {
      names = await readdir(path);
    } catch (err) {
      errors.push({ file: path, line: 0, object: '', field: '', message: `cannot list: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      return;
    }
    names.sort();
    for (const n of names) {
      if (n.startsWith('.')) continue; // ConfigMap internals (..data, ..2026_…) and hidden files
      await listFiles(join(path, n), out, errors, false, stats);
    }
  } else if (top || EXTENSIONS.some((e) => path.endsWith(e))) {
    out.push(path);
    stats.set(path, st);
  }
}

export async function loadConfig(paths: readonly string[], defaultNamespace: string, cache?: ParseCache): Promise<LoadResult> {
  const files: string[] = [];
  const errors: ConfigError[] = [];
  const stats = new Map<string, BigIntStats>();
  // Earlier than every stat below: a file whose ctime is RACY_MS older than this was unchanged when it was read.
  const listedAt = Date.now();
  for (const p of paths) await listFiles(p, files, errors, true, stats);
  const resources: Resource[] = [];
  // The digest covers every file's name and the SHA-256 of its text; the per-file hash also lets a resource read its
  // file again for the line numbers of a later error instead of keeping the text (parse.ts, ParseOptions.reread).
  const hash = createHash('sha256');
  const parsed: string[] = [];
  for (const f of files) {
    const st = stats.get(f);
    const cached = cache?.get(f);
    if (cached?.stat !== undefined && st !== undefined && cached.stat === statKey(st)) {
      hash.update(`\0${f}\0`).update(cached.hash);
      for (const x of cached.resources) resources.push(x);
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
      const p = parseDocuments(text, f, defaultNamespace, { reread: () => rereadIfUnchanged(f, fileHash) });
      r = { hash: fileHash, resources: p.resources, errors: p.errors };
      cache?.set(f, r);
      parsed.push(f);
    }
    // The stat taken before this read describes this text if nothing changed the file since; trusted next time only
    // when its last change was long enough before (a later change then has a later ctime).
    r.stat = st !== undefined && Number(st.ctimeNs / 1_000_000n) < listedAt - RACY_MS ? statKey(st) : undefined;
    for (const x of r.resources) resources.push(x);
    for (const x of r.errors) errors.push(x);
  }
  if (cache !== undefined && cache.size > files.length) {
    const present = new Set(files);
    for (const f of cache.keys()) if (!present.has(f)) cache.delete(f);
  }
  return { resources, errors, files, digest: hash.digest('hex'), parsed };
}

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
