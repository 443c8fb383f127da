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
  const y = b.input('y', ['n', 'classes'], f64);
  const s = b.input('s', [1, 'layers'], f64);
  const w = b.input('w', ['classes', 'dim'], f64);
  const bias = b.input('b', ['classes'], f64);
  const z = b.op('Squeeze', [b.op('MatMul', [s, x]), b.int64s([1])]); // [n, dim]
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

  private constructor(
    private readonly session: Session,
    x: Float64Array,
    y: Int32Array,
    n: number,
    private readonly layers: number,
    private readonly dim: number,
    private readonly classes: number,
  ) {
    const oneHot = new Float64Array(n * classes);
    for (let i = 0; i < n; i++) oneHot[i * classes + y[i]!] = 1;
    this.feeds = { x: new ort.Tensor('float64', x, [n, layers, dim]), y: new ort.Tensor('float64', oneHot, [n, classes]) };
  }

  /** x is [n, layers, dim] (standardised), y the class of each row. */
  static async create(x: Float64Array, y: Int32Array, n: number, layers: number, dim: number, classes: number): Promise<ProbeObjective> {
    return new ProbeObjective(await objectiveSession(), x, y, n, layers, dim, classes);
  }

  async evaluate(layerWeights: Float64Array, weights: Float64Array, bias: Float64Array): Promise<ProbeGradient> {
    const out = await this.session.run({
      ...this.feeds,
      s: new ort.Tensor('float64', Float64Array.from(layerWeights), [1, this.layers]),
      w: new ort.Tensor('float64', Float64Array.from(weights), [this.classes, this.dim]),
      b: new ort.Tensor('float64', Float64Array.from(bias), [this.classes]),
    });
    return {
      loss: (out.loss!.data as Float64Array)[0]!,
      weights: out.gw!.data as Float64Array,
      bias: out.gb!.data as Float64Array,
      layerWeights: out.gs!.data as Float64Array,
    };
  }
}
