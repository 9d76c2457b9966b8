/**
 * Read config paths (files or directories, recursively) into Resources. Directories follow Kubernetes
 * ConfigMap mounts: entries whose names start with `..` (`..data`, `..2026_…`) are skipped, and the
 * visible names are symlinks through `..data`, so an atomic `..data` swap is read consistently.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
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
export type ParseCache = Map<string, { hash: string; resources: readonly Resource[]; errors: readonly ConfigError[] }>;

async function listFiles(path: string, out: string[], errors: ConfigError[], top: boolean): Promise<void> {
  let st;
  try {
    st = await stat(path);
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
      await listFiles(join(path, n), out, errors, false);
    }
  } else if (top || EXTENSIONS.some((e) => path.endsWith(e))) {
    out.push(path);
  }
}

export async function loadConfig(paths: readonly string[], defaultNamespace: string, cache?: ParseCache): Promise<LoadResult> {
  const files: string[] = [];
  const errors: ConfigError[] = [];
  for (const p of paths) await listFiles(p, files, errors, true);
  const resources: Resource[] = [];
  // The digest covers every file's name and the SHA-256 of its text; the per-file hash also lets a resource read its
  // file again for the line numbers of a later error instead of keeping the text (parse.ts, ParseOptions.reread).
  const hash = createHash('sha256');
  const parsed: string[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = await readFile(f, 'utf8');
    } catch (err) {
      errors.push({ file: f, line: 0, object: '', field: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      continue;
    }
    const fileHash = sha256(text);
    hash.update(`\0${f}\0`).update(fileHash);
    let r = cache?.get(f);
    if (r === undefined || r.hash !== fileHash) {
      const p = parseDocuments(text, f, defaultNamespace, { reread: () => rereadIfUnchanged(f, fileHash) });
      r = { hash: fileHash, resources: p.resources, errors: p.errors };
      cache?.set(f, r);
      parsed.push(f);
    }
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
