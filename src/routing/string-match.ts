/**
 * Istio StringMatch compiled once: exact / prefix / regex (RE2 semantics: a full match of the whole value), plus the
 * Gateway API's segment-wise PathPrefix. Regexes are compiled at config time only; nothing here allocates per request.
 */
import type { StringMatch } from '../config/types.js';

export const enum MatchKind { Exact = 0, Prefix = 1, Regex = 2, Present = 3, PathPrefix = 4 }

export interface CompiledStringMatch {
  kind: MatchKind;
  value: string;
  re: RegExp | undefined;
  ignoreCase: boolean;
}

/** Anchor an RE2 pattern so that it must match the whole input, as Envoy's safe_regex does. */
export function fullMatchRegex(pattern: string, ignoreCase = false): RegExp {
  return new RegExp(`^(?:${pattern})$`, ignoreCase ? 'i' : '');
}

/** `{}` (no field) means "present" for headers and query parameters. */
export function compileStringMatch(m: StringMatch | undefined | null, ignoreCase = false): CompiledStringMatch {
  if (!m || (m.exact === undefined && m.prefix === undefined && m.regex === undefined)) {
    return { kind: MatchKind.Present, value: '', re: undefined, ignoreCase: false };
  }
  if (m.exact !== undefined) return { kind: MatchKind.Exact, value: ignoreCase ? m.exact.toLowerCase() : m.exact, re: undefined, ignoreCase };
  if (m.prefix !== undefined) return { kind: MatchKind.Prefix, value: ignoreCase ? m.prefix.toLowerCase() : m.prefix, re: undefined, ignoreCase };
  // ignoreUriCase applies to exact and prefix only (Istio), so regexes stay case-sensitive.
  return { kind: MatchKind.Regex, value: m.regex!, re: fullMatchRegex(m.regex!), ignoreCase: false };
}

/**
 * Gateway API `PathPrefix`: whole path segments, a trailing `/` in the prefix ignored (`/abc` matches `/abc`,
 * `/abc/` and `/abc/def`, not `/abcd`). `value` is the prefix without its trailing slash ('' for `/`).
 */
export function compilePathPrefix(prefix: string): CompiledStringMatch {
  let v = prefix;
  while (v.endsWith('/')) v = v.slice(0, -1);
  return { kind: MatchKind.PathPrefix, value: v, re: undefined, ignoreCase: false };
}

/** Whether `path` is `prefix` (no trailing slash, '' = root) or continues it with a new segment. */
export function pathHasPrefix(path: string, prefix: string): boolean {
  if (prefix === '') return true;
  return path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47);
}

export function testStringMatch(m: CompiledStringMatch, input: string): boolean {
  switch (m.kind) {
    case MatchKind.Exact:
      return (m.ignoreCase ? input.toLowerCase() : input) === m.value;
    case MatchKind.Prefix:
      return (m.ignoreCase ? input.toLowerCase() : input).startsWith(m.value);
    case MatchKind.Regex:
      return m.re!.test(input);
    case MatchKind.PathPrefix:
      return pathHasPrefix(input, m.value);
    default:
      return true;
  }
}

export function describeStringMatch(m: CompiledStringMatch): string {
  switch (m.kind) {
    case MatchKind.Exact: return `exact "${m.value}"${m.ignoreCase ? ' (ignoring case)' : ''}`;
    case MatchKind.Prefix: return `prefix "${m.value}"${m.ignoreCase ? ' (ignoring case)' : ''}`;
    case MatchKind.Regex: return `regex "${m.value}"`;
    case MatchKind.PathPrefix: return `path prefix "${m.value || '/'}" (whole segments)`;
    default: return 'present';
  }
}
