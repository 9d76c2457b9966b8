/** Shared flag handling: every `remora run` flag can also come from REMORA_<NAME> (e.g. REMORA_OUTBOUND_PORT). */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export function parseWithEnv(argv: string[], options: OptionSpec, env: NodeJS.ProcessEnv = process.env): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  const out = { ...values } as Record<string, string | boolean | string[] | undefined>;
  for (const [name, spec] of Object.entries(options)) {
    if (out[name] !== undefined) continue;
    const e = env[`REMORA_${name.toUpperCase().replace(/-/g, '_')}`];
    if (e === undefined || e === '') continue;
    if (spec.type === 'boolean') out[name] = e === '1' || e.toLowerCase() === 'true';
    else if (spec.multiple) out[name] = e.split(',').map((s) => s.trim()).filter(Boolean);
    else out[name] = e;
  }
  return { values: out, positionals };
}

export function portValue(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`--${name}: "${String(v)}" is not a port (0-65535; 0 = any free port)`);
  return n;
}

export function parseLabels(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!s) return out;
  for (const part of s.split(',')) {
    const p = part.trim();
    if (!p) continue;
    const i = p.indexOf('=');
    if (i <= 0) throw new Error(`--labels: "${p}" is not key=value`);
    out[p.slice(0, i).trim()] = p.slice(i + 1).trim();
  }
  return out;
}

export function stringList(v: unknown): string[] {
  if (v === undefined) return [];
  const arr = Array.isArray(v) ? v : [v];
  return arr.flatMap((x) => String(x).split(',')).map((s) => s.trim()).filter(Boolean);
}
