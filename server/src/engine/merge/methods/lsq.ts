/**
 * `merge.method: lsq` — least-squares refit (after PLeaS, Nasery et al., "PLeaS: Merging Models with Permutations
 * and Least Squares", CVPR 2025). Start from the linear interpolation of the aligned models; then, layer by layer
 * in order, replace the two output projections of each transformer layer (attention `out_proj`, FFN `output_dense`)
 * by the weights whose outputs on the probe audio best match the λ-mix of the endpoints' outputs:
 *
 *   min_W,b  Σ_frames ‖W x_m + b − (λ(W_a x_a + b_a) + (1 − λ)(W_b x_b + b_b))‖² + α‖W − W_lerp‖²
 *
 * where x_m is the layer's input in the merged model (whose earlier layers are already refit) and x_a, x_b the same
 * input in each endpoint on the same audio. Only centred second moments are needed: Cov(x_m, x_m), Cov(x_m, x_a),
 * Cov(x_m, x_b) and the means, which the pair statistics graph (onnxruntime, float64 accumulation) measures with the
 * merged model as one side; the ridge system is solved in float64 (Cholesky). Both projections of a layer are fit
 * from one set of passes (the FFN fit sees the layer's attention before its refit). α = γ·tr(Cov)/p, γ chosen per
 * projection from a grid by the residual on a validation fifth of the probe segments (never the evaluation data).
 */
import { EngineError } from '../../errors';
import type { ProbeSet } from '../../io/probe';
import type { WeightMap } from '../../model/tensor';
import { tapName, type TapName } from '../../model/taps';
import { addMoments, createPairStats, type PairStats } from '../../align/stats';
import { iterateBatches } from '../../io/probe';
import { lambdaForTensor } from '../lambda';
import type { MergeContext, MergeMethod } from './method';
import { ridgeSolve } from './ridge';
import { linear } from './tensorwise';

/** Ridge strengths tried, relative to the mean input variance (tr(Cov)/p). */
export const RIDGE_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1];

interface Site {
  tap: TapName;
  weight: string;
  bias: string;
}

function sites(layer: number): Site[] {
  const p = `encoder.layers.${layer}`;
  return [
    { tap: tapName.attn(layer), weight: `${p}.attention.out_proj.weight`, bias: `${p}.attention.out_proj.bias` },
    { tap: tapName.ffn(layer), weight: `${p}.feed_forward.output_dense.weight`, bias: `${p}.feed_forward.output_dense.bias` },
  ];
}

/** The normal-equation pieces of one projection on one split: Cov(x_m), Cov(x_m, y), the means of x_m and y. */
export interface SiteSystem {
  n: number;
  p: number;
  q: number;
  cxx: Float64Array;
  cxy: Float64Array;
  meanX: Float64Array;
  meanY: Float64Array;
}

/** Combines the three pair statistics of a tap (merged×merged, merged×anchor, merged×other) into the target system. */
export function siteSystem(
  mm: PairStats,
  ma: PairStats,
  mb: PairStats,
  wa: Float32Array,
  ba: Float32Array,
  wb: Float32Array,
  bb: Float32Array,
  lambda: number,
): SiteSystem {
  const p = mm.dimA;
  const q = ba.length;
  const cxy = new Float64Array(p * q);
  const ya = new Float64Array(q);
  const yb = new Float64Array(q);
  for (let c = 0; c < q; c++) {
    let sa = ba[c]!;
    let sb = bb[c]!;
    for (let j = 0; j < p; j++) {
      sa += wa[c * p + j]! * ma.meanB[j]!;
      sb += wb[c * p + j]! * mb.meanB[j]!;
    }
    ya[c] = sa;
    yb[c] = sb;
  }
  for (let i = 0; i < p; i++) {
    for (let c = 0; c < q; c++) {
      let s = 0;
      for (let j = 0; j < p; j++)
        s += lambda * ma.cross[i * p + j]! * wa[c * p + j]! + (1 - lambda) * mb.cross[i * p + j]! * wb[c * p + j]!;
      cxy[i * q + c] = s;
    }
  }
  return { n: mm.n, p, q, cxx: mm.cross, cxy, meanX: mm.meanA, meanY: ya.map((v, c) => lambda * v + (1 - lambda) * yb[c]!) };
}

/** Ridge fit (W, b) of a system: W from the centred equations, b = ȳ − W x̄. */
export function fitSite(s: SiteSystem, gamma: number, prior: Float32Array): { w: Float64Array; b: Float64Array } {
  let trace = 0;
  for (let i = 0; i < s.p; i++) trace += s.cxx[i * s.p + i]!;
  const w = ridgeSolve(s.cxx, s.cxy, s.p, s.q, (gamma * trace) / s.p, prior);
  const b = new Float64Array(s.q);
  for (let c = 0; c < s.q; c++) {
    let v = s.meanY[c]!;
    for (let j = 0; j < s.p; j++) v -= w[c * s.p + j]! * s.meanX[j]!;
    b[c] = v;
  }
  return { w, b };
}

/** Σ over frames of ‖W x + b − y‖² up to a constant that does not depend on (W, b), from a split's system. */
export function residual(s: SiteSystem, w: Float64Array, b: Float64Array): number {
  let loss = 0;
  for (let c = 0; c < s.q; c++) {
    let quad = 0;
    let lin = 0;
    let offset = b[c]! - s.meanY[c]!;
    for (let i = 0; i < s.p; i++) {
      const wi = w[c * s.p + i]!;
      let row = 0;
      for (let j = 0; j < s.p; j++) row += s.cxx[i * s.p + j]! * w[c * s.p + j]!;
      quad += wi * row;
      lin += wi * s.cxy[i * s.q + c]!;
      offset += wi * s.meanX[i]!;
    }
    loss += quad - 2 * lin + s.n * offset * offset;
  }
  return loss;
}

function splitProbe(probe: ProbeSet): { train: ProbeSet; validation: ProbeSet } {
  const part = (keep: (i: number) => boolean): ProbeSet => {
    const segments = probe.segments.filter((_, i) => keep(i));
    return { ...probe, segments, totalSegments: segments.length, totalSeconds: segments.length * probe.segmentSeconds };
  };
  return { train: part((i) => i % 5 !== 4), validation: part((i) => i % 5 === 4) };
}

export const lsq: MergeMethod = {
  name: 'lsq',
  needsProbe: true,
  interpolation: 'linear',
  async merge(ctx: MergeContext) {
    if (!ctx.probe) throw new EngineError('bad-recipe', 'merge.method lsq needs a probe section');
    const { train, validation } = splitProbe(ctx.probe);
    if (validation.segments.length === 0)
      throw new EngineError('bad-recipe', 'merge.method lsq needs at least 5 probe segments (a fifth of them chooses the ridge strength)');
    const [{ PairStatisticsSession }, { defaultBatchSize }] = await Promise.all([
      import('../../model/pair-graph'),
      import('../../pipeline/plan'),
    ]);
    const cfg = ctx.config;
    const batchSize = ctx.batchSize ?? defaultBatchSize(cfg, ctx.probe.segmentSamples);
    const lambdaCtx = { layers: cfg.layers, preLayerNorm: cfg.preLayerNorm };
    let merged: WeightMap = await linear.merge(ctx);
    for (let l = 0; l < cfg.layers; l++) {
      if (ctx.signal?.aborted) throw new EngineError('cancelled', 'cancelled during the least-squares refit');
      ctx.emit({ type: 'log', level: 'info', message: `lsq: refitting layer ${l} of ${cfg.layers}` });
      const layerSites = sites(l);
      const taps = layerSites.map((s) => s.tap);
      const m = { config: cfg, weights: merged };
      // One session per model pair; its batches feed the fit or the validation statistics.
      const measure = async (other: WeightMap) => {
        const session = await PairStatisticsSession.create(m, { config: cfg, weights: other }, taps, ctx.session);
        try {
          const parts = [train, validation].map(() => new Map<TapName, PairStats>());
          for (const [k, probe] of [train, validation].entries()) {
            for (const batch of iterateBatches(probe, batchSize)) {
              if (ctx.signal?.aborted) throw new EngineError('cancelled', 'cancelled during the least-squares refit');
              for (const mo of await session.run(batch.data, batch.dims[0])) {
                let s = parts[k]!.get(mo.tap);
                if (!s) parts[k]!.set(mo.tap, (s = createPairStats(mo.dimA, mo.dimB)));
                addMoments(s, mo);
              }
            }
          }
          return parts;
        } finally {
          await session.release();
        }
      };
      const [mm, ma, mb] = [await measure(merged), await measure(ctx.anchor), await measure(ctx.other)];
      const fit = { mm: mm![0]!, ma: ma![0]!, mb: mb![0]! };
      const check = { mm: mm![1]!, ma: ma![1]!, mb: mb![1]! };
      const next: WeightMap = new Map(merged);
      for (const site of layerSites) {
        const t = (w: WeightMap, name: string) => w.get(name)!.data;
        const lambda = lambdaForTensor(site.weight, ctx.lambda, lambdaCtx);
        const args = [
          t(ctx.anchor, site.weight),
          t(ctx.anchor, site.bias),
          t(ctx.other, site.weight),
          t(ctx.other, site.bias),
          lambda,
        ] as const;
        const sys = siteSystem(fit.mm.get(site.tap)!, fit.ma.get(site.tap)!, fit.mb.get(site.tap)!, ...args);
        const val = siteSystem(check.mm.get(site.tap)!, check.ma.get(site.tap)!, check.mb.get(site.tap)!, ...args);
        const prior = t(merged, site.weight);
        let best: { loss: number; w: Float64Array; b: Float64Array } | undefined;
        for (const gamma of RIDGE_GRID) {
          const f = fitSite(sys, gamma, prior);
          const loss = residual(val, f.w, f.b);
          if (!best || loss < best.loss) best = { loss, ...f };
        }
        const shape = merged.get(site.weight)!.shape;
        next.set(site.weight, { shape: [...shape], data: Float32Array.from(best!.w) });
        next.set(site.bias, { shape: [best!.b.length], data: Float32Array.from(best!.b) });
      }
      merged = next;
    }
    return merged;
  },
};
