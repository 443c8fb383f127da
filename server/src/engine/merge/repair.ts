/**
 * Statistics repair (REPAIR, Jordan et al., "REPAIR: REnormalizing Permuted Activations for Interpolation Repair",
 * ICLR 2023). Interpolating two aligned networks shrinks the variance of their units ("variance collapse"); REPAIR
 * rescales and shifts each unit of the merged model so that its mean and std on data equal the λ-mix of the two
 * endpoints' (μ = λμ_a + (1 − λ)μ_b, σ = λσ_a + (1 − λ)σ_b).
 *
 * Units repaired: every transformer layer's FFN units (tap layer.{l}.ffn, after the activation) and attention value
 * dimensions (tap layer.{l}.attn, the heads' context before out_proj). Both feed one linear layer, so the affine
 * correction h ↦ a⊙h + c folds exactly into that consumer: W ↦ W·diag(a), b ↦ b + W·c (output_dense, out_proj). The
 * merged checkpoint keeps its shapes and stays a plain HF model; where the unit lives (pre- or post-LN layout) does
 * not matter, since the fold is before the residual add. The conv feature extractor is left as it is: HuBERT-style
 * convs have no bias to absorb the shift.
 *
 * Order: all units are corrected from one pass of the merged model, then the pass is repeated (`rounds`, default 2)
 * on the corrected model and the corrections recomputed from the original consumers: repairing early layers changes
 * later layers' statistics, and a second round takes that into account at the cost of one more pass (a full
 * layer-by-layer sweep would need one pass per layer). Per-unit moments are reduced inside onnxruntime (ReduceMean
 * over batch and frames) and accumulated in float64.
 */
import * as ort from 'onnxruntime-node';
import { EngineError } from '../errors';
import type { EncoderConfig } from '../io/hfconfig';
import { iterateBatches, type ProbeSet } from '../io/probe';
import { addEncoder } from '../model/encoder-graph';
import { GraphBuilder } from '../model/graph-builder';
import { createSession, type SessionOptions } from '../model/runtime';
import type { WeightMap } from '../model/tensor';
import { tapName, type TapName } from '../model/taps';
import { lambdaForTensor, type LambdaSpec } from './lambda';

export interface Moments {
  mean: Float64Array;
  variance: Float64Array;
}

export interface MomentOptions extends SessionOptions {
  batchSize: number;
  signal?: AbortSignal;
}

/** Per-unit mean and (population) variance of frames-first taps over all probe frames, for one model. */
export async function unitMoments(
  model: { config: EncoderConfig; weights: WeightMap },
  probe: ProbeSet,
  taps: readonly TapName[],
  opts: MomentOptions,
): Promise<Map<TapName, Moments>> {
  const b = new GraphBuilder();
  const audio = b.input('audio', ['batch', 'samples']);
  const values = addEncoder(b, model.config, model.weights, audio);
  for (const tap of taps) {
    if (tap.startsWith('conv.')) throw new Error(`internal: unitMoments reads frames-first taps, not ${tap}`);
    const x = values.get(tap);
    if (!x) throw new Error(`internal: tap ${tap} missing from the encoder graph`);
    b.output(b.op('ReduceMean', [x], { axes: [0, 1], keepdims: 0 }), `${tap}:mean`);
    b.output(b.op('ReduceMean', [b.op('Mul', [x, x])], { axes: [0, 1], keepdims: 0 }), `${tap}:square`);
  }
  const session = await createSession(b.encode('merge_studio_unit_moments'), opts);
  const sums = new Map<TapName, { mean: Float64Array; square: Float64Array }>();
  let rows = 0;
  try {
    for (const batch of iterateBatches(probe, opts.batchSize)) {
      if (opts.signal?.aborted) throw new EngineError('cancelled', 'cancelled while measuring unit statistics');
      const out = await session.run(
        { audio: new ort.Tensor('float32', batch.data, batch.dims) },
        taps.flatMap((t) => [`${t}:mean`, `${t}:square`]),
      );
      // Equal-length segments: every batch row has the same frame count, so batch means weight by rows.
      const n = batch.dims[0];
      for (const tap of taps) {
        const mean = out[`${tap}:mean`]!.data as Float32Array;
        const square = out[`${tap}:square`]!.data as Float32Array;
        let s = sums.get(tap);
        if (!s) sums.set(tap, (s = { mean: new Float64Array(mean.length), square: new Float64Array(mean.length) }));
        for (let i = 0; i < mean.length; i++) {
          s.mean[i] += n * mean[i]!;
          s.square[i] += n * square[i]!;
        }
      }
      rows += n;
    }
  } finally {
    await session.release();
  }
  const result = new Map<TapName, Moments>();
  for (const [tap, s] of sums) {
    const mean = s.mean.map((v) => v / rows);
    const variance = s.square.map((v, i) => Math.max(0, v / rows - mean[i]! * mean[i]!));
    result.set(tap, { mean, variance });
  }
  return result;
}

/** A repaired unit set: the tap it is measured at and the linear layer that consumes it. */
export interface RepairSite {
  tap: TapName;
  /** Consumer weight [out, units] and bias [out]. */
  weight: string;
  bias: string;
}

export function repairSites(cfg: EncoderConfig): RepairSite[] {
  const sites: RepairSite[] = [];
  for (let l = 0; l < cfg.layers; l++) {
    const p = `encoder.layers.${l}`;
    sites.push({ tap: tapName.attn(l), weight: `${p}.attention.out_proj.weight`, bias: `${p}.attention.out_proj.bias` });
    sites.push({ tap: tapName.ffn(l), weight: `${p}.feed_forward.output_dense.weight`, bias: `${p}.feed_forward.output_dense.bias` });
  }
  return sites;
}

/** Target moments per unit of a site: what the unit's mean and std should be in the merged model. */
export interface UnitTargets {
  mean: Float64Array;
  std: Float64Array;
}

/** λ-mix of the endpoints' moments (both in the merged model's unit order). */
export function mixTargets(a: Moments, b: Moments, lambda: number): UnitTargets {
  const mean = a.mean.map((m, i) => lambda * m + (1 - lambda) * b.mean[i]!);
  const std = a.variance.map((v, i) => lambda * Math.sqrt(v) + (1 - lambda) * Math.sqrt(b.variance[i]!));
  return { mean, std };
}

/**
 * Folds h ↦ a⊙h + c into the consumer (W ↦ W·diag(a), b ↦ b + W·c, in float64) with a = σ_target/σ_measured and
 * c = μ_target − a·μ_measured; a unit that is (nearly) constant in the merged model keeps a = 1 and only shifts.
 */
export function foldCorrection(
  weight: Float32Array,
  bias: Float32Array,
  units: number,
  measured: Moments,
  target: UnitTargets,
): { weight: Float32Array; bias: Float32Array } {
  const out = bias.length;
  const a = new Float64Array(units);
  const c = new Float64Array(units);
  let meanVar = 0;
  for (let i = 0; i < units; i++) meanVar += measured.variance[i]!;
  const floor = 1e-12 * (meanVar / Math.max(1, units));
  for (let i = 0; i < units; i++) {
    const v = measured.variance[i]!;
    a[i] = v > floor ? target.std[i]! / Math.sqrt(v) : 1;
    c[i] = target.mean[i]! - a[i]! * measured.mean[i]!;
  }
  const w = new Float32Array(weight.length);
  const nb = new Float32Array(out);
  for (let o = 0; o < out; o++) {
    let shift = bias[o]!;
    for (let i = 0; i < units; i++) {
      const x = weight[o * units + i]!;
      w[o * units + i] = x * a[i]!;
      shift += x * c[i]!;
    }
    nb[o] = shift;
  }
  return { weight: w, bias: nb };
}

export interface RepairInputs {
  config: EncoderConfig;
  merged: WeightMap;
  lambda: LambdaSpec;
  /** Target moments per site tap, in the merged model's unit order. */
  targets: (tap: TapName, lambda: number) => UnitTargets;
  probe: ProbeSet;
  rounds?: number;
  moments: MomentOptions;
}

export async function repairStatistics(r: RepairInputs): Promise<WeightMap> {
  const cfg = r.config;
  const sites = repairSites(cfg);
  const taps = sites.map((s) => s.tap);
  const ctx = { layers: cfg.layers, preLayerNorm: cfg.preLayerNorm };
  let weights = r.merged;
  for (let round = 0; round < (r.rounds ?? 2); round++) {
    const measured = await unitMoments({ config: cfg, weights }, r.probe, taps, r.moments);
    const next: WeightMap = new Map(weights);
    for (const site of sites) {
      // Corrections are always relative to the unrepaired consumer: each round replaces the previous one.
      const W = r.merged.get(site.weight)!;
      const B = r.merged.get(site.bias)!;
      const units = W.shape[1]!;
      const lambda = lambdaForTensor(site.weight, r.lambda, ctx);
      const folded = foldCorrection(W.data, B.data, units, measured.get(site.tap)!, r.targets(site.tap, lambda));
      next.set(site.weight, { shape: [...W.shape], data: folded.weight });
      next.set(site.bias, { shape: [...B.shape], data: folded.bias });
    }
    weights = next;
  }
  return weights;
}
