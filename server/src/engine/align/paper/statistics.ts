/**
 * The released code's alignment statistic: a covariance of per-batch standardised features, turned into a
 * correlation (Ritter-Gutierrez et al., ASRU 2025; github FabianRitter/speech-ssl-merging).
 *
 * What s3prl/merging_utils/model_merger_new.py ModelMerge.compute_metrics does, per batch and per hook point:
 * each model's features X [units × frames of this batch] are standardised with this batch's mean and unbiased std,
 * Z = (X − mean) / (std + 1e-7); s3prl/metric_calculators.py CovarianceMetric.update then adds Σ Z and Z Zᵀ of the
 * stacked [Z_A; Z_B] (float64 accumulators); CovarianceMetric.finalize gives cov = E[ZZᵀ] − E[Z]E[Z]ᵀ with 1e-9 added
 * to the diagonal; ModelMerge.cov_to_corr divides by clamp(√diag ⊗ √diag, min 1e-7).
 *
 * Between-batch variation is therefore removed before pooling: the result is close to a frame-weighted average of
 * per-batch correlations, not the Pearson correlation of all frames (align/stats.ts). It is computed here from the
 * pair graph's per-batch centred moments (model/pair-graph.ts), exactly: Σ Z_A Z_Bᵀ = cross / ((s_A + ε)(s_B + ε)ᵀ),
 * Σ Z_A² = m2_A / (s_A + ε)², and Σ Z = 0 (a standardised batch has zero mean; the released code sums float32
 * rounding noise there, ~1e-7 relative).
 */
import { EngineError } from '../../errors';
import type { BatchMoments } from '../stats';

/** ε added to each batch's std before dividing (model_merger_new.py compute_metrics). */
export const BATCH_STD_EPSILON = 1e-7;
/** ε added to the covariance diagonal (metric_calculators.py CovarianceMetric.finalize). */
export const COVARIANCE_DIAGONAL_EPSILON = 1e-9;
/** Lower clamp of √var_i·√var_j (model_merger_new.py ModelMerge.cov_to_corr). */
export const CORRELATION_DENOMINATOR_FLOOR = 1e-7;

/** Running sums of the standardised features of one tap pair, in float64. */
export interface StandardisedStats {
  readonly dimA: number;
  readonly dimB: number;
  /** Frames seen (all batches). */
  n: number;
  /** Σ_batches Σ_frames z_a². */
  readonly sqA: Float64Array;
  readonly sqB: Float64Array;
  /** Σ_batches Σ_frames z_a z_bᵀ, dimA × dimB row-major. */
  readonly cross: Float64Array;
}

export function createStandardisedStats(dimA: number, dimB: number): StandardisedStats {
  return { dimA, dimB, n: 0, sqA: new Float64Array(dimA), sqB: new Float64Array(dimB), cross: new Float64Array(dimA * dimB) };
}

/**
 * 1 / (std + ε) per unit for one batch; a batch of one frame is only centred (divisor 1), as in the released code.
 */
function inverseScale(m2: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(m2.length);
  for (let i = 0; i < m2.length; i++) out[i] = n > 1 ? 1 / (Math.sqrt(Math.max(0, m2[i]!) / (n - 1)) + BATCH_STD_EPSILON) : 1;
  return out;
}

/** Adds one batch, given as the pair graph's centred moments of that batch. */
export function addStandardisedBatch(s: StandardisedStats, m: BatchMoments): StandardisedStats {
  if (m.m2A.length !== s.dimA || m.m2B.length !== s.dimB || m.cross.length !== s.dimA * s.dimB) {
    throw new EngineError('shape-mismatch', `statistics batch does not fit a ${s.dimA}×${s.dimB} tap pair`);
  }
  if (m.n === 0) return s;
  const ia = inverseScale(m.m2A, m.n);
  const ib = inverseScale(m.m2B, m.n);
  for (let i = 0; i < s.dimA; i++) s.sqA[i] = s.sqA[i]! + m.m2A[i]! * ia[i]! * ia[i]!;
  for (let j = 0; j < s.dimB; j++) s.sqB[j] = s.sqB[j]! + m.m2B[j]! * ib[j]! * ib[j]!;
  for (let i = 0; i < s.dimA; i++) {
    const row = i * s.dimB;
    const a = ia[i]!;
    for (let j = 0; j < s.dimB; j++) s.cross[row + j] = s.cross[row + j]! + m.cross[row + j]! * a * ib[j]!;
  }
  s.n += m.n;
  return s;
}

/** The released code's correlation (anchor units × other units, row-major) from the accumulated sums. */
export function standardisedCorrelation(s: StandardisedStats): Float64Array {
  if (s.n === 0) throw new EngineError('runtime-error', 'no frames were seen for this tap');
  const n = s.n;
  const sdA = Float64Array.from(s.sqA, (v) => Math.sqrt(v / n + COVARIANCE_DIAGONAL_EPSILON));
  const sdB = Float64Array.from(s.sqB, (v) => Math.sqrt(v / n + COVARIANCE_DIAGONAL_EPSILON));
  const r = new Float64Array(s.dimA * s.dimB);
  for (let i = 0; i < s.dimA; i++) {
    const row = i * s.dimB;
    for (let j = 0; j < s.dimB; j++) {
      const v = s.cross[row + j]! / n / Math.max(sdA[i]! * sdB[j]!, CORRELATION_DENOMINATOR_FLOOR);
      if (!Number.isFinite(v))
        throw new EngineError('non-finite', `correlation [${i}, ${j}] is ${v}: the tap statistics contain non-finite values`);
      r[row + j] = v + 0;
    }
  }
  return r;
}
