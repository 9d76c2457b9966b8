/**
 * The export queue over encoded spans: batches never exceed the batch size, spans leave in order, a full queue drops
 * and counts, and chunks reused across exports never mix one batch's spans into another.
 */
import { describe, expect, it } from 'vitest';
import { SpanQueue, type SendResult } from '../../../src/telemetry/otel-sdk.js';
import { ProtoWriter, RequestFrame, SPAN_KIND_SERVER, encodeSpan } from '../../../src/telemetry/otlp-encode.js';
import { decodeTraceRequest } from '../../integration/telemetry/otlp-decode.js';

function span(w: ProtoWriter, i: number, pad = 0): ProtoWriter {
  w.reset();
  encodeSpan(w, {
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: (i + 1).toString(16).padStart(16, '0'),
    name: `s${i}`,
    kind: SPAN_KIND_SERVER,
    startNanos: 1n,
    endNanos: 2n,
    attributes: { i, pad: 'p'.repeat(pad) },
    statusCode: 0,
    flags: 0x101,
  });
  return w;
}

describe('SpanQueue', () => {
  it('exports every span once, in order, in batches of at most maxExportBatchSize', async () => {
    const names: string[] = [];
    const sizes: number[] = [];
    const send = async (body: Buffer): Promise<SendResult> => {
      await new Promise((r) => setTimeout(r, 1));
      const spans = decodeTraceRequest(body);
      sizes.push(spans.length);
      names.push(...spans.map((s) => s.name));
      return { status: 'success' };
    };
    const q = new SpanQueue(new RequestFrame({ 'service.name': 'x' }, { name: 'remora' }), send, {
      maxQueueSize: 2048,
      maxExportBatchSize: 100,
      scheduledDelayMillis: 5,
      exportTimeoutMillis: 1000,
    });
    const w = new ProtoWriter();
    // Spans of varying size (some larger than a 16 KB chunk), added in bursts while exports run.
    for (let i = 0; i < 1500; i++) {
      q.add(span(w, i, i % 97 === 0 ? 20_000 : i % 7 === 0 ? 2_000 : 0));
      if (i % 250 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    await q.forceFlush();
    expect(names).toEqual(Array.from({ length: 1500 }, (_, i) => `s${i}`));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(100);
    expect(q.queueDropped + q.exportFailed).toBe(0);
  });

  it('a full queue drops and counts; failed exports count their spans', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let calls = 0;
    const send = async (): Promise<SendResult> => {
      calls++;
      await gate;
      return { status: 'failure', error: new Error('400') };
    };
    const q = new SpanQueue(new RequestFrame({ 'service.name': 'x' }, { name: 'remora' }), send, {
      maxQueueSize: 50,
      maxExportBatchSize: 20,
      scheduledDelayMillis: 5,
      exportTimeoutMillis: 1000,
    });
    const w = new ProtoWriter();
    for (let i = 0; i < 200; i++) q.add(span(w, i));
    // 20 in flight (the first full batch), 50 queued, 130 dropped.
    expect(calls).toBe(1);
    expect(q.queueDropped).toBe(130);
    release();
    await q.forceFlush();
    expect(q.exportFailed).toBe(70);
  });
});
