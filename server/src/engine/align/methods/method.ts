/**
 * The interface every alignment method implements (the registry, index.ts, lists them). A method turns the two
 * loaded models (and probe audio, when it says it needs some) into permutations and the other model in the
 * anchor's unit order; run.ts only looks methods up by their recipe name.
 */
import type { EncoderConfig } from '../../io/hfconfig';
import type { ProbeSet } from '../../io/probe';
import type { ShardInput } from '../../pipeline/statistics';
import type { EncoderModel } from '../../model/encoder';
import type { SessionOptions } from '../../model/runtime';
import type { WeightMap } from '../../model/tensor';
import type { TapName } from '../../model/taps';
import type { JobStage, ProgressSink } from '../../progress';
import type { AlignMethodName, HeadsMode, PermutePart } from '../../recipe/schema';
import type { Permutations } from '../permute';
import type { GroupReport } from '../solve';
import type { PermutationSpec } from '../spec';

export interface AlignContext {
  anchor: EncoderModel;
  other: EncoderModel;
  /** The function-preserving permutation spec of the pair's architecture. */
  spec: PermutationSpec;
  /** Probe audio: always present for a method with `needsProbe`, present for the others when the recipe has one. */
  probe: ProbeSet | undefined;
  permute: readonly PermutePart[];
  heads: HeadsMode;
  seed: number;
  /** `runtime.batch_size` (probe segments per forward batch), when the recipe sets it. */
  batchSize: number | undefined;
  session: SessionOptions;
  /** Starts a pipeline stage (progress bar, timings). */
  stage: (stage: JobStage, message: string) => void;
  emit: ProgressSink;
  signal: AbortSignal | undefined;
  /** Statistics shards to reduce instead of running the probe (`run --stats`); methods built on collectStatistics honour it. */
  shards?: ShardInput | undefined;
  /** `runtime.memory`: the statistics step's budget (pipeline/memory-plan.ts). */
  memory?: string | undefined;
}

/** Per-unit mean and variance of one tap on the probe audio, for both models (other in its ORIGINAL unit order). */
export interface UnitMoments {
  meanA: Float64Array;
  varA: Float64Array;
  meanB: Float64Array;
  varB: Float64Array;
}

export interface AlignOutcome {
  perms: Permutations;
  /** One entry per solved group, for the report. */
  report: GroupReport[];
  /** The other model in the anchor's unit order. */
  permuted: WeightMap;
  /** True when `permuted` computes exactly what `other` does: the self-check then fails the run on a mismatch. */
  functionPreserving: boolean;
  /** Correlations (anchor × other, other in its original order) by the `source` tap of the report's groups. */
  correlations: Map<string, Float64Array>;
  /** Dead units by tap. */
  dead: Map<string, { anchor: number; other: number }>;
  /** Unit moments by tap, when the method measured them (statistics repair reuses them). */
  moments: Map<TapName, UnitMoments>;
}

export interface AlignMethod {
  name: AlignMethodName;
  /** Needs `probe` audio: the one place this rule lives (run.ts, the recipe checks and the CLI plan read it). */
  needsProbe: boolean;
  /** The taps whose statistics the method collects (for the plan and its memory estimate); [] when none. */
  taps(cfg: EncoderConfig, permute: readonly PermutePart[], heads: HeadsMode): TapName[];
  align(ctx: AlignContext): Promise<AlignOutcome>;
}
