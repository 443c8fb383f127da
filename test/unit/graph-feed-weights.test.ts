import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { loadEncoderModel } from '../../server/src/engine/model/encoder';
import { addEncoder } from '../../server/src/engine/model/encoder-graph';
import { GraphBuilder } from '../../server/src/engine/model/graph-builder';
import { createSession } from '../../server/src/engine/model/runtime';
import { mulberry32 } from '../../server/src/engine/random';
import { HF_REFERENCE, maxRelativeError } from '../helpers/reference';

describe('Linear weights fed as graph inputs', () => {
  it('computes what the graph with the weights inside computes, from views of the same memory', async () => {
    const model = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
    const build = (feedLinearWeights: boolean) => {
      const b = new GraphBuilder({ feedLinearWeights });
      const taps = addEncoder(b, model.config, model.weights, b.input('audio', ['batch', 'samples']));
      b.output(taps.get('last_hidden_state')!, 'last');
      return b;
    };
    const inside = build(false);
    const fed = build(true);
    expect(inside.weightFeeds.size).toBe(0);
    // Every Linear weight (4 attention + 2 FFN per layer, and the feature projection) is an input over the model's own memory.
    const { layers } = model.config;
    expect(fed.weightFeeds.size).toBe(6 * layers + 1);
    let linearBytes = 0;
    for (const t of fed.weightFeeds.values()) {
      expect([...model.weights.values()].some((w) => w.data === t.data)).toBe(true);
      linearBytes += t.data.byteLength;
    }
    const insideModel = inside.encode();
    const fedModel = fed.encode();
    expect(fedModel.byteLength).toBeLessThan(insideModel.byteLength - linearBytes + 64 * 1024);

    const rand = mulberry32(5);
    const audio = new ort.Tensor(
      'float32',
      Float32Array.from({ length: 2 * 6000 }, (_, i) => 0.3 * Math.sin(i / 7) + 0.1 * (rand() - 0.5)),
      [2, 6000],
    );
    const a = await createSession(insideModel, { device: 'cpu' });
    const b = await createSession(fedModel, { device: 'cpu' });
    try {
      const feeds: Record<string, ort.Tensor> = { audio };
      for (const [name, t] of fed.weightFeeds) feeds[name] = new ort.Tensor('float32', t.data, [...t.shape]);
      const want = (await a.run({ audio })).last!.data as Float32Array;
      const got = (await b.run(feeds)).last!.data as Float32Array;
      expect(got.length).toBe(want.length);
      expect(maxRelativeError(got, want)).toBeLessThan(1e-5);
    } finally {
      await a.release();
      await b.release();
    }
  });
});
