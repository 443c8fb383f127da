/**
 * The weighted-sum probe's loss and gradient as one float64 onnxruntime graph, so that the GEMMs of every L-BFGS
 * step (eval/probe-classifier.ts) run in onnxruntime instead of JS loops.
 *
 * For x [n, layers, dim], layer weights s [layers] (already softmaxed), class-major weights W [classes, dim], bias
 * b [classes] and one-hot labels Y [n, classes]:
 *   z = Σ_l s_l x_l,  P = softmax(zWᵀ + b),  R = P − Y,
 *   loss = −Σ Y ⊙ log P,  gW = Rᵀz,  gb = Σ_i R_i,  gs_l = Σ_i Σ_d (RW)_id · x_ild.
 * Sums, not means: the caller divides by n and adds the L2 term and the softmax Jacobian (O(classes·dim) work).
 * One session serves every probe of the process: all sizes are symbolic.
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../model/graph-builder';
import { DataType } from '../model/onnx-proto';
import { createSession, type Session } from '../model/runtime';

export interface ProbeGradient {
  /** −Σ log p(y_i), summed over rows. */
  loss: number;
  /** [classes, dim] */
  weights: Float64Array;
  /** [classes] */
  bias: Float64Array;
  /** [layers]: gradient with respect to the (softmaxed) layer weights. */
  layerWeights: Float64Array;
}

let shared: Promise<Session> | undefined;

function objectiveSession(): Promise<Session> {
  shared ??= createSession(buildObjectiveGraph(), { device: 'cpu', threads: 1 }).catch((e: unknown) => {
    shared = undefined;
    throw e;
  });
  return shared;
}

function buildObjectiveGraph(): Uint8Array {
  const b = new GraphBuilder();
  const f64 = DataType.DOUBLE;
  const x = b.input('x', ['n', 'layers', 'dim'], f64);
  const xByDim = b.input('x_by_dim', ['n_dim', 'layers'], f64);
  const y = b.input('y', ['n', 'classes'], f64);
  const s = b.input('s', [1, 'layers'], f64);
  const w = b.input('w', ['classes', 'dim'], f64);
  const bias = b.input('b', ['classes'], f64);
  // z = Σ_l s_l x_l as one [n·dim, layers] × [layers, 1] product over x laid out layer-last (fed once per probe): each
  // value is the same dot product over the layers, in the same order, as in s × x_i for each row i (the same bits), but
  // one GEMM instead of n small ones that each packed an operand.
  const sColumn = b.op('Reshape', [s, b.int64s([-1, 1])]);
  const rowShape = b.op('Concat', [b.int64s([-1]), b.op('Shape', [w], { start: 1 })], { axis: 0 }); // [n, dim]
  const z = b.op('Reshape', [b.op('MatMul', [xByDim, sColumn]), rowShape]); // [n, dim]
  const logits = b.op('Add', [b.op('MatMul', [z, b.op('Transpose', [w], { perm: [1, 0] })]), bias]);
  const logp = b.op('LogSoftmax', [logits], { axis: -1 });
  const r = b.op('Sub', [b.op('Exp', [logp]), y]);
  b.output(b.op('Neg', [b.op('ReduceSum', [b.op('Mul', [y, logp])], { keepdims: 0 })]), 'loss', f64);
  b.output(b.op('MatMul', [b.op('Transpose', [r], { perm: [1, 0] }), z]), 'gw', f64);
  b.output(b.op('ReduceSum', [r, b.int64s([0])], { keepdims: 0 }), 'gb', f64);
  const gz = b.op('Unsqueeze', [b.op('MatMul', [r, w]), b.int64s([2])]); // [n, dim, 1]
  b.output(b.op('ReduceSum', [b.op('MatMul', [x, gz]), b.int64s([0, 2])], { keepdims: 0 }), 'gs', f64);
  return b.encode('merge_studio_probe_objective');
}

/** The loss and gradient of one probe's data set, evaluated at many parameter values. */
export class ProbeObjective {
  private readonly feeds: Record<string, ort.Tensor>;
  /** The parameters' input buffers, filled in place at each evaluation (L-BFGS makes hundreds per probe). */
  private readonly params: { s: Float64Array; w: Float64Array; b: Float64Array };

  private constructor(
    private readonly session: Session,
    x: Float64Array,
    y: Int32Array,
    n: number,
    layers: number,
    dim: number,
    classes: number,
  ) {
    const oneHot = new Float64Array(n * classes);
    for (let i = 0; i < n; i++) oneHot[i * classes + y[i]!] = 1;
    // x again as [n·dim, layers] (z's GEMM operand).
    const byDim = new Float64Array(n * layers * dim);
    for (let i = 0; i < n; i++)
      for (let l = 0; l < layers; l++) for (let d = 0; d < dim; d++) byDim[(i * dim + d) * layers + l] = x[(i * layers + l) * dim + d]!;
    this.params = { s: new Float64Array(layers), w: new Float64Array(classes * dim), b: new Float64Array(classes) };
    this.feeds = {
      x: new ort.Tensor('float64', x, [n, layers, dim]),
      x_by_dim: new ort.Tensor('float64', byDim, [n * dim, layers]),
      y: new ort.Tensor('float64', oneHot, [n, classes]),
      s: new ort.Tensor('float64', this.params.s, [1, layers]),
      w: new ort.Tensor('float64', this.params.w, [classes, dim]),
      b: new ort.Tensor('float64', this.params.b, [classes]),
    };
  }

  /** x is [n, layers, dim] (standardised), y the class of each row. */
  static async create(x: Float64Array, y: Int32Array, n: number, layers: number, dim: number, classes: number): Promise<ProbeObjective> {
    return new ProbeObjective(await objectiveSession(), x, y, n, layers, dim, classes);
  }

  async evaluate(layerWeights: Float64Array, weights: Float64Array, bias: Float64Array): Promise<ProbeGradient> {
    this.params.s.set(layerWeights);
    this.params.w.set(weights);
    this.params.b.set(bias);
    const out = await this.session.run(this.feeds);
    return {
      loss: (out.loss!.data as Float64Array)[0]!,
      weights: out.gw!.data as Float64Array,
      bias: out.gb!.data as Float64Array,
      layerWeights: out.gs!.data as Float64Array,
    };
  }
}
