/**
 * Remora's own metrics (`remora_*`): counters and gauges by name and labels, set by their owner or read at scrape
 * time from a function, reset by /reset_counters and rendered as Prometheus families in registration order.
 */
import { escapeHelp, formatValue, renderLabels, safeRead, type Labels } from './exposition.js';

export interface Counter {
  inc(n?: number): void;
  readonly value: number;
}
export interface Gauge {
  set(v: number): void;
  inc(n?: number): void;
  dec(n?: number): void;
  readonly value: number;
}

export type OwnType = 'counter' | 'gauge';

interface OwnFamily {
  name: string;
  type: OwnType;
  help: string;
  series: Map<string, { labels: string; value: number; fn?: () => number }>;
}

class SimpleMetric implements Counter, Gauge {
  constructor(private readonly cell: { value: number }) {}
  get value(): number {
    return this.cell.value;
  }
  inc(n = 1): void {
    this.cell.value += n;
  }
  dec(n = 1): void {
    this.cell.value -= n;
  }
  set(v: number): void {
    this.cell.value = v;
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** The families of Remora's own metrics, by name (a Map: rendered in the order they were first registered). */
export class OwnMetrics {
  private readonly own = new Map<string, OwnFamily>();

  /** A counter of Remora's own (name must end in `_total`). Same name + labels returns the same cell. */
  counter(name: string, help: string, labels?: Labels): Counter {
    if (!name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
    return new SimpleMetric(this.cell(name, 'counter', help, labels));
  }

  gauge(name: string, help: string, labels?: Labels): Gauge {
    return new SimpleMetric(this.cell(name, 'gauge', help, labels));
  }

  /** A metric whose value is read at scrape time (e.g. `remora_tracing_spans_dropped_total` from the tracer). */
  observe(name: string, type: OwnType, help: string, fn: () => number, labels?: Labels): void {
    if (type === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
    const cell = this.cell(name, type, help, labels);
    cell.fn = fn;
  }

  /** `remora_config_info{version,hash} 1`: the active configuration (one series; replaces the previous one). */
  setConfigInfo(version: string, hash: string): void {
    const fam = this.family('remora_config_info', 'gauge', 'The active configuration version and content hash (value is always 1).');
    fam.series.clear();
    this.cell('remora_config_info', 'gauge', '', { version, hash }).value = 1;
  }

  private family(name: string, type: OwnType, help: string): OwnFamily {
    let fam = this.own.get(name);
    if (fam === undefined) {
      if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
      fam = { name, type, help, series: new Map() };
      this.own.set(name, fam);
    } else if (fam.type !== type) {
      throw new Error(`metric ${name} already registered as a ${fam.type}`);
    }
    return fam;
  }

  private cell(name: string, type: OwnType, help: string, labels?: Labels): { labels: string; value: number; fn?: () => number } {
    const fam = this.family(name, type, help);
    const rendered = labels ? renderLabels(labels) : '';
    let c = fam.series.get(rendered);
    if (c === undefined) {
      c = { labels: rendered, value: 0 };
      fam.series.set(rendered, c);
    }
    return c;
  }

  /** Zero every counter set by its owner (gauges and scrape-time observers keep their values, as in Envoy). */
  resetCounters(): void {
    for (const fam of this.own.values()) {
      if (fam.type !== 'counter') continue;
      for (const c of fam.series.values()) if (!c.fn) c.value = 0;
    }
  }

  render(out: string[]): void {
    for (const fam of this.own.values()) {
      if (fam.series.size === 0) continue;
      out.push(`# HELP ${fam.name} ${escapeHelp(fam.help)}\n# TYPE ${fam.name} ${fam.type}\n`);
      for (const c of fam.series.values()) {
        const v = c.fn ? safeRead(c.fn) : c.value;
        out.push(c.labels ? `${fam.name}{${c.labels}} ${formatValue(v)}\n` : `${fam.name} ${formatValue(v)}\n`);
      }
    }
  }
}
