/**
 * Istio StringMatch compiled once: exact / prefix / regex (RE2 semantics: a full match of the whole value).
 * Regexes are compiled at config time only; nothing here allocates per request.
 */
import type { StringMatch } from '../config/types.js';

export const enum MatchKind { Exact = 0, Prefix = 1, Regex = 2, Present = 3 }

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

export function testStringMatch(m: CompiledStringMatch, input: string): boolean {
  switch (m.kind) {
    case MatchKind.Exact:
      return (m.ignoreCase ? input.toLowerCase() : input) === m.value;
    case MatchKind.Prefix:
      return (m.ignoreCase ? input.toLowerCase() : input).startsWith(m.value);
    case MatchKind.Regex:
      return m.re!.test(input);
    default:
      return true;
  }
}

export function describeStringMatch(m: CompiledStringMatch): string {
  switch (m.kind) {
    case MatchKind.Exact: return `exact "${m.value}"${m.ignoreCase ? ' (ignoring case)' : ''}`;
    case MatchKind.Prefix: return `prefix "${m.value}"${m.ignoreCase ? ' (ignoring case)' : ''}`;
    case MatchKind.Regex: return `regex "${m.value}"`;
    default: return 'present';
  }
}
