/**
 * `merge.method: lsq` — least-squares refit (after PLeaS, Nasery et al., "PLeaS: Merging Models with Permutations
 * and Least Squares", CVPR 2025). Start from the linear interpolation of the aligned models (with `merge.width` > 1,
 * from its zipped form: the unmerged FFN units are then inputs of the output_dense refit); then, layer by layer and
 * within a layer in forward order, replace each refit projection (`merge.lsq.refit`: q/k/v_proj, out_proj,
 * intermediate_dense, output_dense) by the weights whose outputs on the probe audio best match the λ-mix of the
 * endpoints' outputs:
 *
 *   min_W,b  Σ_frames ‖W x + b − (λ(W_a x_a + b_a) + (1 − λ)(W_b x_b + b_b))‖² + α‖W − W_lerp‖²
 *
 * where x is the projection's input in the merged model (whose earlier projections are already refit) and x_a, x_b
 * the same input in each endpoint on the same audio. With `merge.lsq.targets: routed` each probe domain's frames are
 * fit to that model's outputs instead, weighted λ and 1 − λ (lsq-targets.ts). intermediate_dense matches
 * pre-activations. Only centred moments are needed: Cov(x), Cov(x, x_a), Cov(x, x_b) and the means, reduced per
 * batch in onnxruntime (lsq-graph.ts) and combined in float64; Cov(x, y) = λ Cov(x, x_a) W_aᵀ + (1 − λ) Cov(x, x_b)
 * W_bᵀ is a float64 GEMM in onnxruntime (gemm64.ts), and the ridge system (XᵀX + αI)Wᵀ = XᵀY + αW_lerpᵀ is solved
 * in float64 (ridge.ts), b = ȳ − W x̄.
 * α = γ·tr(Cov(x))/p. `merge.lsq.ridge` fixes γ; with `auto` γ is chosen per projection from RIDGE_GRID by the
 * residual on a held-out fifth of the probe segments (never the evaluation data), then refit on all segments.
 */
import { EngineError } from '../../errors';
import { iterateBatches, type ProbeSet } from '../../io/probe';
import type { WeightMap } from '../../model/tensor';
import { addMoments, createPairStats, mergeStats, type PairStats } from '../../align/stats';
import { recipeSchema, type LsqProjection } from '../../recipe/schema';
import { lambdaForTensor } from '../lambda';
import { Gemm64 } from './gemm64';
import { layerStages, TripleSession, type LsqSite, type LsqStage, type TripleStates } from './lsq-graph';
import type { MergeContext, MergeMethod } from './method';
import { teacherSplits, teacherStage, teacherWeight, weightedSystem, type StageSystem, type Teacher } from './lsq-targets';
import { ridgeSolve } from './ridge';
import { linear } from './tensorwise';

/** Ridge strengths γ tried when `merge.lsq.ridge` is auto, relative to the mean input variance (tr(Cov)/p). */
export const RIDGE_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1];

const LSQ_KEYS = recipeSchema.properties.merge.properties.lsq.properties;
const DEFAULT_REFIT: readonly LsqProjection[] = LSQ_KEYS.refit.default;

export type { StageSystem } from './lsq-targets';

/**
 * A stage's accumulated moments: inputs (A = x, B = [x, x_a, x_b]), targets (A = y) and, for a residual stage, the
 * streams' part of the target (A = d, B = x), see lsq-graph.ts.
 */
export interface StageStats {
  inputs: PairStats;
  targets: PairStats;
  drift?: PairStats;
}

/** Concatenated weights of the stage's projections in one model, transposed (p × q, float64) for Cov(x, x_e)·Wᵀ. */
function stackedTranspose(w: WeightMap, stage: LsqStage): { wt: Float64Array; bias: Float64Array; lambdas: Float64Array } {
  const mats = stage.sites.map((s) => w.get(s.weight)!);
  const p = mats[0]!.shape[1]!;
  const q = mats.reduce((k, m) => k + m.shape[0]!, 0);
  const wt = new Float64Array(p * q);
  const bias = new Float64Array(q);
  const lambdas = new Float64Array(q);
  let row = 0;
  for (const [k, m] of mats.entries()) {
    const rows = m.shape[0]!;
    for (let r = 0; r < rows; r++) for (let j = 0; j < p; j++) wt[j * q + row + r] = m.data[r * p + j]!;
    bias.set(w.get(stage.sites[k]!.bias)!.data, row);
    lambdas.fill(stage.sites[k]!.lambda, row, row + rows);
    row += rows;
  }
  return { wt, bias, lambdas };
}

/**
 * The normal equations of a stage from its moments: Cov(x) as measured, the right-hand side
 * Cov(x, y) = Cov(x, x_a)·W_aᵀ·diag(λ) + Cov(x, x_b)·W_bᵀ·diag(1 − λ) (float64 GEMMs in onnxruntime) and
 * ȳ = λ(W_a x̄_a + b_a) + (1 − λ)(W_b x̄_b + b_b).
 */
export async function stageSystem(
  stats: StageStats,
  stage: LsqStage,
  anchor: WeightMap,
  other: WeightMap,
  gemm: Gemm64,
): Promise<StageSystem> {
  const s = stats.inputs;
  // Input widths: the merged model's (p) and each endpoint's. They differ at output_dense when zipping widened the
  // merged FFN (pipeline/systems.ts zips before a method that refits its start).
  const p = s.dimA;
  const pa = anchor.get(stage.sites[0]!.weight)!.shape[1]!;
  const pb = other.get(stage.sites[0]!.weight)!.shape[1]!;
  if (s.dimB !== p + pa + pb) throw new Error(`internal: lsq stage moments of ${s.dimB} columns, expected ${p} + ${pa} + ${pb}`);
  // Columns [from, from + width) of the p × (p + pa + pb) cross moments.
  const block = (from: number, width: number) => {
    const out = new Float64Array(p * width);
    for (let i = 0; i < p; i++) out.set(s.cross.subarray(i * s.dimB + from, i * s.dimB + from + width), i * width);
    return out;
  };
  const a = stackedTranspose(anchor, stage);
  const b = stackedTranspose(other, stage);
  const q = a.bias.length;
  const [ya, yb] = [await gemm.matmul(block(p, pa), a.wt, p, pa, q), await gemm.matmul(block(p + pa, pb), b.wt, p, pb, q)];
  const cxy = new Float64Array(p * q);
  for (let i = 0; i < p; i++) {
    for (let c = 0; c < q; c++) cxy[i * q + c] = a.lambdas[c]! * ya[i * q + c]! + (1 - a.lambdas[c]!) * yb[i * q + c]!;
  }
  const meanY = new Float64Array(q);
  for (let c = 0; c < q; c++) {
    let va = a.bias[c]!;
    let vb = b.bias[c]!;
    for (let j = 0; j < pa; j++) va += a.wt[j * q + c]! * s.meanB[p + j]!;
    for (let j = 0; j < pb; j++) vb += b.wt[j * q + c]! * s.meanB[p + pa + j]!;
    meanY[c] = a.lambdas[c]! * va + (1 - a.lambdas[c]!) * vb;
  }
  // A residual stage's target adds d (the endpoints' streams less the merged one's, mixed): measured Cov(x, d), d̄.
  const d = stats.drift;
  if (d) {
    for (let c = 0; c < q; c++) {
      meanY[c] += d.meanA[c]!;
      for (let i = 0; i < p; i++) cxy[i * q + c] += d.cross[c * p + i]!;
    }
  }
  return { n: s.n, p, q, cxx: block(0, p), cxy, meanX: s.meanA.slice(), meanY, m2Y: stats.targets.m2A.slice() };
}

/** Columns [from, to) of the targets: one projection's part of a stage system. */
export function columns(s: StageSystem, from: number, to: number): StageSystem {
  const q = to - from;
  const cxy = new Float64Array(s.p * q);
  for (let i = 0; i < s.p; i++) cxy.set(s.cxy.subarray(i * s.q + from, i * s.q + to), i * q);
  return { ...s, q, cxy, meanY: s.meanY.slice(from, to), m2Y: s.m2Y.slice(from, to) };
}

/** Ridge fit (W q×p, b) of a system toward `prior`: W from the centred equations, b = ȳ − W x̄. */
export function fitSystem(s: StageSystem, gamma: number, prior: ArrayLike<number>): { w: Float64Array; b: Float64Array } {
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

/**
 * Σ over the system's frames of ‖W x + b − y‖², exactly, from its moments:
 * tr(W Cxx Wᵀ) − 2 tr(W Cxy) + Σ(y − ȳ)² + n‖W x̄ + b − ȳ‖². The q×p×p product W·Cxx runs in onnxruntime (float64).
 */
export async function residual(s: StageSystem, w: Float64Array, b: Float64Array, gemm: Gemm64): Promise<number> {
  const wc = await gemm.matmul(w, s.cxx, s.q, s.p, s.p);
  let loss = 0;
  for (let c = 0; c < s.q; c++) {
    let offset = b[c]! - s.meanY[c]!;
    let quad = 0;
    let lin = 0;
    for (let i = 0; i < s.p; i++) {
      const wi = w[c * s.p + i]!;
      quad += wi * wc[c * s.p + i]!;
      lin += wi * s.cxy[i * s.q + c]!;
      offset += wi * s.meanX[i]!;
    }
    loss += quad - 2 * lin + s.m2Y[c]! + s.n * offset * offset;
  }
  return loss;
}

function splitProbe(probe: ProbeSet): { fit: ProbeSet; holdout: ProbeSet } {
  const part = (keep: (i: number) => boolean): ProbeSet => {
    const segments = probe.segments.filter((_, i) => keep(i));
    return { ...probe, segments, totalSegments: segments.length, totalSeconds: segments.length * probe.segmentSeconds };
  };
  return { fit: part((i) => i % 5 !== 4), holdout: part((i) => i % 5 === 4) };
}

/** One projection's slice of its stage: target columns and the current (linear-merge) weights as the ridge prior. */
interface SitePart {
  site: LsqSite;
  from: number;
  to: number;
}

function siteParts(stage: LsqStage, merged: WeightMap): SitePart[] {
  let from = 0;
  return stage.sites.map((site) => {
    const q = merged.get(site.weight)!.shape[0]!;
    const part = { site, from, to: from + q };
    from += q;
    return part;
  });
}

/** One teacher's frames of a probe part (fit or held out), measured with that teacher's targets. */
export interface MeasuredPart {
  stats: StageStats;
  teacher: Teacher;
}

/** A stage's systems per teacher; `columns` of a site, weighted by teacher (routed) into one system. */
async function teacherSystems(
  measured: MeasuredPart[],
  stage: LsqStage,
  anchor: WeightMap,
  other: WeightMap,
  gemm: Gemm64,
): Promise<{ teacher: Teacher; system: StageSystem }[]> {
  const out = [];
  for (const m of measured)
    out.push({ teacher: m.teacher, system: await stageSystem(m.stats, teacherStage(stage, m.teacher), anchor, other, gemm) });
  return out;
}

function siteSystem(systems: { teacher: Teacher; system: StageSystem }[], part: SitePart): StageSystem {
  return weightedSystem(
    systems.map(({ teacher, system }) => ({
      system: columns(system, part.from, part.to),
      weight: teacherWeight(teacher, part.site.lambda),
    })),
  );
}

/** Fit and held-out parts of the same teacher, combined. */
function pooled(fit: MeasuredPart[], held: MeasuredPart[]): MeasuredPart[] {
  return [...new Set([...fit, ...held].map((m) => m.teacher))].map((teacher) => {
    const ms = [...fit, ...held].filter((m) => m.teacher === teacher);
    return {
      teacher,
      stats: ms.slice(1).reduce(
        (acc, m) => ({
          inputs: mergeStats(acc.inputs, m.stats.inputs),
          targets: mergeStats(acc.targets, m.stats.targets),
          ...(acc.drift ? { drift: mergeStats(acc.drift, m.stats.drift!) } : {}),
        }),
        ms[0]!.stats,
      ),
    };
  });
}

/**
 * Refits a stage's projections from its measured moments (`fit`: all frames with a fixed γ, else the fit part and
 * `held` the held-out fifth; one entry per teacher): returns the merged weights with the new projections.
 */
async function refitStage(
  stage: LsqStage,
  fitParts: MeasuredPart[],
  heldParts: MeasuredPart[] | undefined,
  merged: WeightMap,
  fixedGamma: number | undefined,
  ctx: MergeContext,
  gemm: Gemm64,
  layer: number,
): Promise<WeightMap> {
  const systems = (ms: MeasuredPart[]) => teacherSystems(ms, stage, ctx.anchor, ctx.other, gemm);
  const all = await systems(heldParts ? pooled(fitParts, heldParts) : fitParts);
  const [fitSys, heldSys] = heldParts ? [await systems(fitParts), await systems(heldParts)] : [];
  const next: WeightMap = new Map(merged);
  const notes: string[] = [];
  for (const part of siteParts(stage, merged)) {
    const prior = merged.get(part.site.weight)!.data;
    let gamma = fixedGamma;
    if (gamma === undefined) {
      const fit = siteSystem(fitSys!, part);
      const held = siteSystem(heldSys!, part);
      let best = Infinity;
      for (const g of RIDGE_GRID) {
        const f = fitSystem(fit, g, prior);
        const loss = await residual(held, f.w, f.b, gemm);
        if (loss < best) [best, gamma] = [loss, g];
      }
    }
    const sys = siteSystem(all, part);
    const f = fitSystem(sys, gamma!, prior);
    let total = 0;
    for (const v of sys.m2Y) total += v;
    const left = Math.max(0, await residual(sys, f.w, f.b, gemm)) / Math.max(total, Number.MIN_VALUE);
    notes.push(`${part.site.name} γ=${gamma} residual ${left.toExponential(2)}`);
    next.set(part.site.weight, { shape: [...merged.get(part.site.weight)!.shape], data: Float32Array.from(f.w) });
    next.set(part.site.bias, { shape: [f.b.length], data: Float32Array.from(f.b) });
  }
  ctx.emit({ type: 'log', level: 'info', message: `lsq: layer ${layer} ${notes.join(', ')} (of the target's variance)` });
  return next;
}

export const lsq: MergeMethod = {
  name: 'lsq',
  needsProbe: true,
  interpolation: 'linear',
  refinesStart: true,
  async merge(ctx: MergeContext) {
    if (!ctx.probe) throw new EngineError('bad-recipe', 'merge.method lsq needs a probe section');
    const refit = ctx.lsq?.refit ?? DEFAULT_REFIT;
    const ridge = ctx.lsq?.ridge ?? LSQ_KEYS.ridge.default;
    const fixedGamma = ridge === 'auto' ? undefined : ridge;
    const parts = fixedGamma === undefined ? splitProbe(ctx.probe) : { fit: ctx.probe, holdout: undefined };
    if (parts.holdout && parts.holdout.segments.length === 0)
      throw new EngineError(
        'bad-recipe',
        'merge.method lsq needs at least 5 probe segments to choose its ridge strength on a fifth of them (or set merge.lsq.ridge)',
      );
    const { defaultBatchSize } = await import('../../pipeline/plan');
    const cfg = ctx.config;
    const batchSize = ctx.batchSize ?? defaultBatchSize(cfg, ctx.probe.segmentSamples);
    const lambdaCtx = { layers: cfg.layers, preLayerNorm: cfg.preLayerNorm };
    const anchor = { config: cfg, weights: ctx.anchor };
    const other = { config: cfg, weights: ctx.other };
    const cancelled = () => new EngineError('cancelled', 'cancelled during the least-squares refit');
    // Splits: each teacher's part of the fit segments, then of the held-out ones (auto ridge).
    const targets = ctx.lsq?.targets ?? LSQ_KEYS.targets.default;
    const residual = ctx.lsq?.residual ?? LSQ_KEYS.residual.default;
    const fitSplits = teacherSplits(parts.fit, targets);
    const heldSplits = parts.holdout ? teacherSplits(parts.holdout, targets) : [];
    const splits = [...fitSplits, ...heldSplits];
    // The start: the linear merge, or the zipped one (wider FFN) that the pipeline passes with merge.width > 1.
    const mergedConfig = ctx.start?.config ?? cfg;
    let merged: WeightMap = ctx.start?.weights ?? (await linear.merge(ctx));
    for (const stage of layerStages(0, refit, () => 0)) {
      for (const site of stage.sites) {
        if (merged.get(site.weight)!.shape[0] !== ctx.anchor.get(site.weight)!.shape[0])
          throw new EngineError(
            'bad-recipe',
            `merge.lsq.refit: ${site.name} cannot be refit on a zipped FFN (merge.width > 1 gives it more units than either model has); refit out_proj and output_dense, or set merge.width: 1`,
          );
      }
    }
    // Every batch of every split, in order: results[split][batch]. One session per distinct graph: a stage's graph
    // forms its teacher's targets, so routed splits of different teachers run in their own sessions.
    const pass = async <T>(
      what: (split: number) => Parameters<typeof TripleSession.create>[1],
      inputs: (split: number) => Iterable<{ audio: Float32Array; batch: number } | TripleStates>,
      use: (out: Awaited<ReturnType<TripleSession['run']>>) => T,
    ): Promise<T[][]> => {
      const results: T[][] = splits.map(() => []);
      const graphs = new Map<string, number[]>();
      for (const k of splits.keys()) {
        const key = JSON.stringify(what(k));
        graphs.set(key, [...(graphs.get(key) ?? []), k]);
      }
      for (const ks of graphs.values()) {
        const session = await TripleSession.create(
          { merged: { config: mergedConfig, weights: merged }, anchor, other },
          what(ks[0]!),
          ctx.session,
        );
        try {
          for (const k of ks) {
            for (const input of inputs(k)) {
              if (ctx.signal?.aborted) throw cancelled();
              results[k]!.push(use(await session.run(input)));
            }
          }
        } finally {
          await session.release();
        }
      }
      return results;
    };
    // Hidden states of the three models entering the current layer, per split and batch (3 × frames × hidden floats
    // for the whole probe: the front end and earlier layers run once, not once per stage).
    let states = await pass(
      () => ({ layer: 'front', next: true }),
      (k) => Array.from(iterateBatches(splits[k]!.probe, batchSize), (batch) => ({ audio: batch.data, batch: batch.dims[0] })),
      (out) => out.next!,
    );
    const gemm = await Gemm64.create(ctx.session);
    try {
      for (let l = 0; l < cfg.layers; l++) {
        for (const stage of layerStages(l, refit, (t) => lambdaForTensor(t, ctx.lambda, lambdaCtx), residual)) {
          // One pass of the three models through layer l: this stage's moments per split (teacher, fit / held out).
          const measured: MeasuredPart[] = (
            await pass(
              (k) => ({ layer: l, stage: teacherStage(stage, splits[k]!.teacher), next: false }),
              (k) => states[k]!,
              (out) => out.moments!,
            )
          ).map((batches, k) => {
            const first = batches[0]!;
            const stats = {
              inputs: createPairStats(first.inputs.meanA.length, first.inputs.meanB.length),
              targets: createPairStats(first.targets.meanA.length, 0),
              ...(first.drift ? { drift: createPairStats(first.drift.meanA.length, first.drift.meanB.length) } : {}),
            } as StageStats;
            for (const m of batches) {
              addMoments(stats.inputs, m.inputs);
              addMoments(stats.targets, m.targets);
              if (stats.drift) addMoments(stats.drift, m.drift!);
            }
            return { stats, teacher: splits[k]!.teacher };
          });
          const held = parts.holdout ? measured.slice(fitSplits.length) : undefined;
          merged = await refitStage(stage, measured.slice(0, fitSplits.length), held, merged, fixedGamma, ctx, gemm, l);
        }
        // The refit layer's outputs (and the endpoints') enter the next layer.
        if (l + 1 < cfg.layers)
          states = await pass(
            () => ({ layer: l, next: true }),
            (k) => states[k]!,
            (out) => out.next!,
          );
      }
    } finally {
      await gemm.release();
    }
    return merged;
  },
};
