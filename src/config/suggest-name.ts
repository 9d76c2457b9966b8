/**
 * Near-miss suggestions for config errors: the name a user most likely meant (`retry_on` → `retryOn`, `sepc` →
 * `spec`), ignoring case and `-`/`_`, else by a small edit distance. Pure string work.
 */

function normalize(s: string): string {
  return s.toLowerCase().replace(/[-_]/g, '');
}

/** Optimal-string-alignment distance: edits plus adjacent transpositions (`sepc` → `spec` is 1). */
function editDistance(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) d.push([i]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate the user most likely meant: same name ignoring case and `-`/`_` (`retryon`, `retry_on` →
 * `retryOn`), else the closest by edit distance when it is small relative to the name. Undefined if none is close.
 */
export function suggestName(name: string, candidates: readonly string[]): string | undefined {
  const n = normalize(name);
  const exact = candidates.find((c) => normalize(c) === n);
  if (exact !== undefined) return exact;
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = editDistance(n, normalize(c));
    if (d < bestDist) {
      bestDist = d;
      best = c;
    }
  }
  const limit = n.length <= 4 ? 1 : n.length <= 8 ? 2 : 3;
  return bestDist <= limit ? best : undefined;
}
