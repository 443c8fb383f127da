import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../server/src/engine/io/checkpoint';
import { parseEncoderConfig } from '../../server/src/engine/io/hfconfig';
import { writeSafetensors } from '../../server/src/engine/io/safetensors';
import { forward, loadEncoderModel } from '../../server/src/engine/model/encoder';
import type { Tensor } from '../../server/src/engine/model/tensor';
import { composeWeightNorm, decomposeWeightNorm, toStoredTensors } from '../../server/src/engine/model/weights';
import { HF_REFERENCE, loadReference, relativeMaxError } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();
const FIXTURE = path.join(HF_REFERENCE, 'hubert-postln-a');

async function fixtureConfig(): Promise<Record<string, unknown>> {
  return JSON.parse(await fs.readFile(path.join(FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;
}

/** Writes a copy of the fixture with tensors renamed/edited, and its config (optionally edited). */
async function variant(edit: (tensors: Map<string, Tensor>) => void, editConfig?: (c: Record<string, unknown>) => void): Promise<string> {
  const dir = tempDir();
  const ckpt = await openCheckpoint(FIXTURE);
  const tensors = new Map<string, Tensor>();
  for (const t of ckpt.tensors()) tensors.set(t.name, await ckpt.read(t.name));
  await ckpt.close();
  edit(tensors);
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  const cfg = await fixtureConfig();
  editConfig?.(cfg);
  await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(cfg));
  return dir;
}

const G = 'encoder.pos_conv_embed.conv.parametrizations.weight.original0';
const V = 'encoder.pos_conv_embed.conv.parametrizations.weight.original1';

describe('checkpoint layouts', () => {
  it('Hub-style weight_g/weight_v under a hubert. prefix computes the same function', async () => {
    const dir = await variant((t) => {
      const renamed = new Map(
        [...t].map(([k, v]) => [
          `hubert.${k.replace('parametrizations.weight.original0', 'weight_g').replace('parametrizations.weight.original1', 'weight_v')}`,
          v,
        ]),
      );
      t.clear();
      for (const [k, v] of renamed) t.set(k, v);
      t.set('hubert.masked_spec_embed', { shape: [64], data: new Float32Array(64) }); // ignored: not part of the encoder
      t.set('final_proj.weight', { shape: [2, 64], data: new Float32Array(128) });
    });
    const model = await loadEncoderModel(dir);
    expect(model.layout).toEqual({ prefix: 'hubert.', posConv: 'weight_g/weight_v' });
    const ref = loadReference('hubert-postln-a');
    const out = await forward(model, Float32Array.from(ref.input), { device: 'cpu' });
    expect(relativeMaxError(out.lastHiddenState, ref.last_hidden_state)).toBeLessThan(1e-4);
  });

  it('weight norm decomposes back exactly into the stored form', async () => {
    const model = await loadEncoderModel(FIXTURE);
    const stored = toStoredTensors(model.weights, model.layout);
    expect(stored.has(G) && stored.has(V)).toBe(true);
    const w = model.weights.get('encoder.pos_conv_embed.conv.weight')!;
    const { g, v } = decomposeWeightNorm(w);
    const again = composeWeightNorm(g, v, w.shape);
    let err = 0;
    for (let i = 0; i < w.data.length; i++) err = Math.max(err, Math.abs(again.data[i]! - w.data[i]!));
    expect(err).toBeLessThan(1e-6);
  });

  it('names the missing tensor', async () => {
    const dir = await variant((t) => t.delete('encoder.layers.1.feed_forward.output_dense.bias'));
    await expect(loadEncoderModel(dir)).rejects.toMatchObject({
      code: 'missing-tensor',
      message: expect.stringContaining('encoder.layers.1.feed_forward.output_dense.bias is missing'),
    });
  });

  it('reports a shape that does not fit the config', async () => {
    const dir = await variant(
      () => undefined,
      (c) => (c.intermediate_size = 128),
    );
    await expect(loadEncoderModel(dir)).rejects.toMatchObject({
      code: 'shape-mismatch',
      message: expect.stringMatching(/intermediate_dense.weight should be \[128, 64\] for this config, is \[256, 64\]/),
    });
  });

  it('refuses weights holding NaN', async () => {
    const dir = await variant((t) => (t.get('encoder.layers.0.attention.q_proj.weight')!.data[5] = NaN));
    await expect(loadEncoderModel(dir)).rejects.toMatchObject({
      code: 'non-finite',
      message: expect.stringMatching(/q_proj.weight holds NaN at flat index 5/),
    });
  });

  it('refuses a checkpoint that is not an audio encoder', async () => {
    const dir = await variant((t) => t.delete('feature_extractor.conv_layers.0.conv.weight'));
    await expect(loadEncoderModel(dir)).rejects.toMatchObject({
      code: 'missing-tensor',
      message: expect.stringMatching(/not a wav2vec2\/HuBERT\/MERT encoder checkpoint/),
    });
  });
});

describe('configs', () => {
  const parse = async (edit: (c: Record<string, unknown>) => void) => {
    const c = await fixtureConfig();
    edit(c);
    return () => parseEncoderConfig(c, 'config.json');
  };

  it('reads the HuBERT fixture', async () => {
    const cfg = (await parse(() => undefined))();
    expect(cfg).toMatchObject({
      family: 'hubert',
      hidden: 64,
      layers: 3,
      heads: 4,
      headDim: 16,
      intermediate: 256,
      featExtractNorm: 'group',
      preLayerNorm: false,
      sampleRate: 16000,
      frameRate: 50,
    });
  });

  it.each([
    ['an unknown model_type', (c: Record<string, unknown>) => (c.model_type = 'whisper'), /model_type "whisper" is not supported/],
    [
      'MERT with the CQT branch',
      (c: Record<string, unknown>) => Object.assign(c, { model_type: 'mert_model', sample_rate: 24000, feature_extractor_cqt: true }),
      /CQT feature branch/,
    ],
    [
      'MERT with DeepNorm',
      (c: Record<string, unknown>) => Object.assign(c, { model_type: 'mert_model', sample_rate: 24000, deepnorm: true }),
      /DeepNorm/,
    ],
    ['MERT without a sample rate', (c: Record<string, unknown>) => (c.model_type = 'mert_model'), /no "sample_rate"/],
    ['an unsupported activation', (c: Record<string, unknown>) => (c.hidden_act = 'swish'), /hidden_act "swish" is not supported/],
    [
      'heads that do not divide hidden',
      (c: Record<string, unknown>) => (c.num_attention_heads = 5),
      /not divisible by num_attention_heads 5/,
    ],
    ['conv lists of different lengths', (c: Record<string, unknown>) => (c.conv_kernel = [10, 3]), /must have the same length/],
    ['a missing hidden_size', (c: Record<string, unknown>) => delete c.hidden_size, /"hidden_size" must be a positive integer/],
    ['a batch-normed positional conv', (c: Record<string, unknown>) => (c.conv_pos_batch_norm = true), /conv_pos_batch_norm/],
  ])('refuses %s', async (_, edit, message) => {
    expect(await parse(edit)).toThrow(message);
  });

  it('reads MERT-v1-like configs at 24 kHz / 75 Hz', async () => {
    const cfg = (
      await parse((c) =>
        Object.assign(c, {
          model_type: 'mert_model',
          sample_rate: 24000,
          conv_stride: [5, 2, 2, 2, 2, 2, 2],
          feature_extractor_cqt: false,
          attention_relax: -1,
        }),
      )
    )();
    expect(cfg.family).toBe('mert');
    expect(cfg.frameRate).toBe(75);
  });

  it('a folder whose config is not JSON', async () => {
    const dir = tempDir();
    await fs.writeFile(path.join(dir, 'config.json'), '{ "model_type": "hubert", ');
    await expect(loadEncoderModel(dir)).rejects.toMatchObject({
      code: 'bad-json',
      message: expect.stringMatching(/config.json is not valid JSON/),
    });
  });
});

describe('input normalisation (preprocessor_config.json do_normalize)', () => {
  it('normalises each waveform to zero mean and unit variance before the model, as the feature extractor does', async () => {
    const dir = await variant(() => undefined);
    await fs.writeFile(
      path.join(dir, 'preprocessor_config.json'),
      JSON.stringify({ do_normalize: true, sampling_rate: 16000, feature_size: 1 }),
    );
    const model = await loadEncoderModel(dir);
    expect(model.config.normalizeInput).toBe(true);
    const ref = loadReference('hubert-postln-a');
    const raw = Float32Array.from(ref.input);
    const mean = raw.reduce((a, b) => a + b, 0) / raw.length;
    const variance = raw.reduce((a, b) => a + (b - mean) ** 2, 0) / raw.length;
    const scaled = raw.map((v) => 3 * v + 0.5); // normalisation must undo any gain and offset
    const expected = raw.map((v) => (v - mean) / Math.sqrt(variance + 1e-7));
    const plain = await loadEncoderModel(FIXTURE);
    const a = await forward(model, scaled, { device: 'cpu' });
    const b = await forward(plain, expected, { device: 'cpu' });
    let err = 0;
    for (let i = 0; i < a.lastHiddenState.length; i++) err = Math.max(err, Math.abs(a.lastHiddenState[i]! - b.lastHiddenState[i]!));
    expect(err).toBeLessThan(1e-4);
  });
});
