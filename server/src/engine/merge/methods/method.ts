/**
 * The interface every merge method implements (the registry, index.ts, lists them): from the anchor and the aligned
 * other to the merged weights, at one λ spec.
 */
import type { EncoderConfig } from '../../io/hfconfig';
import type { ProbeSet } from '../../io/probe';
import type { SessionOptions } from '../../model/runtime';
import type { WeightMap } from '../../model/tensor';
import type { ProgressSink } from '../../progress';
import type { LsqSettings, MergeMethodName } from '../../recipe/schema';
import type { LambdaSpec } from '../lambda';
import type { MergeMethod as TensorInterpolation } from '../merge';

export interface MergeContext {
  config: EncoderConfig;
  anchor: WeightMap;
  /** The other model in the anchor's unit order. */
  other: WeightMap;
  /**
   * For a method that `refinesStart`: the merge to start from, when it is not the method's own interpolation of
   * anchor and other (the zipped interpolation, whose FFN is wider than the endpoints').
   */
  start?: { weights: WeightMap; config: EncoderConfig };
  lambda: LambdaSpec;
  /** Probe audio: always present for a method with `needsProbe`. */
  probe: ProbeSet | undefined;
  /** `merge.lsq` (read by lsq; each key's default when absent). */
  lsq?: Partial<LsqSettings>;
  /** `runtime.batch_size`, when the recipe sets it. */
  batchSize: number | undefined;
  seed: number;
  session: SessionOptions;
  emit: ProgressSink;
  signal: AbortSignal | undefined;
}

export interface MergeMethod {
  name: MergeMethodName;
  /** Needs `probe` audio (read by run.ts, the recipe checks and the CLI plan through `mergeNeedsProbe`). */
  needsProbe: boolean;
  /** The tensor-by-tensor interpolation it is closest to: the unaligned baseline and tensors outside the encoder use it. */
  interpolation: TensorInterpolation;
  /**
   * Refines a starting merge (ctx.start, else the interpolation) instead of building its own: with `merge.width` > 1
   * the pipeline zips the interpolation first and hands it over, so the refit also fits the unmerged FFN units.
   */
  refinesStart: boolean;
  merge(ctx: MergeContext): Promise<WeightMap>;
}
