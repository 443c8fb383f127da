import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addMoments, createPairStats, type PairStats } from '../../server/src/engine/align/stats';
import { loadEncoderModel } from '../../server/src/engine/model/encoder';
import { layerPasses, PairStatisticsSession, tapLayer, type PassPlan } from '../../server/src/engine/model/pair-graph';
import { randomWeights } from '../../server/src/engine/model/random';
import type { TapName } from '../../server/src/engine/model/taps';
import { mulberry32 } from '../../server/src/engine/random';
import { HF_REFERENCE, maxRelativeError } from '../helpers/reference';

async function statsWith(
  plan: Partial<PassPlan>,
  taps: TapName[],
  audio: Float32Array,
  batch: number,
  model = 'hubert-postln-a',
): Promise<{ stats: Map<string, PairStats>; passes: number; sessions: number; entries: number }> {
  const anchor = await loadEncoderModel(path.join(HF_REFERENCE, model));
  const other = { config: anchor.config, weights: randomWeights(anchor.config, 3) };
  const pair = await PairStatisticsSession.create(anchor, other, taps, { device: 'cpu', passes: plan });
  try {
    const stats = new Map<string, PairStats>();
    const moments = await pair.run(audio, batch);
    for (const m of moments) {
      if (!stats.has(m.tap)) stats.set(m.tap, createPairStats(m.dimA, m.dimB));
      addMoments(stats.get(m.tap)!, m);
    }
    return { stats, passes: pair.passCount, sessions: pair.sessionCount, entries: moments.length };
  } finally {
    await pair.release();
  }
}

describe('pair statistics in passes', () => {
  it('assigns taps to the front end or their layer and splits layers into passes', () => {
    expect(['conv.0', 'proj', 'hidden.0'].map((t) => tapLayer(t as TapName))).toEqual([-1, -1, -1]);
    expect(['layer.2.ffn', 'layer.0.attn_out', 'hidden.3'].map((t) => tapLayer(t as TapName))).toEqual([2, 0, 2]);
    expect(layerPasses(['conv.1', 'layer.4.ffn', 'layer.0.attn'] as TapName[], 2)).toEqual([
      [0, 2],
      [2, 4],
      [4, 5],
    ]);
    expect(layerPasses(['conv.1', 'proj'] as TapName[], 2)).toEqual([]);
    expect(layerPasses(['layer.1.out'] as TapName[], 12)).toEqual([[0, 2]]);
  });

  it('gives the same statistics with one pass, a pass per layer, and the front end one segment at a time', async () => {
    const taps: TapName[] = ['conv.0', 'conv.3', 'proj', 'layer.0.attn', 'layer.0.ffn', 'layer.1.ffn', 'layer.1.out', 'hidden.2'];
    const rand = mulberry32(11);
    const batch = 3;
    const audio = Float32Array.from({ length: batch * 5000 }, (_, i) => 0.3 * Math.sin(i / 9) + 0.1 * (rand() - 0.5));
    const whole = await statsWith({ frontBatch: 0, layersPerPass: 100 }, taps, audio, batch);
    const split = await statsWith({ frontBatch: 1, layersPerPass: 1 }, taps, audio, batch);
    expect(whole.passes).toBe(2);
    expect(split.passes).toBe(3); // front end + layer 0 + layer 1 (hidden.2 is layer 1's output)
    expect(split.sessions).toBe(3); // the two layers' taps differ, so their graphs do
    // One entry per tap over the whole batch, also when the front end runs one segment at a time (combined in float64).
    expect(whole.entries).toBe(taps.length);
    expect(split.entries).toBe(taps.length);
    for (const tap of taps) {
      const a = whole.stats.get(tap)!;
      const b = split.stats.get(tap)!;
      expect(b.n, tap).toBe(a.n);
      expect(maxRelativeError(b.meanA, a.meanA), `${tap} mean`).toBeLessThan(1e-5);
      expect(maxRelativeError(b.m2B, a.m2B), `${tap} m2`).toBeLessThan(1e-4);
      expect(maxRelativeError(b.cross, a.cross), `${tap} cross`).toBeLessThan(1e-4);
    }
  });

  it('runs layers with the same taps in one session, fed each layer its weights, as one pass over all layers does', async () => {
    // The taps tapsFor gives (every layer alike), on a post-LN and a pre-LN model. Layer passes are built as layer 0
    // fed layer l's weights: a tap from the wrong layer, or weights of the wrong layer, would change every statistic.
    for (const model of ['hubert-postln-a', 'hubert-preln']) {
      const anchor = await loadEncoderModel(path.join(HF_REFERENCE, model));
      const layers = Array.from({ length: anchor.config.layers }, (_, l) => l);
      const taps: TapName[] = ['conv.0', ...layers.flatMap((l): TapName[] => [`layer.${l}.attn`, `layer.${l}.ffn`, `hidden.${l + 1}`])];
      const rand = mulberry32(13);
      const batch = 2;
      const audio = Float32Array.from({ length: batch * 4500 }, (_, i) => 0.3 * Math.sin(i / 8) + 0.1 * (rand() - 0.5));
      const whole = await statsWith({ frontBatch: 0, layersPerPass: 100 }, taps, audio, batch, model);
      const split = await statsWith({ frontBatch: 1, layersPerPass: 1 }, taps, audio, batch, model);
      expect(split.passes, model).toBe(1 + layers.length);
      expect(split.sessions, model).toBe(2); // the front end's and one for every layer pass
      for (const tap of taps) {
        const a = whole.stats.get(tap)!;
        const b = split.stats.get(tap)!;
        expect(maxRelativeError(b.meanA, a.meanA), `${model} ${tap} mean`).toBeLessThan(1e-5);
        expect(maxRelativeError(b.m2B, a.m2B), `${model} ${tap} m2`).toBeLessThan(1e-4);
        expect(maxRelativeError(b.cross, a.cross), `${model} ${tap} cross`).toBeLessThan(1e-4);
      }
    }
  });

  it('runs batch after batch, of different sizes, on one session as a fresh session runs each', async () => {
    // On the CPU the front end is rebuilt for every batch, the large outputs go through buffers shared by passes and
    // kept from batch to batch, and the residual stream through two buffers the layer passes alternate (three passes:
    // the third writes the first's while it reads the second's).
    const taps: TapName[] = ['conv.0', 'proj', 'layer.0.attn', 'layer.0.ffn', 'layer.1.out', 'layer.2.ffn'];
    const anchor = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
    const other = { config: anchor.config, weights: randomWeights(anchor.config, 3) };
    const rand = mulberry32(12);
    const clip = (rows: number) =>
      Float32Array.from({ length: rows * 4000 }, (_, i) => 0.3 * Math.sin(i / (5 + rows)) + 0.1 * (rand() - 0.5));
    const batches = [
      { audio: clip(2), rows: 2 },
      { audio: clip(3), rows: 3 },
      { audio: clip(2), rows: 2 },
    ];
    const plan = { frontBatch: 1, layersPerPass: 1 };
    const shared = await PairStatisticsSession.create(anchor, other, taps, { device: 'cpu', passes: plan });
    try {
      for (const { audio, rows } of batches) {
        const got = await shared.run(audio, rows);
        const fresh = await PairStatisticsSession.create(anchor, other, taps, { device: 'cpu', passes: plan });
        const want = await fresh.run(audio, rows);
        await fresh.release();
        expect(got.map((m) => m.tap)).toEqual(taps);
        got.forEach((m, i) => {
          expect(m.n, m.tap).toBe(want[i]!.n);
          expect(maxRelativeError(m.meanA, want[i]!.meanA), `${m.tap} mean`).toBeLessThan(1e-6);
          expect(maxRelativeError(m.m2B, want[i]!.m2B), `${m.tap} m2`).toBeLessThan(1e-6);
          expect(maxRelativeError(m.cross, want[i]!.cross), `${m.tap} cross`).toBeLessThan(1e-6);
        });
      }
    } finally {
      await shared.release();
    }
  });
});
