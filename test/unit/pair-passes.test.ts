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
): Promise<{ stats: Map<string, PairStats>; passes: number; entries: number }> {
  const anchor = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
  const other = { config: anchor.config, weights: randomWeights(anchor.config, 3) };
  const pair = await PairStatisticsSession.create(anchor, other, taps, { device: 'cpu', passes: plan });
  try {
    const stats = new Map<string, PairStats>();
    const moments = await pair.run(audio, batch);
    for (const m of moments) {
      if (!stats.has(m.tap)) stats.set(m.tap, createPairStats(m.dimA, m.dimB));
      addMoments(stats.get(m.tap)!, m);
    }
    return { stats, passes: pair.passCount, entries: moments.length };
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
