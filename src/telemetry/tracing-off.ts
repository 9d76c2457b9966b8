/**
 * Tracing switched off, without loading OpenTelemetry: `remora run` without `--trace-endpoint` never imports the
 * OTel packages (≈ 200 ms of start-up and ≈ 13 MB RSS), and the app's trace headers pass through untouched.
 */
import type { ProxyTracing } from './tracing-api.js';

export const TRACING_OFF: ProxyTracing = Object.freeze({
  enabled: false,
  startServer: () => undefined,
  spansDropped: () => 0,
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
});
