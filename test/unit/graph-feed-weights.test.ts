import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { loadEncoderModel } from '../../server/src/engine/model/encoder';
import { addEncoder } from '../../server/src/engine/model/encoder-graph';
import { GraphBuilder, type FeedWeights } from '../../server/src/engine/model/graph-builder';
import { createSession } from '../../server/src/engine/model/runtime';
import { mulberry32 } from '../../server/src/engine/random';
import { HF_REFERENCE, maxRelativeError } from '../helpers/reference';

describe('weights fed as graph inputs', () => {
  it('computes what the graph with the weights inside computes, from views of the same memory', async () => {
    const model = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
    const build = (feed?: FeedWeights) => {
      const b = new GraphBuilder({ feedWeights: feed });
      const taps = addEncoder(b, model.config, model.weights, b.input('audio', ['batch', 'samples']));
      b.output(taps.get('last_hidden_state')!, 'last');
      return b;
    };
    const inside = build();
    const fed = build('linear');
    const all = build('all');
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
    // With every weight fed, the graph holds none of them: only its structure and small constants.
    const weightBytes = [...model.weights.values()].reduce((n, t) => n + t.data.byteLength, 0);
    expect([...all.weightFeeds.values()].reduce((n, t) => n + t.data.byteLength, 0)).toBe(weightBytes);
    const allModel = all.encode();
    expect(allModel.byteLength).toBeLessThan(64 * 1024);

    const rand = mulberry32(5);
    const audio = new ort.Tensor(
      'float32',
      Float32Array.from({ length: 2 * 6000 }, (_, i) => 0.3 * Math.sin(i / 7) + 0.1 * (rand() - 0.5)),
      [2, 6000],
    );
    const a = await createSession(insideModel, { device: 'cpu' });
    const want = (await a.run({ audio })).last!.data as Float32Array;
    await a.release();
    for (const [builder, encoded] of [
      [fed, fedModel],
      [all, allModel],
    ] as const) {
      const b = await createSession(encoded, { device: 'cpu' });
      try {
        const feeds: Record<string, ort.Tensor> = { audio };
        for (const [name, t] of builder.weightFeeds) feeds[name] = new ort.Tensor('float32', t.data, [...t.shape]);
        const got = (await b.run(feeds)).last!.data as Float32Array;
        expect(got.length).toBe(want.length);
        expect(maxRelativeError(got, want)).toBeLessThan(1e-5);
      } finally {
        await b.release();
      }
    }
  });
});
