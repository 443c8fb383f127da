/**
 * `align.method: correlation`: per-unit Pearson correlation of both models' activations on the probe audio (one
 * ONNX graph runs both), then linear assignments per group (solve.ts), applied function-preservingly.
 * The heavy modules (onnxruntime) load on first use, so the registry stays importable by the language server.
 */
import { EngineError } from '../../errors';
import type { EncoderConfig } from '../../io/hfconfig';
import { tapName, type TapName } from '../../model/taps';
import type { HeadsMode, PermutePart } from '../../recipe/schema';
import { applyPermutations } from '../permute';
import { permutationsFromCorrelations } from '../solve';
import * as stats from '../stats';
import type { AlignMethod, UnitMoments } from './method';

/** The taps whose correlations drive the requested permutation groups. */
export function correlationTaps(cfg: EncoderConfig, permute: readonly PermutePart[], heads: HeadsMode): TapName[] {
  const taps: TapName[] = [];
  const want = new Set(permute);
  if (want.has('cnn')) cfg.convDims.forEach((_, i) => taps.push(tapName.conv(i)));
  for (let l = 0; l < cfg.layers; l++) {
    if (want.has('attention') && heads !== 'none') taps.push(tapName.attn(l));
    if (want.has('ffn')) taps.push(tapName.ffn(l));
  }
  if (want.has('residual')) {
    taps.push(tapName.proj());
    for (let l = 0; l < cfg.layers; l++) taps.push(tapName.out(l));
  }
  return taps;
}

export const correlation: AlignMethod = {
  name: 'correlation',
  needsProbe: true,
  taps: correlationTaps,
  async align(ctx) {
    const probe = ctx.probe;
    if (!probe) throw new EngineError('bad-recipe', 'align.method correlation needs a probe section');
    const [{ defaultBatchSize, estimateMemory, formatBytes }, { collectStatistics }, { resolveBackend }] = await Promise.all([
      import('../../pipeline/plan'),
      import('../../pipeline/statistics'),
      import('../../model/runtime'),
    ]);
    const cfg = ctx.anchor.config;
    const taps = correlationTaps(cfg, ctx.permute, ctx.heads);
    const backend = await resolveBackend(ctx.session.device ?? 'auto');
    const batchSize = ctx.batchSize ?? defaultBatchSize(cfg, probe.segmentSamples, backend);
    const mem = estimateMemory(cfg, taps, batchSize, probe.segmentSamples);
    ctx.stage('statistics', `${taps.length} taps, batches of ${batchSize} segments (≈ ${formatBytes(mem.statisticsBytes)} of statistics)`);
    const { stats: byTap } = await collectStatistics(ctx.anchor, ctx.other, probe, taps, {
      ...ctx.session,
      batchSize,
      onEvent: ctx.emit,
      signal: ctx.signal,
      ...(ctx.shards ? { shards: ctx.shards } : {}),
      ...(ctx.memory ? { memory: ctx.memory } : {}),
    });
    // Each tap's float64 cross matrix is dropped as soon as its correlation exists (for HuBERT-base the FFN taps
    // alone are ~0.9 GiB), so statistics and correlations are never both held.
    const correlations = new Map<string, Float64Array>();
    const dead = new Map<string, { anchor: number; other: number }>();
    const moments = new Map<TapName, UnitMoments>();
    for (const [tap, s] of byTap) {
      correlations.set(tap, stats.correlation(s));
      dead.set(tap, stats.deadUnits(s));
      const n = Math.max(1, s.n);
      moments.set(tap, {
        meanA: Float64Array.from(s.meanA),
        varA: s.m2A.map((v) => v / n),
        meanB: Float64Array.from(s.meanB),
        varB: s.m2B.map((v) => v / n),
      });
      byTap.delete(tap);
    }
    ctx.stage('assign', 'solving linear assignments');
    const { perms, report } = await permutationsFromCorrelations(
      ctx.spec,
      { taps: correlations },
      {
        permute: ctx.permute,
        heads: ctx.heads,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
        onProgress: (done, total, what) => ctx.emit({ type: 'progress', stage: 'assign', done, total, message: what }),
      },
    );
    if (perms.size > 0) ctx.stage('permute', `applying ${perms.size} permutations to the other model`);
    const permuted = perms.size > 0 ? applyPermutations(ctx.other.weights, ctx.spec, perms) : ctx.other.weights;
    return { perms, report, permuted, functionPreserving: true, correlations, dead, moments };
  },
};
