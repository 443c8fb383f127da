/**
 * `align.method: paper` — what the released code of Ritter-Gutierrez et al. (ASRU 2025, github
 * FabianRitter/speech-ssl-merging, s3prl/prepare_hubert_mert_merging_permutation_style.py main() with its defaults)
 * computes, so a run can reproduce the paper and be compared with the exact `correlation` method:
 *
 *   hook points   graphs/hubert_graph_complete_merge.py, merge_type ff+attn, merge_cnn off: a node before each layer's
 *                 fc2 (base_graph.py add_hooks: pre-hook on fc2 → the FFN activation, tap layer.{l}.ffn) and before
 *                 out_proj (post-hook on the whole self_attn module → the attention output AFTER out_proj, tap
 *                 layer.{l}.attn_out, not the per-head context the permutation acts on). No CNN, no residual nodes.
 *   statistics    per-batch standardised covariance → correlation (statistics.ts).
 *   matching      signed-correlation assignments; heads re-ordered by head-pair assignment (match.ts).
 *   application   only the consumers' input columns of the other model move (apply.ts): not function-preserving.
 *
 * `align.permute` selects among ffn and attention; `heads: within` is permute_heads=False, `none` leaves attention out.
 */
import { EngineError } from '../../errors';
import type { EncoderModel } from '../../model/encoder';
import { iterateBatches, type ProbeSet } from '../../io/probe';
import { PairStatisticsSession } from '../../model/pair-graph';
import type { SessionOptions } from '../../model/runtime';
import type { WeightMap } from '../../model/tensor';
import { tapName, type TapName } from '../../model/taps';
import type { ProgressSink } from '../../progress';
import type { HeadsMode, PermutePart } from '../../recipe/schema';
import { solveAssignment } from '../lap-async';
import type { Assignment } from '../lap';
import { fractionMoved, type Permutations } from '../permute';
import type { GroupReport } from '../solve';
import { groupName } from '../spec';
import { applyPaperPermutations } from './apply';
import { matchHeads, matchUnits } from './match';
import { addStandardisedBatch, createStandardisedStats, standardisedCorrelation, type StandardisedStats } from './statistics';
import { paperTaps } from './taps';

export { applyPaperPermutations, paperSpec } from './apply';
export { matchHeads, matchUnits } from './match';
export { addStandardisedBatch, createStandardisedStats, standardisedCorrelation } from './statistics';

export { PAPER_FUNCTION_PRESERVING, paperTaps } from './taps';

type Model = Pick<EncoderModel, 'config' | 'weights'>;

export interface PaperAlignOptions extends SessionOptions {
  permute: readonly PermutePart[];
  heads: HeadsMode;
  batchSize: number;
  onEvent?: ProgressSink;
  signal?: AbortSignal;
  /** The FFN assignment (default: solveAssignment, off the main thread for large n). */
  assign?: (score: Float64Array, n: number) => Promise<Assignment>;
}

export interface PaperAlignResult {
  perms: Permutations;
  /** Pooled per-unit moments by tap (other in its original unit order). */
  pooled: Map<TapName, PooledUnitMoments>;
  /** The other model as the released code leaves it. */
  permuted: WeightMap;
  report: GroupReport[];
  /** The released code's correlation per tap (anchor × other). */
  correlations: Map<TapName, Float64Array>;
  /** Parts of `align.permute` the released code's default graph does not align (cnn, residual). */
  ignored: PermutePart[];
}

/** Pooled per-unit moments of one tap (all frames), both models: for dead-unit counts and statistics repair. */
export interface PooledUnitMoments {
  n: number;
  meanA: Float64Array;
  m2A: Float64Array;
  meanB: Float64Array;
  m2B: Float64Array;
}

function addPooled(
  p: PooledUnitMoments,
  m: { n: number; meanA: ArrayLike<number>; m2A: ArrayLike<number>; meanB: ArrayLike<number>; m2B: ArrayLike<number> },
): void {
  const n = p.n + m.n;
  if (m.n === 0) return;
  const f = (p.n * m.n) / n;
  const update = (mean: Float64Array, m2: Float64Array, bm: ArrayLike<number>, b2: ArrayLike<number>) => {
    for (let i = 0; i < mean.length; i++) {
      const d = bm[i]! - mean[i]!;
      mean[i] = mean[i]! + (d * m.n) / n;
      m2[i] = m2[i]! + b2[i]! + d * d * f;
    }
  };
  update(p.meanA, p.m2A, m.meanA, m.m2A);
  update(p.meanB, p.m2B, m.meanB, m.m2B);
  p.n = n;
}

export interface PaperStatistics {
  standardised: Map<TapName, StandardisedStats>;
  pooled: Map<TapName, PooledUnitMoments>;
}

/** Probe batches through both encoders; per tap, the released code's standardised sums (and pooled unit moments). */
export async function collectPaperStatistics(
  anchor: Model,
  other: Model,
  probe: ProbeSet,
  taps: readonly TapName[],
  opts: PaperAlignOptions,
): Promise<PaperStatistics> {
  const stats = new Map<TapName, StandardisedStats>();
  const pooled = new Map<TapName, PooledUnitMoments>();
  if (taps.length === 0) return { standardised: stats, pooled };
  const session = await PairStatisticsSession.create(anchor, other, taps, opts);
  try {
    const total = Math.ceil(probe.segments.length / opts.batchSize);
    let done = 0;
    opts.onEvent?.({
      type: 'progress',
      stage: 'statistics',
      done,
      total,
      message: `${taps.length} taps (per-batch standardised) on ${session.backend}`,
    });
    for (const batch of iterateBatches(probe, opts.batchSize)) {
      if (opts.signal?.aborted) throw new EngineError('cancelled', 'cancelled while collecting statistics');
      for (const m of await session.run(batch.data, batch.dims[0])) {
        for (const a of [m.cross, m.m2A, m.m2B]) {
          if (!a.every(Number.isFinite))
            throw new EngineError(
              'non-finite',
              `activations at tap ${m.tap} became non-finite on the probe audio (overflow in one of the models?)`,
            );
        }
        let s = stats.get(m.tap);
        if (!s) stats.set(m.tap, (s = createStandardisedStats(m.dimA, m.dimB)));
        addStandardisedBatch(s, m);
        let p = pooled.get(m.tap);
        if (!p)
          pooled.set(
            m.tap,
            (p = {
              n: 0,
              meanA: new Float64Array(m.dimA),
              m2A: new Float64Array(m.dimA),
              meanB: new Float64Array(m.dimB),
              m2B: new Float64Array(m.dimB),
            }),
          );
        addPooled(p, m);
      }
      done++;
      opts.onEvent?.({
        type: 'progress',
        stage: 'statistics',
        done,
        total,
        message: `${Math.min(done * opts.batchSize, probe.segments.length)}/${probe.segments.length} segments`,
      });
    }
    return { standardised: stats, pooled };
  } finally {
    await session.release();
  }
}

/** Matches and permutes from the released code's correlations (tap → anchor × other). */
export async function paperPermutations(
  cfg: Model['config'],
  correlations: ReadonlyMap<TapName, Float64Array>,
  opts: Pick<PaperAlignOptions, 'permute' | 'heads' | 'assign' | 'signal' | 'onEvent'>,
): Promise<{ perms: Permutations; report: GroupReport[] }> {
  const perms: Permutations = new Map();
  const report: GroupReport[] = [];
  const assign = opts.assign ?? ((s: Float64Array, n: number) => solveAssignment(s, n, opts.signal ? { signal: opts.signal } : {}));
  const need = (tap: TapName, n: number) => {
    const r = correlations.get(tap);
    if (!r || r.length !== n * n) throw new EngineError('runtime-error', `no ${n}×${n} correlation for tap ${tap}`);
    return r;
  };
  const total = cfg.layers;
  for (let l = 0; l < cfg.layers; l++) {
    if (opts.signal?.aborted) throw new EngineError('cancelled', 'alignment cancelled');
    if (opts.permute.includes('attention') && opts.heads !== 'none') {
      const tap = tapName.attnOut(l);
      const m = matchHeads(need(tap, cfg.hidden), cfg.heads, cfg.headDim, opts.heads === 'reorder');
      perms.set(groupName.attnV(l), m.perm);
      report.push({
        group: groupName.attnV(l),
        kind: 'attn-v',
        source: tap,
        size: cfg.hidden,
        before: m.before,
        after: m.after,
        moved: fractionMoved(m.perm),
        ...(m.blockScores ? { blockScores: m.blockScores } : {}),
      });
    }
    if (opts.permute.includes('ffn')) {
      const tap = tapName.ffn(l);
      const m = await matchUnits(need(tap, cfg.intermediate), cfg.intermediate, assign);
      perms.set(groupName.ffn(l), m.perm);
      report.push({
        group: groupName.ffn(l),
        kind: 'ffn',
        source: tap,
        size: cfg.intermediate,
        before: m.before,
        after: m.after,
        moved: fractionMoved(m.perm),
      });
    }
    opts.onEvent?.({ type: 'progress', stage: 'assign', done: l + 1, total, message: `layer ${l}` });
  }
  return { perms, report };
}

/** The whole method: statistics → correlations → matching → the released code's application. */
export async function alignPaper(anchor: Model, other: Model, probe: ProbeSet, opts: PaperAlignOptions): Promise<PaperAlignResult> {
  const cfg = anchor.config;
  const ignored = opts.permute.filter((p) => p === 'cnn' || p === 'residual');
  const taps = paperTaps(cfg.layers, opts.permute, opts.heads);
  const { standardised: stats, pooled } = await collectPaperStatistics(anchor, other, probe, taps, opts);
  const correlations = new Map<TapName, Float64Array>();
  for (const [tap, s] of stats) {
    correlations.set(tap, standardisedCorrelation(s));
    stats.delete(tap); // the float64 sums go as soon as the correlation exists
  }
  const { perms, report } = await paperPermutations(cfg, correlations, opts);
  return { perms, pooled, permuted: applyPaperPermutations(other.weights, cfg, perms), report, correlations, ignored };
}
