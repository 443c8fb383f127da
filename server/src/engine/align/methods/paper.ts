/**
 * `align.method: paper`: what the paper's released code computes (align/paper/), for reproducing the paper beside
 * the exact `correlation` method. Its permuted model is not function-preserving, so the self-check reports the
 * deviation instead of failing the run. Its compute (onnxruntime) loads on first use, so the registry stays
 * importable by the language server.
 */
import { EngineError } from '../../errors';
import { PAPER_FUNCTION_PRESERVING, paperTaps } from '../paper/taps';
import { deadUnits, type PairStats } from '../stats';
import type { AlignMethod, UnitMoments } from './method';

export const paper: AlignMethod = {
  name: 'paper',
  needsProbe: true,
  taps: (cfg, permute, heads) => paperTaps(cfg.layers, permute, heads),
  async align(ctx) {
    const probe = ctx.probe;
    if (!probe) throw new EngineError('bad-recipe', 'align.method paper needs a probe section');
    const [{ defaultBatchSize }, { alignPaper }] = await Promise.all([import('../../pipeline/plan'), import('../paper')]);
    const cfg = ctx.anchor.config;
    const batchSize = ctx.batchSize ?? defaultBatchSize(cfg, probe.segmentSamples);
    const taps = paperTaps(cfg.layers, ctx.permute, ctx.heads);
    ctx.stage(
      'statistics',
      `${taps.length} taps as the released code hooks them, per-batch standardised, batches of ${batchSize} segments`,
    );
    const r = await alignPaper(ctx.anchor, ctx.other, probe, {
      ...ctx.session,
      permute: ctx.permute,
      heads: ctx.heads,
      batchSize,
      onEvent: ctx.emit,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    });
    if (r.ignored.length)
      ctx.emit({
        type: 'log',
        level: 'warning',
        message: `align.method paper: the released code's default graph aligns ffn and attention only; ${r.ignored.join(', ')} left as they are`,
      });
    const dead = new Map<string, { anchor: number; other: number }>();
    const moments = new Map<(typeof taps)[number], UnitMoments>();
    for (const [tap, p] of r.pooled) {
      // deadUnits reads n and the per-unit M2 only.
      dead.set(
        tap,
        deadUnits({
          dimA: p.meanA.length,
          dimB: p.meanB.length,
          n: p.n,
          meanA: p.meanA,
          meanB: p.meanB,
          m2A: p.m2A,
          m2B: p.m2B,
          cross: new Float64Array(0),
        } satisfies PairStats),
      );
      const n = Math.max(1, p.n);
      moments.set(tap, { meanA: p.meanA, varA: p.m2A.map((v) => v / n), meanB: p.meanB, varB: p.m2B.map((v) => v / n) });
    }
    return {
      perms: r.perms,
      report: r.report,
      permuted: r.permuted,
      functionPreserving: PAPER_FUNCTION_PRESERVING,
      correlations: r.correlations,
      dead,
      moments,
    };
  },
};
