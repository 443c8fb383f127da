import type { EncoderConfig } from '../../server/src/engine/io/hfconfig';
import { hubertBaseConfig } from '../../server/src/engine/model/random';

/** A HuBERT-layout encoder small enough for float64 references in a unit test: 2 layers, hidden 32, 4 heads, FFN 48. */
export function tinyHubertConfig(): EncoderConfig {
  return hubertBaseConfig({
    hidden: 32,
    layers: 2,
    heads: 4,
    intermediate: 48,
    convDims: [16, 16, 16],
    convKernels: [10, 3, 3],
    convStrides: [5, 2, 2],
    posConvKernel: 8,
    posConvGroups: 4,
  });
}

/** Smaller still, for evaluation-embedding tests that run many sessions: 2 layers, hidden 16, 2 heads, FFN 24. */
export function tinyEmbeddingConfig(): EncoderConfig {
  return hubertBaseConfig({
    hidden: 16,
    layers: 2,
    heads: 2,
    intermediate: 24,
    posConvKernel: 4,
    posConvGroups: 2,
    convDims: [8, 8, 8],
    convKernels: [10, 3, 2],
    convStrides: [5, 2, 2],
  });
}
