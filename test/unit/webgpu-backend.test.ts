/**
 * The webgpu backend computes what the CPU computes. Without a GPU, Debian chromium's SwiftShader Vulkan driver gives
 * Dawn a software adapter (about 50× slower than the CPU, so only small models here); CI installs it. Where neither a
 * GPU nor SwiftShader is present the tier is skipped with one loud line.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EncoderSession, hiddenStateOutputs, loadEncoderModel } from '../../server/src/engine/model/encoder';
import { PairStatisticsSession } from '../../server/src/engine/model/pair-graph';
import { randomWeights } from '../../server/src/engine/model/random';
import { probeBackend } from '../../server/src/engine/model/runtime';
import type { TapName } from '../../server/src/engine/model/taps';
import { mulberry32 } from '../../server/src/engine/random';
import { HF_REFERENCE, maxRelativeError } from '../helpers/reference';

const SWIFTSHADER = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib64/chromium/vk_swiftshader_icd.json'].find(existsSync);
// Read by the Vulkan loader when Dawn first creates an instance (in this forked worker and the probe's child).
if (SWIFTSHADER && !process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES) process.env.VK_ICD_FILENAMES = SWIFTSHADER;
const webgpu = await probeBackend('webgpu');
if (!webgpu.available)
  console.warn(
    `!!! SKIPPED the webgpu backend tier: no WebGPU adapter (${webgpu.detail}). Enable it with: apt-get install -y chromium (SwiftShader's Vulkan driver)`,
  );

function audio(seconds: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: seconds * 16000 }, (_, t) => 0.3 * Math.sin(t / (9 + seed)) + 0.05 * (rand() - 0.5));
}

describe.skipIf(!webgpu.available)('webgpu backend', () => {
  it('gives the CPU’s hidden states (HuBERT fixture, every layer) within 1e-5', async () => {
    const model = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
    const outputs = hiddenStateOutputs(model.config);
    const wave = audio(1, 1);
    const results: Awaited<ReturnType<EncoderSession['run']>>[] = [];
    for (const device of ['cpu', 'webgpu'] as const) {
      const s = await EncoderSession.create(model, outputs, { device });
      expect(s.backend).toBe(device);
      results.push(await s.run(wave, 1));
      await s.release();
    }
    for (const name of outputs)
      expect(maxRelativeError(results[1]!.get(name)!.data as Float32Array, results[0]!.get(name)!.data as Float32Array)).toBeLessThan(1e-5);
  }, 180_000);

  it('reduces the pair statistics to the CPU’s moments within 1e-5', async () => {
    const anchor = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
    const other = { config: anchor.config, weights: randomWeights(anchor.config, 3) };
    const taps: TapName[] = ['conv.3', 'proj', 'layer.0.attn', 'layer.1.ffn', 'layer.2.out'];
    const batch = new Float32Array([...audio(1, 2), ...audio(1, 3)]);
    const moments: Awaited<ReturnType<PairStatisticsSession['run']>>[] = [];
    // The GPU's one pass, and a pass per layer (each built as layer 0 holding its own layer's weights).
    for (const [device, passes] of [['cpu'], ['webgpu'], ['webgpu', { frontBatch: 0, layersPerPass: 1 }]] as const) {
      const s = await PairStatisticsSession.create(anchor, other, taps, { device, ...(passes ? { passes } : {}) });
      moments.push(await s.run(batch, 2));
      await s.release();
    }
    for (const gpuMoments of moments.slice(1)) {
      expect(gpuMoments.map((m) => m.tap)).toEqual(moments[0]!.map((m) => m.tap));
      moments[0]!.forEach((cpu, i) => {
        const gpu = gpuMoments[i]!;
        for (const key of ['meanA', 'meanB', 'm2A', 'm2B', 'cross'] as const)
          expect(maxRelativeError(gpu[key], cpu[key]), `${cpu.tap} ${key}`).toBeLessThan(1e-5);
      });
    }
  }, 180_000);

  it('runs precision fp16 where the adapter has shader-f16, and otherwise refuses it with a clear message', async () => {
    const model = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
    const outputs = hiddenStateOutputs(model.config);
    const wave = audio(1, 4);
    const cpu = await EncoderSession.create(model, outputs, { device: 'cpu' });
    const reference = await cpu.run(wave, 1);
    await cpu.release();
    const half = await EncoderSession.create(model, outputs, { device: 'webgpu', precision: 'fp16' });
    try {
      const out = await half.run(wave, 1);
      for (const name of outputs)
        expect(maxRelativeError(out.get(name)!.data as Float32Array, reference.get(name)!.data as Float32Array)).toBeLessThan(2e-2);
    } catch (e) {
      expect((e as Error).message).toMatch(/no float16 shader support \(WebGPU feature shader-f16\).*use precision fp32/);
    } finally {
      await half.release();
    }
  }, 180_000);
});
