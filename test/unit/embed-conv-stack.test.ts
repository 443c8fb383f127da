/**
 * The CPU conv stack (model/conv-stack-cpu.ts) that evaluation embeddings run on: the same values as the Conv path
 * (1e-5 of the tensor's scale) for every block layout, as transformers' (the hf-reference fixtures, parity's 1e-4),
 * and block 0's folded GroupNorm against a float64 reference where the variance is a small difference of large terms.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EncoderConfig } from '../../server/src/engine/io/hfconfig';
import { EmbeddingSession } from '../../server/src/engine/model/embed';
import { loadEncoderModel } from '../../server/src/engine/model/encoder';
import { addEncoder, type FrontEndOptions } from '../../server/src/engine/model/encoder-graph';
import { GraphBuilder } from '../../server/src/engine/model/graph-builder';
import { hubertBaseConfig, randomWeights } from '../../server/src/engine/model/random';
import { createSession, ort } from '../../server/src/engine/model/runtime';
import { tapName, type TapName } from '../../server/src/engine/model/taps';
import type { WeightMap } from '../../server/src/engine/model/tensor';
import { mulberry32 } from '../../server/src/engine/random';
import { HF_REFERENCE, REFERENCE_MODELS, loadReference, maxRelativeError, relativeMaxError } from '../helpers/reference';

type Model = { config: EncoderConfig; weights: WeightMap };

/** Runs the encoder on equal-length clips and returns the named taps. */
async function taps(model: Model, clips: Float32Array[], names: TapName[], front: FrontEndOptions = {}) {
  const b = new GraphBuilder();
  const audio = b.input('audio', ['batch', 'samples']);
  const values = addEncoder(b, model.config, model.weights, audio, '', {}, front);
  for (const n of names) b.output(values.get(n)!, n);
  const session = await createSession(b.encode(), { device: 'cpu' });
  const length = clips[0]!.length;
  const batch = new Float32Array(clips.length * length);
  clips.forEach((c, i) => batch.set(c, i * length));
  try {
    const out = await session.run({ audio: new ort.Tensor('float32', batch, [clips.length, length]) });
    return new Map(names.map((n) => [n, out[n]!]));
  } finally {
    await session.release();
  }
}

function noise(n: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin(i / 7) + (rand() - 0.5));
}

const allTaps = (cfg: EncoderConfig): TapName[] => [
  ...cfg.convDims.map((_, i) => tapName.conv(i)),
  ...Array.from({ length: cfg.layers + 1 }, (_, k) => tapName.hidden(k)),
];

async function expectSameAsConvPath(model: Model, clips: Float32Array[]) {
  const names = allTaps(model.config);
  const conv = await taps(model, clips, names);
  const cpu = await taps(model, clips, names, { cpuConvStack: true });
  for (const n of names) {
    const a = cpu.get(n)!;
    const e = conv.get(n)!;
    expect(a.dims, n).toEqual(e.dims);
    expect(maxRelativeError(a.data as Float32Array, e.data as Float32Array), n).toBeLessThan(1e-5);
  }
}

const small = (overrides: Partial<EncoderConfig>) =>
  hubertBaseConfig({ hidden: 16, layers: 1, heads: 2, intermediate: 24, posConvKernel: 4, posConvGroups: 2, ...overrides });

describe('CPU conv stack: same values as the Conv path', () => {
  const layouts: [string, Partial<EncoderConfig>][] = [
    ['HuBERT-base blocks (GroupNorm, kernels 10/3/2)', { convDims: [8, 8, 8], convKernels: [10, 3, 2], convStrides: [5, 2, 2] }],
    ['a kernel of two strides and a remainder (7/3)', { convDims: [8, 8], convKernels: [7, 3], convStrides: [3, 1] }],
    ['a kernel shorter than its stride (3/4)', { convDims: [8, 8], convKernels: [3, 5], convStrides: [4, 2] }],
    ['conv biases beside GroupNorm', { convDims: [8, 8], convKernels: [10, 3], convStrides: [5, 2], convBias: true }],
    [
      'LayerNorm after every block, with biases (wav2vec2-large)',
      { convDims: [8, 8, 8], convKernels: [10, 3, 2], convStrides: [5, 2, 2], featExtractNorm: 'layer', convBias: true },
    ],
    [
      'ReLU blocks, pre-LN transformer',
      { convDims: [8, 8], convKernels: [10, 3], convStrides: [5, 2], featExtractActivation: 'relu', preLayerNorm: true },
    ],
    [
      'tanh-GELU blocks, input normalisation',
      { convDims: [8, 8], convKernels: [10, 3], convStrides: [5, 2], featExtractActivation: 'gelu_new', normalizeInput: true },
    ],
  ];
  it.each(layouts)('%s', async (_, overrides) => {
    const config = small(overrides);
    const model = { config, weights: randomWeights(config, 3) };
    await expectSameAsConvPath(model, [noise(1203, 1), noise(1203, 2), noise(1203, 3)]);
    await expectSameAsConvPath(model, [noise(4000, 4)]);
  });

  it('with block 0 statistics given from outside (the windowed long-audio forward)', async () => {
    const config = small({ convDims: [8, 8], convKernels: [10, 3], convStrides: [5, 2] });
    const model = { config, weights: randomWeights(config, 5) };
    const rand = mulberry32(9);
    const stats = (offset: number) =>
      new ort.Tensor(
        'float32',
        Float32Array.from({ length: 8 }, () => offset + rand()),
        [1, 8, 1],
      );
    const feeds = { audio: new ort.Tensor('float32', noise(2000, 7), [1, 2000]), conv0_mean: stats(-0.5), conv0_inv_std: stats(0.5) };
    const names = allTaps(config);
    const run = async (cpuConvStack: boolean) => {
      const b = new GraphBuilder();
      const audio = b.input('audio', ['batch', 'samples']);
      const conv0Stats = { mean: b.input('conv0_mean', [1, 8, 1]), invStd: b.input('conv0_inv_std', [1, 8, 1]) };
      const values = addEncoder(b, config, model.weights, audio, '', {}, { conv0Stats, cpuConvStack });
      for (const n of names) b.output(values.get(n)!, n);
      const session = await createSession(b.encode(), { device: 'cpu' });
      const out = await session.run(feeds);
      await session.release();
      return out;
    };
    const [conv, cpu] = [await run(false), await run(true)];
    for (const n of names) expect(maxRelativeError(cpu[n]!.data as Float32Array, conv[n]!.data as Float32Array), n).toBeLessThan(1e-5);
  });
});

describe('CPU conv stack: block 0 GroupNorm folded into the kernel', () => {
  it('matches a float64 GroupNorm where a high-pass channel sees low-pass audio (variance ≪ its terms)', async () => {
    const config = small({ convDims: [4], convKernels: [10], convStrides: [5], featExtractActivation: 'relu' });
    const weights = randomWeights(config, 1);
    // Channel 0: a smooth low-pass kernel; channels 1-3: alternating signs (the Nyquist band), scaled up.
    const kernel = weights.get('feature_extractor.conv_layers.0.conv.weight')!.data;
    for (let j = 0; j < 10; j++) {
      kernel[j] = 0.1;
      for (let c = 1; c < 4; c++) kernel[c * 10 + j] = (j % 2 ? 1 : -1) * (1 + c + 0.01 * j);
    }
    const gamma = weights.get('feature_extractor.conv_layers.0.layer_norm.weight')!.data;
    const beta = weights.get('feature_extractor.conv_layers.0.layer_norm.bias')!.data;
    // A slow sine with a large offset and a faint high band: the Nyquist channels see ~1e-4 of the signal's energy.
    const rand = mulberry32(4);
    const wave = Float32Array.from({ length: 8000 }, (_, i) => 3 + Math.sin(i / 50) + 1e-3 * (rand() - 0.5));
    const out = (await taps({ config, weights }, [wave], [tapName.conv(0)], { cpuConvStack: true })).get(tapName.conv(0))!;
    const frames = out.dims[2]!;
    const expected = new Float64Array(4 * frames);
    for (let c = 0; c < 4; c++) {
      const z = Float64Array.from({ length: frames }, (_, t) => {
        let s = 0;
        for (let j = 0; j < 10; j++) s += kernel[c * 10 + j]! * wave[5 * t + j]!;
        return s;
      });
      const m = z.reduce((a, v) => a + v, 0) / frames;
      const v = z.reduce((a, x) => a + (x - m) ** 2, 0) / frames;
      for (let t = 0; t < frames; t++) expected[c * frames + t] = Math.max(0, ((z[t]! - m) / Math.sqrt(v + 1e-5)) * gamma[c]! + beta[c]!);
    }
    expect(maxRelativeError(out.data as Float32Array, expected)).toBeLessThan(1e-5);
  });
});

describe.each(REFERENCE_MODELS)('CPU conv stack, parity with transformers: %s', (name) => {
  it('conv features and every hidden state within 1e-4 of the tensor scale, and within 1e-5 of the Conv path', async () => {
    const ref = loadReference(name);
    const model = await loadEncoderModel(path.join(HF_REFERENCE, name));
    const cfg = model.config;
    const wave = Float32Array.from(ref.input);
    const names = [tapName.conv(cfg.convDims.length - 1), ...Array.from({ length: cfg.layers + 1 }, (_, k) => tapName.hidden(k))];
    const out = await taps(model, [wave], names, { cpuConvStack: true });
    // transformers' conv features are frames × channels; the tap is channels × frames.
    const conv = out.get(names[0]!)!;
    const [, channels, frames] = conv.dims as [number, number, number];
    const timeMajor = Float32Array.from(
      { length: channels * frames },
      (_, i) => (conv.data as Float32Array)[(i % channels) * frames + Math.floor(i / channels)]!,
    );
    expect(relativeMaxError(timeMajor, ref.conv_features)).toBeLessThan(1e-4);
    names
      .slice(1)
      .forEach((n, k) => expect(relativeMaxError(out.get(n)!.data as Float32Array, ref.hidden_states[k]!), n).toBeLessThan(1e-4));
    await expectSameAsConvPath(model, [wave]);
  });
});

describe('EmbeddingSession on the CPU', () => {
  it('pools the hidden states of the Conv path (mean over frames, every layer)', async () => {
    const config = small({ layers: 2, convDims: [8, 8, 8], convKernels: [10, 3, 2], convStrides: [5, 2, 2] });
    const model = { config, weights: randomWeights(config, 11) };
    const clips = [noise(2400, 1), noise(1800, 2), noise(2400, 3)];
    const session = await EmbeddingSession.create(model, { device: 'cpu' });
    const pooled = await session.embed(clips);
    await session.release();
    const row = (config.layers + 1) * config.hidden;
    for (const [i, clip] of clips.entries()) {
      const hidden = await taps(
        model,
        [clip],
        Array.from({ length: config.layers + 1 }, (_, k) => tapName.hidden(k)),
      );
      const expected = new Float32Array(row);
      [...hidden.values()].forEach((h, k) => {
        const [, frames, dim] = h.dims as [number, number, number];
        for (let t = 0; t < frames; t++)
          for (let d = 0; d < dim; d++) expected[k * dim + d]! += (h.data as Float32Array)[t * dim + d]! / frames;
      });
      expect(maxRelativeError(pooled.data.subarray(i * row, (i + 1) * row), expected)).toBeLessThan(1e-5);
    }
  });
});
