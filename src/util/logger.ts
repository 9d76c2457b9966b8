/** Control-plane log: one JSON object per line on stderr, with a runtime-adjustable level (/logging). */

export type Level = 'debug' | 'info' | 'warn' | 'error' | 'off';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40, off: 100 };

export class Logger {
  constructor(public level: Level = 'info', private readonly out: (line: string) => void = (l) => process.stderr.write(l)) {}

  enabled(level: Level): boolean {
    return ORDER[level] >= ORDER[this.level];
  }

  log(level: Exclude<Level, 'off'>, msg: string, fields?: Record<string, unknown>): void {
    if (!this.enabled(level)) return;
    const rec: Record<string, unknown> = { time: new Date().toISOString(), level, msg };
    if (fields) Object.assign(rec, fields);
    let line: string;
    try {
      line = JSON.stringify(rec);
    } catch {
      line = JSON.stringify({ time: rec.time, level, msg });
    }
    this.out(`${line}\n`);
  }
}

export function isLevel(s: string): s is Level {
  return s in ORDER;
}
