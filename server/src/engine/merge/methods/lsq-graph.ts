/**
 * The onnxruntime side of the least-squares refit (lsq.ts). A *stage* is the group of one layer's projections that
 * read the same input (q/k/v_proj; out_proj; intermediate_dense; output_dense). Per probe batch, the stage graph
 * runs the merged model and both aligned endpoints on the same audio up to that input and reduces, on the device,
 * the centred moments of the merged model's input x against z = [x, x_a, x_b] (the same input in each endpoint):
 * one GEMM (x − x̄)ᵀ(z − z̄) gives Cov(x), Cov(x, x_a) and Cov(x, x_b), from which lsq.ts forms the ridge normal
 * equations' right-hand side Cov(x, y) = λ Cov(x, x_a) W_aᵀ + (1 − λ) Cov(x, x_b) W_bᵀ in float64 (so two identical
 * models give back their own weights to rounding). The target y itself (the λ-mix of the endpoints' projection
 * outputs) is formed only for its per-unit mean and Σ(y − ȳ)², which make the fit residual exact. Only O(p²) results
 * cross into JS, where batches are combined in float64 (align/stats.ts addMoments).
 */
import * as ort from 'onnxruntime-node';
import type { BatchMoments } from '../../align/stats';
import type { EncoderConfig } from '../../io/hfconfig';
import { framesFor } from '../../model/encoder';
import { addEncoder } from '../../model/encoder-graph';
import { GraphBuilder } from '../../model/graph-builder';
import { createSession, type Session, type SessionOptions } from '../../model/runtime';
import { tapName, type TapName } from '../../model/taps';
import type { WeightMap } from '../../model/tensor';
import type { LsqProjection } from '../../recipe/schema';

/** One refit projection: its tensors and the λ of its target mix. */
export interface LsqSite {
  name: LsqProjection;
  weight: string;
  bias: string;
  lambda: number;
}

export interface LsqStage {
  layer: number;
  /** The tap holding the stage's common input. */
  input: TapName;
  sites: LsqSite[];
}

const PROJECTIONS: { name: LsqProjection; tensor: string; input: (l: number) => TapName }[] = [
  { name: 'q_proj', tensor: 'attention.q_proj', input: tapName.attnIn },
  { name: 'k_proj', tensor: 'attention.k_proj', input: tapName.attnIn },
  { name: 'v_proj', tensor: 'attention.v_proj', input: tapName.attnIn },
  { name: 'out_proj', tensor: 'attention.out_proj', input: tapName.attn },
  { name: 'intermediate_dense', tensor: 'feed_forward.intermediate_dense', input: tapName.ffnIn },
  { name: 'output_dense', tensor: 'feed_forward.output_dense', input: tapName.ffn },
];

/** The stages of layer `layer` that refit any of `refit`, in forward order (each stage's input depends on the last). */
export function layerStages(layer: number, refit: readonly LsqProjection[], lambdaOf: (tensor: string) => number): LsqStage[] {
  const stages: LsqStage[] = [];
  for (const p of PROJECTIONS) {
    if (!refit.includes(p.name)) continue;
    const input = p.input(layer);
    const base = `encoder.layers.${layer}.${p.tensor}`;
    const site: LsqSite = { name: p.name, weight: `${base}.weight`, bias: `${base}.bias`, lambda: lambdaOf(`${base}.weight`) };
    const last = stages.at(-1);
    if (last?.input === input) last.sites.push(site);
    else stages.push({ layer, input, sites: [site] });
  }
  return stages;
}

type Model = { config: EncoderConfig; weights: WeightMap };

/** Per-batch moments of one stage: `inputs` A = the merged model's input x (p units), B = [x, x_a, x_b] (3p units);
 * `targets` A = the target y (q units), no B. */
export interface StageMoments {
  inputs: BatchMoments;
  targets: BatchMoments;
}

export class StageStatisticsSession {
  private constructor(
    private readonly session: Session,
    private readonly config: EncoderConfig,
  ) {}

  static async create(merged: Model, anchor: Model, other: Model, stage: LsqStage, opts: SessionOptions): Promise<StageStatisticsSession> {
    const cfg = merged.config;
    const b = new GraphBuilder();
    const audio = b.input('audio', ['batch', 'samples']);
    const range = { to: stage.layer + 1 };
    const inputOf = (m: Model, prefix: string) => addEncoder(b, m.config, m.weights, audio, prefix, range).get(stage.input)!;
    const p = merged.weights.get(stage.sites[0]!.weight)!.shape[1]!;
    const rows = (v: string, hint: string) => b.op('Reshape', [v, b.int64s([-1, p])], {}, hint);
    const x = rows(inputOf(merged, 'm/'), 'x');
    const xa = rows(inputOf(anchor, 'a/'), 'x_a');
    const xb = rows(inputOf(other, 'b/'), 'x_b');
    const centre = (v: string, name: string) => {
      const mean = b.op('ReduceMean', [v], { axes: [0], keepdims: 1 }, `${name}_mean_kd`);
      const centred = b.op('Sub', [v, mean], {}, `${name}_centred`);
      b.output(b.op('Reshape', [mean, b.int64s([-1])]), `mean_${name}`);
      b.output(b.op('ReduceSumSquare', [centred], { axes: [0], keepdims: 0 }), `m2_${name}`);
      return centred;
    };
    const zc = centre(b.op('Concat', [x, xa, xb], { axis: 1 }, 'z'), 'z');
    const xc = b.op('Slice', [zc, b.int64s([0]), b.int64s([p]), b.int64s([1])], {}, 'x_centred');
    b.output(b.op('MatMul', [b.op('Transpose', [xc], { perm: [1, 0] }), zc]), 'cross');
    const project = (m: Model, side: string, input: string, site: LsqSite) =>
      b.op('Add', [
        b.op('MatMul', [input, b.weightTransposed(`${side}/${site.weight}_T`, m.weights.get(site.weight)!)]),
        b.weight(`${side}/${site.bias}`, m.weights.get(site.bias)!),
      ]);
    const targets = stage.sites.map((site) =>
      b.op('Add', [
        b.op('Mul', [project(anchor, 'a', xa, site), b.scalar(site.lambda)]),
        b.op('Mul', [project(other, 'b', xb, site), b.scalar(1 - site.lambda)]),
      ]),
    );
    centre(targets.length === 1 ? targets[0]! : b.op('Concat', targets, { axis: 1 }), 'y');
    const session = await createSession(b.encode(`merge_studio_lsq_layer${stage.layer}_${stage.input.split('.')[2]}`), opts);
    return new StageStatisticsSession(session, cfg);
  }

  /** Moments of one batch of equal-length segments ([batch × samples] flat). */
  async run(audio: Float32Array, batch: number): Promise<StageMoments> {
    const samples = audio.length / batch;
    const out = await this.session.run({ audio: new ort.Tensor('float32', audio, [batch, samples]) });
    const get = (k: string) => out[k]!.data as Float32Array;
    const cross = get('cross');
    const p = Math.round(Math.sqrt(cross.length / 3));
    const n = batch * framesFor(this.config, samples);
    const none = new Float32Array(0);
    return {
      inputs: { n, meanA: get('mean_z').subarray(0, p), meanB: get('mean_z'), m2A: get('m2_z').subarray(0, p), m2B: get('m2_z'), cross },
      targets: { n, meanA: get('mean_y'), meanB: none, m2A: get('m2_y'), m2B: none, cross: none },
    };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
