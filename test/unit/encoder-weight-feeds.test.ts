import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  buildEncoderOnnx,
  EncoderSession,
  encoderGraphBuilder,
  hiddenStateOutputs,
  type EncoderOutput,
} from '../../server/src/engine/model/encoder';
import { addEncoder } from '../../server/src/engine/model/encoder-graph';
import { randomWeights } from '../../server/src/engine/model/random';
import { ModelProto } from '../../server/src/engine/model/onnx-proto';
import { createSession } from '../../server/src/engine/model/runtime';
import { maxRelativeError } from '../helpers/reference';
import { tinyHubertConfig } from '../helpers/tiny-model';

const cfg = tinyHubertConfig();
const weights = randomWeights(cfg, 3);
const audio = Float32Array.from({ length: 2 * 4000 }, (_, i) => 0.3 * Math.sin(i * 0.031) + 0.05 * Math.cos(i * 0.17));

/** The initializers' shapes of an encoded model. */
function initializerShapes(model: Uint8Array): number[][] {
  const m = ModelProto.toObject(ModelProto.decode(model), { longs: Number }) as { graph: { initializer: { dims?: number[] }[] } };
  return m.graph.initializer.map((t) => t.dims ?? []);
}

describe('encoder sessions feed their Linear weights on the CPU backend', () => {
  it('the session graph holds every weight but the Linear ones; the Linear ones are its inputs', async () => {
    const b = await encoderGraphBuilder({ device: 'cpu' });
    addEncoder(b, cfg, weights, b.input('audio', ['batch', 'samples']));
    // q, k, v, out, FFN in, FFN out per layer, and the feature projection.
    expect([...b.weightFeeds.keys()]).toHaveLength(6 * cfg.layers + 1);
    // The model's own arrays, not copies: the session's runs read them in place.
    const own = new Set(weights.values());
    for (const t of b.weightFeeds.values()) expect(own.has(t)).toBe(true);
    // Linear weights are the encoder's only 2-D tensors: the self-contained model has them, the fed one none.
    const inline = initializerShapes(buildEncoderOnnx({ config: cfg, weights }, ['last_hidden_state']));
    expect(inline.filter((d) => d.length === 2)).toHaveLength(6 * cfg.layers + 1);
    expect(initializerShapes(b.encode()).filter((d) => d.length === 2)).toEqual([]);
  });

  it('computes what the self-contained model computes', async () => {
    const outputs: EncoderOutput[] = hiddenStateOutputs(cfg);
    const fed = await EncoderSession.create({ config: cfg, weights }, outputs, { device: 'cpu', threads: 1 });
    const inline = await createSession(buildEncoderOnnx({ config: cfg, weights }, outputs), { device: 'cpu', threads: 1 });
    try {
      const a = await fed.run(audio, 2);
      const b = await inline.run({ audio: new ort.Tensor('float32', audio, [2, audio.length / 2]) }, outputs);
      for (const name of outputs) {
        const expected = b[name]!.data as Float32Array;
        expect(a.get(name)!.dims).toEqual(b[name]!.dims);
        expect(maxRelativeError(a.get(name)!.data as Float32Array, expected), name).toBeLessThan(1e-5);
      }
    } finally {
      await fed.release();
      await inline.release();
    }
  });
});
