import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { forward, loadEncoderModel } from '../../server/src/engine/model/encoder';
import { FIXTURES, HF_REFERENCE, loadReference, relativeMaxError } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';

const TORCH = path.join(FIXTURES, 'torch');
const tempDir = useTempDirs();

describe('PyTorch .bin twin of a safetensors model', () => {
  it('hubert. prefix + weight_g/weight_v in pytorch_model.bin: identical hidden states to the safetensors original, and to transformers', async () => {
    const ref = loadReference('hubert-postln-a');
    const input = Float32Array.from(ref.input);
    const bin = await loadEncoderModel(path.join(TORCH, 'hubert-bin'));
    const st = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
    expect(bin.layout).toEqual({ prefix: 'hubert.', posConv: 'weight_g/weight_v' });
    expect(st.layout.posConv).toBe('parametrizations');
    const [a, b] = [await forward(bin, input, { device: 'cpu' }), await forward(st, input, { device: 'cpu' })];
    expect(a.hiddenStates).toHaveLength(b.hiddenStates.length);
    a.hiddenStates.forEach((h, k) => expect(Array.from(h), `hidden_states[${k}]`).toEqual(Array.from(b.hiddenStates[k]!)));
    expect(Array.from(a.lastHiddenState)).toEqual(Array.from(b.lastHiddenState));
    expect(relativeMaxError(a.lastHiddenState, ref.last_hidden_state)).toBeLessThan(1e-4);
  });
});

describe('MERT-style checkpoints (config and tensor names as m-a-p/MERT-v1-95M ships them)', () => {
  const MERT = path.join(TORCH, 'mert-v1-style');

  it('loads as a MERT encoder at 24 kHz / 75 frames/s and computes the HuBERT layer it copies', async () => {
    const model = await loadEncoderModel(MERT);
    expect(model.config).toMatchObject({
      family: 'mert',
      modelType: 'mert_model',
      sampleRate: 24000,
      frameRate: 75,
      layers: 1,
      preLayerNorm: false,
    });
    expect(model.layout).toEqual({ prefix: '', posConv: 'weight_g/weight_v' });
    // Its weights are hubert-postln-a's first layer: a post-LN encoder's first two hidden states do not depend on later
    // layers. MERT's preprocessor normalises each waveform (do_normalize), so the reference is hubert-postln-a on the
    // normalised input.
    expect(model.config.normalizeInput).toBe(true);
    const input = Float32Array.from(loadReference('hubert-postln-a').input);
    const mean = input.reduce((a, b) => a + b, 0) / input.length;
    const std = Math.sqrt(input.reduce((a, b) => a + (b - mean) ** 2, 0) / input.length + 1e-7);
    const hubert = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
    const ref = await forward(
      hubert,
      input.map((v) => (v - mean) / std),
      { device: 'cpu' },
    );
    const out = await forward(model, input, { device: 'cpu' });
    expect(relativeMaxError(out.hiddenStates[0]!, toRows(ref.hiddenStates[0]!, ref.hidden))).toBeLessThan(1e-4);
    expect(relativeMaxError(out.hiddenStates[1]!, toRows(ref.hiddenStates[1]!, ref.hidden))).toBeLessThan(1e-4);
  });

  it('MERT-v0-public style: 16 kHz from preprocessor_config.json when config.json has no sample_rate', async () => {
    const dir = tempDir();
    const cfg = JSON.parse(await fs.readFile(path.join(MERT, 'config.json'), 'utf8')) as Record<string, unknown>;
    delete cfg.sample_rate;
    await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(cfg));
    await fs.writeFile(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ feature_size: 1, sampling_rate: 16000 }));
    await fs.copyFile(path.join(MERT, 'pytorch_model.bin'), path.join(dir, 'pytorch_model.bin'));
    const model = await loadEncoderModel(dir);
    expect([model.config.sampleRate, model.config.frameRate]).toEqual([16000, 50]);
  });

  it.each([
    ['feature_extractor_cqt', true, /CQT feature branch/],
    ['deepnorm', true, /DeepNorm/],
    ['attention_relax', 32.0, /attention_relax 32/],
  ])('refuses the MERT option %s = %s by name', async (key, value, message) => {
    const dir = tempDir();
    const cfg = JSON.parse(await fs.readFile(path.join(MERT, 'config.json'), 'utf8')) as Record<string, unknown>;
    cfg[key] = value;
    await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify(cfg));
    await fs.copyFile(path.join(MERT, 'pytorch_model.bin'), path.join(dir, 'pytorch_model.bin'));
    await expect(loadEncoderModel(dir)).rejects.toMatchObject({ code: 'unsupported-model', message: expect.stringMatching(message) });
  });
});

function toRows(flat: Float32Array, dim: number): number[][] {
  return Array.from({ length: flat.length / dim }, (_, t) => Array.from(flat.subarray(t * dim, (t + 1) * dim)));
}
