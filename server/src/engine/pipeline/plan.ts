/**
 * What a recipe run will do, worked out before any heavy work: which taps feed which permutation groups, how much
 * audio and how many frames, the batch size and a memory estimate. `merge-studio run --dry-run` prints it.
 */
import type { EncoderConfig } from '../io/hfconfig';
import { framesFor } from '../model/encoder';
import { tapWidth } from '../model/pair-graph';
import type { Backend } from '../model/runtime';
import type { TapName } from '../model/taps';
import { parameterCount } from '../model/weights';

/** Frames per statistics batch the default batch size aims for (keeps GEMMs large and memory bounded). */
const TARGET_FRAMES_PER_BATCH = 2000;

/** The taps whose correlations drive the requested permutation groups (the correlation method's). */
export { correlationTaps as tapsFor } from '../align/methods/correlation';

/**
 * On a GPU every batch downloads each tap's d×d cross matrix and adds it into the float64 statistics on the host,
 * whatever the batch holds, so GPU batches are 8× larger. bench:gpu (HuBERT-base pair, H200, webgpu, whole passes):
 * 2.37 s per minute of probe at 8 × 5 s, 1.16 at 32, 0.90 at 64 (6.7× the 16-core CPU), same permutations.
 */
const GPU_BATCH_FACTOR = 8;

export function defaultBatchSize(cfg: EncoderConfig, segmentSamples: number, backend: Backend = 'cpu'): number {
  const frames = Math.max(1, framesFor(cfg, segmentSamples));
  const target = TARGET_FRAMES_PER_BATCH * (backend === 'cpu' ? 1 : GPU_BATCH_FACTOR);
  return Math.max(1, Math.min(64, Math.round(target / frames)));
}

export interface MemoryEstimate {
  /** Both models' float32 weights (the engine keeps anchor, other and the permuted other). */
  weightsBytes: number;
  /** float64 statistics: Σ over taps of dA·dB cross matrix + vectors. */
  statisticsBytes: number;
  /** Activations of one statistics batch inside onnxruntime (rough upper bound: the widest taps of both models). */
  batchActivationBytes: number;
}

export function estimateMemory(cfg: EncoderConfig, taps: readonly TapName[], batch: number, segmentSamples: number): MemoryEstimate {
  const params = parameterCount(cfg);
  let stats = 0;
  for (const t of taps) {
    const d = tapWidth(cfg, t);
    stats += 8 * (d * d + 4 * d);
  }
  const frames = framesFor(cfg, segmentSamples) * batch;
  const firstConvFrames = Math.floor((segmentSamples - cfg.convKernels[0]!) / cfg.convStrides[0]!) + 1;
  const widest = Math.max(
    cfg.convDims[0]! * firstConvFrames * batch,
    cfg.intermediate * frames,
    cfg.heads * frames * framesFor(cfg, segmentSamples),
  );
  return { weightsBytes: 3 * 4 * params, statisticsBytes: stats, batchActivationBytes: 2 * 4 * 4 * widest };
}

export function formatBytes(n: number): string {
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(0)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(0)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
