/**
 * The onnxruntime side of the least-squares refit (lsq.ts). A *stage* is the group of one layer's projections that
 * read the same input (q/k/v_proj; out_proj; intermediate_dense; output_dense). The three models (merged, anchor,
 * aligned other) run side by side, one transformer layer at a time from their cached hidden states (each stage and
 * each layer is one small graph; the front end runs once), and per probe batch the stage graph reduces, on the
 * device, the centred moments of the merged model's input x against z = [x, x_a, x_b] (the same input in each
 * endpoint): one GEMM (x − x̄)ᵀ(z − z̄) gives Cov(x), Cov(x, x_a) and Cov(x, x_b), from which lsq.ts forms the ridge
 * normal equations' right-hand side Cov(x, y) = λ Cov(x, x_a) W_aᵀ + (1 − λ) Cov(x, x_b) W_bᵀ in float64 (so two
 * identical models give back their own weights to rounding). The target y itself (the λ-mix of the endpoints'
 * projection outputs) is formed only for its per-unit mean and Σ(y − ȳ)², which make the fit residual exact. Only
 * O(p²) results cross into JS, where batches are combined in float64 (align/stats.ts addMoments).
 */
import * as ort from 'onnxruntime-node';
import type { BatchMoments } from '../../align/stats';
import type { EncoderConfig } from '../../io/hfconfig';
import { framesFor } from '../../model/encoder';
import { addEncoder, type TapValues } from '../../model/encoder-graph';
import { GraphBuilder } from '../../model/graph-builder';
import { createSession, resolveBackend, type Session, type SessionOptions } from '../../model/runtime';
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
  /**
   * `merge.lsq.residual` on a projection that writes into the residual stream (out_proj, output_dense): its target is
   * the mix of the endpoints' residual sums (stream + output, what enters the next LayerNorm) minus the merged model's
   * stream, so the refit also pulls the merged stream toward the target's.
   */
  residual?: boolean;
}

/** Projections whose output is added to the residual stream. */
const WRITES_RESIDUAL: readonly LsqProjection[] = ['out_proj', 'output_dense'];

const PROJECTIONS: { name: LsqProjection; tensor: string; input: (l: number) => TapName }[] = [
  { name: 'q_proj', tensor: 'attention.q_proj', input: tapName.attnIn },
  { name: 'k_proj', tensor: 'attention.k_proj', input: tapName.attnIn },
  { name: 'v_proj', tensor: 'attention.v_proj', input: tapName.attnIn },
  { name: 'out_proj', tensor: 'attention.out_proj', input: tapName.attn },
  { name: 'intermediate_dense', tensor: 'feed_forward.intermediate_dense', input: tapName.ffnIn },
  { name: 'output_dense', tensor: 'feed_forward.output_dense', input: tapName.ffn },
];

/**
 * The stages of layer `layer` that refit any of `refit`, in forward order (each stage's input depends on the last);
 * with `residual`, the stages of out_proj and output_dense fit residual sums.
 */
export function layerStages(
  layer: number,
  refit: readonly LsqProjection[],
  lambdaOf: (tensor: string) => number,
  residual = false,
): LsqStage[] {
  const stages: LsqStage[] = [];
  for (const p of PROJECTIONS) {
    if (!refit.includes(p.name)) continue;
    const input = p.input(layer);
    const base = `encoder.layers.${layer}.${p.tensor}`;
    const site: LsqSite = { name: p.name, weight: `${base}.weight`, bias: `${base}.bias`, lambda: lambdaOf(`${base}.weight`) };
    const last = stages.at(-1);
    if (last?.input === input) last.sites.push(site);
    else stages.push({ layer, input, sites: [site], ...(residual && WRITES_RESIDUAL.includes(p.name) ? { residual: true } : {}) });
  }
  return stages;
}

type Model = { config: EncoderConfig; weights: WeightMap };

/** The three models' hidden states entering a layer, for one probe batch ([batch, frames, hidden] each). */
export interface TripleStates {
  m: Float32Array;
  a: Float32Array;
  b: Float32Array;
  batch: number;
  frames: number;
}

/** Per-batch moments of one stage: `inputs` A = the merged model's input x (p units), B = [x, x_a, x_b] (p + p_a + p_b units);
 * `targets` A = the target y (q units), no B; a residual stage's `drift` A = d, the streams' part of y, B = x. */
export interface StageMoments {
  inputs: BatchMoments;
  targets: BatchMoments;
  drift?: BatchMoments;
}

const SIDES = [
  ['m', 'merged'],
  ['a', 'anchor'],
  ['b', 'other'],
] as const;

/**
 * One graph over the three models: the front end (audio → hidden.0) or transformer layer `layer` (hidden.l →
 * hidden.l+1), with a stage's moments and/or the next hidden states as outputs.
 */
export class TripleSession {
  private constructor(
    private readonly session: Session,
    private readonly feeds: Record<string, ort.Tensor>,
    private readonly config: EncoderConfig,
    private readonly front: boolean,
    private readonly moments: boolean,
    private readonly next: boolean,
    private readonly residual: boolean,
  ) {}

  static async create(
    models: { merged: Model; anchor: Model; other: Model },
    what: { layer: number | 'front'; stage?: LsqStage; next: boolean },
    opts: SessionOptions,
  ): Promise<TripleSession> {
    const cfg = models.merged.config;
    const front = what.layer === 'front';
    // On the CPU backend linear weights are fed at run time: no constant folding of three models per session.
    const b = new GraphBuilder({ feedWeights: (await resolveBackend(opts.device ?? 'auto')) === 'cpu' ? 'linear' : undefined });
    const audio = front ? b.input('audio', ['batch', 'samples']) : undefined;
    const range = front ? { to: 0 } : { from: what.layer as number, to: (what.layer as number) + 1 };
    const inputs = {} as Record<'m' | 'a' | 'b', string>;
    const taps = Object.fromEntries(
      SIDES.map(([side, role]) => {
        const input = audio ?? b.input(`hidden_${side}`, ['batch', 'frames', cfg.hidden]);
        inputs[side] = input;
        return [side, addEncoder(b, cfg, models[role].weights, input, `${side}/`, range)];
      }),
    ) as Record<'m' | 'a' | 'b', TapValues>;
    if (what.next) {
      const k = front ? 0 : (what.layer as number) + 1;
      for (const [side] of SIDES) b.output(taps[side].get(tapName.hidden(k))!, `next_${side}`);
    }
    if (what.stage) addStageMoments(b, what.stage, models, taps, (side) => residualStream(b, cfg, what.stage!, inputs[side], taps[side]));
    const session = await createSession(b.encode(`merge_studio_lsq_${front ? 'front' : `layer${what.layer}`}`), opts);
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of b.weightFeeds) feeds[name] = new ort.Tensor('float32', t.data, [...t.shape]);
    return new TripleSession(session, feeds, cfg, front, what.stage !== undefined, what.next, what.stage?.residual === true);
  }

  /** Runs one batch: audio ([batch × samples] flat) for the front end, else the hidden states entering the layer. */
  async run(input: { audio: Float32Array; batch: number } | TripleStates): Promise<{ moments?: StageMoments; next?: TripleStates }> {
    if (this.front !== 'audio' in input) throw new Error('internal: lsq pass fed the wrong input');
    let feeds: Record<string, ort.Tensor>;
    let batch: number;
    let frames: number;
    if ('audio' in input) {
      batch = input.batch;
      const samples = input.audio.length / batch;
      frames = framesFor(this.config, samples);
      feeds = { audio: new ort.Tensor('float32', input.audio, [batch, samples]) };
    } else {
      ({ batch, frames } = input);
      const dims = [batch, frames, this.config.hidden];
      feeds = Object.fromEntries(SIDES.map(([side]) => [`hidden_${side}`, new ort.Tensor('float32', input[side], dims)]));
    }
    const out = await this.session.run({ ...this.feeds, ...feeds });
    const get = (k: string) => out[k]!.data as Float32Array;
    const result: { moments?: StageMoments; next?: TripleStates } = {};
    if (this.next) result.next = { m: get('next_m'), a: get('next_a'), b: get('next_b'), batch, frames };
    if (this.moments) {
      const cross = get('cross');
      // cross is p × (p + p_a + p_b): the merged input's width p (wider than the endpoints' on a zipped FFN).
      const p = cross.length / get('mean_z').length;
      const n = batch * frames;
      const none = new Float32Array(0);
      result.moments = {
        inputs: { n, meanA: get('mean_z').subarray(0, p), meanB: get('mean_z'), m2A: get('m2_z').subarray(0, p), m2B: get('m2_z'), cross },
        targets: { n, meanA: get('mean_y'), meanB: none, m2A: get('m2_y'), m2B: none, cross: none },
        ...(this.residual
          ? {
              drift: {
                n,
                meanA: get('mean_d'),
                meanB: get('mean_z').subarray(0, p),
                m2A: get('m2_d'),
                m2B: get('m2_z').subarray(0, p),
                cross: get('cross_dx'),
              },
            }
          : {}),
      };
    }
    return result;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** The residual stream a residual stage's projection output is added to, in one model: the layer input for out_proj; for
 * output_dense the stream after attention (post-LN: the FFN input, which is that stream normed; pre-LN: input + attention). */
function residualStream(b: GraphBuilder, cfg: EncoderConfig, stage: LsqStage, input: string, taps: TapValues): string | undefined {
  if (!stage.residual) return undefined;
  if (stage.sites[0]!.name === 'out_proj') return input;
  return cfg.preLayerNorm ? b.op('Add', [input, taps.get(tapName.attnOut(stage.layer))!]) : taps.get(tapName.ffnIn(stage.layer))!;
}

/**
 * The stage's moments as graph outputs: mean_z, m2_z, cross = (x − x̄)ᵀ(z − z̄), mean_y, m2_y; for a residual stage
 * also cross_yx = (y − ȳ)ᵀ(x − x̄).
 */
function addStageMoments(
  b: GraphBuilder,
  stage: LsqStage,
  models: { merged: Model; anchor: Model; other: Model },
  taps: Record<'m' | 'a' | 'b', TapValues>,
  residualOf: (side: 'm' | 'a' | 'b') => string | undefined,
): void {
  const width = (m: Model) => m.weights.get(stage.sites[0]!.weight)!.shape[1]!;
  const p = width(models.merged);
  const role = Object.fromEntries(SIDES) as Record<'m' | 'a' | 'b', 'merged' | 'anchor' | 'other'>;
  const rows = (side: 'm' | 'a' | 'b') =>
    b.op('Reshape', [taps[side].get(stage.input)!, b.int64s([-1, width(models[role[side]])])], {}, `${side}/rows`);
  const [x, xa, xb] = [rows('m'), rows('a'), rows('b')];
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
      b.op('Mul', [project(models.anchor, 'a', xa, site), b.scalar(site.lambda)]),
      b.op('Mul', [project(models.other, 'b', xb, site), b.scalar(1 - site.lambda)]),
    ]),
  );
  const y = targets.length === 1 ? targets[0]! : b.op('Concat', targets, { axis: 1 });
  if (!stage.residual) {
    centre(y, 'y');
    return;
  }
  // A residual stage (one site): the target adds d = λ(r_a − r_m) + (1 − λ)(r_b − r_m), how far the endpoints'
  // streams are from the merged one's. Differences first, so identical streams add exactly nothing; Cov(d, x) is
  // measured (d is no linear map of the endpoint inputs), the rest of Cov(y, x) comes from the weights as usual.
  const site = stage.sites[0]!;
  const streamRows = (side: 'm' | 'a' | 'b') =>
    b.op('Reshape', [residualOf(side)!, b.int64s([-1, models.merged.config.hidden])], {}, `${side}/stream_rows`);
  const rm = streamRows('m');
  const d = b.op('Add', [
    b.op('Mul', [b.op('Sub', [streamRows('a'), rm]), b.scalar(site.lambda)]),
    b.op('Mul', [b.op('Sub', [streamRows('b'), rm]), b.scalar(1 - site.lambda)]),
  ]);
  centre(b.op('Add', [y, d]), 'y');
  b.output(b.op('MatMul', [b.op('Transpose', [centre(d, 'd')], { perm: [1, 0] }), xc]), 'cross_dx');
}
