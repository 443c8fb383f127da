/**
 * Random encoders of any size, for benchmarks and tests that need a model no checkpoint provides (HuBERT-base-sized
 * timing runs, permutation round trips). Seeded, so a run is repeatable.
 */
import type { EncoderConfig } from '../io/hfconfig';
import type { WeightMap } from './tensor';
import { expectedShapes } from './weights';
import { numel } from './tensor';
import { mulberry32 } from '../random';

/** HuBERT-base / MERT-v0-public dimensions (their published config.json files: 12 layers, hidden 768, 12 heads, FFN 3072). */
export function hubertBaseConfig(overrides: Partial<EncoderConfig> = {}): EncoderConfig {
  const cfg: EncoderConfig = {
    family: 'hubert',
    modelType: 'hubert',
    hidden: 768,
    layers: 12,
    heads: 12,
    headDim: 64,
    intermediate: 3072,
    convDims: [512, 512, 512, 512, 512, 512, 512],
    convKernels: [10, 3, 3, 3, 3, 2, 2],
    convStrides: [5, 2, 2, 2, 2, 2, 2],
    convBias: false,
    featExtractNorm: 'group',
    featExtractActivation: 'gelu',
    featProjLayerNorm: true,
    posConvKernel: 128,
    posConvGroups: 16,
    preLayerNorm: false,
    layerNormEps: 1e-5,
    hiddenAct: 'gelu',
    sampleRate: 16000,
    frameRate: 50,
    ...overrides,
  };
  cfg.headDim = cfg.hidden / cfg.heads;
  cfg.frameRate = cfg.sampleRate / cfg.convStrides.reduce((a, b) => a * b, 1);
  return cfg;
}

/** Random weights with fan-in scaling (so activations stay in range through deep stacks); norms near identity. */
export function randomWeights(cfg: EncoderConfig, seed = 0): WeightMap {
  const rand = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  const weights: WeightMap = new Map();
  for (const [name, shape] of expectedShapes(cfg)) {
    const data = new Float32Array(numel(shape));
    const isNorm = name.includes('norm');
    const fanIn = shape.length > 1 ? numel(shape.slice(1)) : 1;
    const std = isNorm ? 0.05 : name.endsWith('.bias') ? 0.02 : 1 / Math.sqrt(fanIn);
    const base = isNorm && name.endsWith('.weight') ? 1 : 0;
    for (let i = 0; i < data.length; i++) data[i] = base + std * normal();
    weights.set(name, { shape, data });
  }
  return weights;
}
