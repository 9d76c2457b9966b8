/*
 * dropStartupPages(): after start-up, take out of this process's resident set the pages of its executable and
 * libraries that nothing touches any more — the ICU data, V8's start-up snapshot, Node's built-in JavaScript sources
 * and the code that ran only while loading. madvise(MADV_DONTNEED) on a clean, private, read-only file mapping only
 * unmaps the pages from this process: they stay in the page cache (shared with every other process of the same
 * binary), and a page touched again is mapped again on its first access (a minor fault, no I/O while it is cached).
 * So the resident set becomes what serving uses (docs/performance.md, "Memory per service, and a sidecar that stays
 * small": the node binary's file pages 39 → 24 MB at peak).
 *
 * Only mappings that are backed by a file (inode != 0), private, not writable and hold no anonymous (copied-on-
 * write) or swapped page: a RELRO segment, written by the dynamic linker before it became read-only, holds
 * anonymous pages and is left alone, as is anything writable, shared or anonymous (heap, stacks, V8's spaces).
 *
 *   dropStartupPages(): { mappings: number, kB: number }   the mappings advised and their size (not what was resident)
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define MAX_RANGES 512

napi_value drop_startup_pages(napi_env env, napi_callback_info info) {
  (void)info;
  FILE *f = fopen("/proc/self/smaps", "re");
  if (f == NULL) {
    napi_throw_error(env, "ERR_REMORA_RESIDENT", "cannot read /proc/self/smaps");
    return NULL;
  }
  static unsigned long ranges[MAX_RANGES][2];
  int n = 0;
  char line[4096];
  unsigned long lo = 0, hi = 0;
  int candidate = 0;   /* the current mapping is file-backed, private and not writable */
  int dirty = 0;       /* ... and holds anonymous or swapped pages */
  int seen = 0;        /* Anonymous: and Swap: lines seen for the current mapping */
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long a, b, off, inode;
    char perms[8], dev[16];
    /* A mapping's header line: "lo-hi perms offset dev inode [path]"; a field line ("Anonymous:  0 kB") never
     * parses as one (its name is not followed by '-'). */
    if (sscanf(line, "%lx-%lx %7s %lx %15s %lu", &a, &b, perms, &off, dev, &inode) == 6) {
      if (candidate && !dirty && seen == 2 && n < MAX_RANGES) { ranges[n][0] = lo; ranges[n][1] = hi; n++; }
      lo = a; hi = b;
      candidate = inode != 0 && perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p';
      dirty = 0; seen = 0;
      continue;
    }
    long kb;
    if (sscanf(line, "Anonymous: %ld kB", &kb) == 1 || sscanf(line, "Swap: %ld kB", &kb) == 1) {
      seen++;
      if (kb != 0) dirty = 1;
    }
  }
  if (candidate && !dirty && seen == 2 && n < MAX_RANGES) { ranges[n][0] = lo; ranges[n][1] = hi; n++; }
  fclose(f);
  double kbTotal = 0;
  int advised = 0;
  for (int i = 0; i < n; i++) {
    if (madvise((void *)ranges[i][0], ranges[i][1] - ranges[i][0], MADV_DONTNEED) == 0) {
      advised++;
      kbTotal += (double)(ranges[i][1] - ranges[i][0]) / 1024.0;
    }
  }
  napi_value obj, m, k;
  if (napi_create_object(env, &obj) != napi_ok || napi_create_int32(env, advised, &m) != napi_ok ||
      napi_create_double(env, kbTotal, &k) != napi_ok || napi_set_named_property(env, obj, "mappings", m) != napi_ok ||
      napi_set_named_property(env, obj, "kB", k) != napi_ok) {
    napi_throw_error(env, "ERR_REMORA_NATIVE", "dropStartupPages: cannot build the result");
    return NULL;
  }
  return obj;
}
