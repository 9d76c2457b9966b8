/**
 * Tracing switched off, without loading the tracing code: `remora run` without `--trace-endpoint` never imports
 * ./tracing.ts, the OTLP encoder or the export queue (the otel-sdk chunk), and the app's trace headers pass through
 * untouched.
 */
import type { ProxyTracing } from './tracing-api.js';

export const TRACING_OFF: ProxyTracing = Object.freeze({
  enabled: false,
  startServer: () => undefined,
  spansDropped: () => 0,
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
});
