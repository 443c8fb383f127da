import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ProbeSet } from '../../server/src/engine/io/probe';
import { loadEncoderModel } from '../../server/src/engine/model/encoder';
import type { TapName } from '../../server/src/engine/model/taps';
import { collectStatistics } from '../../server/src/engine/pipeline/statistics';
import { HF_REFERENCE } from '../helpers/reference';

describe('statistics step on activations that overflow', () => {
  it('stops with a located non-finite error naming the tap', async () => {
    const anchor = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
    // The other model's FFN input weights scaled far beyond float32's range after one layer: its FFN activations overflow.
    const weights = new Map(anchor.weights);
    const name = 'encoder.layers.0.feed_forward.intermediate_dense.weight';
    const w = weights.get(name)!;
    weights.set(name, { shape: w.shape, data: w.data.map((v) => v * 1e38) });
    const other = { config: anchor.config, weights };
    const samples = 6000;
    const segments = Array.from({ length: 3 }, (_, i) => ({
      source: 0,
      file: `s${i}`,
      offsetSamples: 0,
      offsetSeconds: 0,
      paddedSamples: 0,
      samples: Float32Array.from({ length: samples }, (_, t) => 0.3 * Math.sin((t * (i + 1)) / 9)),
    }));
    const probe = {
      sampleRate: anchor.config.sampleRate,
      segmentSeconds: samples / anchor.config.sampleRate,
      segmentSamples: samples,
      segments,
    } as unknown as ProbeSet;
    const taps: TapName[] = ['conv.1', 'layer.0.ffn'];
    await expect(collectStatistics(anchor, other, probe, taps, { device: 'cpu', batchSize: 2 })).rejects.toMatchObject({
      code: 'non-finite',
      message: expect.stringMatching(/activations at tap layer\.0\.ffn became (NaN|-?Infinity) on the probe audio/),
    });
  });
});
