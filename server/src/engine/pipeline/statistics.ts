/**
 * The statistics stage: the probe set through both encoders, batch by batch, in the pair graph; per-tap centred
 * moments combined in float64. Cancellation is checked between batches (onnxruntime cannot abort a running batch).
 */
import { addMoments, createPairStats, type PairStats } from '../align/stats';
import { EngineError } from '../errors';
import { iterateBatches, type ProbeSet } from '../io/probe';
import type { EncoderModel } from '../model/encoder';
import { PairStatisticsSession } from '../model/pair-graph';
import type { SessionOptions } from '../model/runtime';
import type { TapName } from '../model/taps';
import type { CancelToken, ProgressSink } from '../progress';

export interface StatisticsOptions extends SessionOptions {
  batchSize: number;
  onEvent?: ProgressSink;
  cancel?: CancelToken;
}

export async function collectStatistics(
  anchor: Pick<EncoderModel, 'config' | 'weights'>,
  other: Pick<EncoderModel, 'config' | 'weights'>,
  probe: ProbeSet,
  taps: readonly TapName[],
  opts: StatisticsOptions,
): Promise<{ stats: Map<TapName, PairStats>; backend: string }> {
  const stats = new Map<TapName, PairStats>();
  if (taps.length === 0) return { stats, backend: 'none' };
  const session = await PairStatisticsSession.create(anchor, other, taps, opts);
  try {
    const total = Math.ceil(probe.segments.length / opts.batchSize);
    let done = 0;
    opts.onEvent?.({ type: 'progress', stage: 'statistics', done, total, message: `${taps.length} taps on ${session.backend}` });
    for (const batch of iterateBatches(probe, opts.batchSize)) {
      if (opts.cancel?.cancelled) throw new EngineError('cancelled', 'cancelled while collecting statistics');
      const moments = await session.run(batch.data, batch.dims[0]);
      for (const m of moments) {
        assertFiniteMoments(m.tap, m.cross, m.meanA, m.meanB);
        let s = stats.get(m.tap);
        if (!s) stats.set(m.tap, (s = createPairStats(m.dimA, m.dimB)));
        addMoments(s, m);
      }
      done++;
      opts.onEvent?.({ type: 'progress', stage: 'statistics', done, total, message: `${Math.min(done * opts.batchSize, probe.segments.length)}/${probe.segments.length} segments` });
    }
    return { stats, backend: session.backend };
  } finally {
    await session.release();
  }
}

function assertFiniteMoments(tap: string, ...arrays: Float32Array[]): void {
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      if (!Number.isFinite(a[i]!)) {
        throw new EngineError('non-finite', `activations at tap ${tap} became ${a[i]} on the probe audio (overflow in one of the models?)`);
      }
    }
  }
}
