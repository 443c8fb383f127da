/**
 * Linear probes on frozen, mean-pooled encoder features, trained in JS (the features are small: one [layers, dim]
 * row per clip).
 *
 * The classifier is multinomial logistic regression on standardised features (per layer and dimension, mean and
 * standard deviation from the train split only), with an L2 penalty on the weights (not the biases), trained on the
 * full batch by L-BFGS for a fixed number of iterations from a seeded initialisation. Full batch and fixed iterations
 * make a result a pure function of (features, labels, options): no early stopping on the test split, no tuning.
 * (L-BFGS rather than gradient descent: it reaches the optimum of this small convex-in-W problem in ~100 function
 * evaluations where Adam needed 300+ and still wandered; a probe costs ~n·dim·classes·3 flops per evaluation.)
 *
 * Two probes per task, as SUPERB reports them:
 *  - weighted sum (the task's score, always run): SUPERB's featurizer, softmax(a)-weighted sum over layers of the standardised
 *    features, with the layer logits `a` learned jointly with the classifier. Because mean pooling is linear, the
 *    weighted sum of pooled layers equals pooling the weighted sum of frame-level layers, so this is exactly SUPERB's
 *    learnable layer weighting followed by a mean-pool linear head. It needs no choice of layer, which matters when
 *    comparing a model with merges of it whose best layer may differ.
 *  - per layer (optional, `perLayer: true`): one classifier on each layer's pooled features (hidden_states[0..L]);
 *    a diagnostic of where the information sits and how a merge moves it, at L+1 times the cost.
 */
import type { Tensor } from '../model/tensor';
import { mulberry32 } from '../random';
import { lbfgs } from './lbfgs';
import { ProbeObjective } from './probe-objective';

export interface ProbeOptions {
  /** L-BFGS iterations (default 100). */
  iterations?: number;
  /** Also train one probe per layer (default false). */
  perLayer?: boolean;
  /** L2 penalty coefficient on the weights, added to the mean cross-entropy as l2/2·‖W‖² (default 1e-3). */
  l2?: number;
  /** Seed of the weight initialisation (default 0). */
  seed?: number;
}

export const PROBE_DEFAULTS: Required<ProbeOptions> = { iterations: 100, perLayer: false, l2: 1e-3, seed: 0 };

/** Pooled features and their class indices. `features` is [n, layers, dim]. */
export interface ProbeFeatures {
  features: Tensor;
  labels: Int32Array;
}

export interface ProbeResult {
  /** Test accuracy of the weighted-sum probe: the task's score. */
  accuracy: number;
  /** Test accuracy of a probe on each layer alone (hidden_states[0..L]); empty unless asked for. */
  perLayer: number[];
  /** The learned softmax layer weights of the weighted-sum probe (sum to 1). */
  layerWeights: number[];
  /** Train accuracy of the weighted-sum probe (a probe that cannot fit train says the features lack the information). */
  trainAccuracy: number;
}

/** Trains the weighted-sum probe (and, if asked, one probe per layer) on `train`; scores them on `test`. */
export async function runProbes(
  train: ProbeFeatures,
  test: ProbeFeatures,
  classes: number,
  options: ProbeOptions = {},
): Promise<ProbeResult> {
  const opts = { ...PROBE_DEFAULTS, ...options };
  const [n, layers, dim] = shape3(train.features, 'train');
  const [m, layersT, dimT] = shape3(test.features, 'test');
  if (layersT !== layers || dimT !== dim) {
    throw new RangeError(`test features are [${m}, ${layersT}, ${dimT}], train features [${n}, ${layers}, ${dim}]`);
  }
  checkLabels(train.labels, n, classes, 'train');
  checkLabels(test.labels, m, classes, 'test');
  const std = fitStandardiser(train.features.data, n, layers * dim);
  const xTrain = std.apply(train.features.data, n);
  const xTest = std.apply(test.features.data, m);

  const weighted = await trainWeightedSum(xTrain, n, layers, dim, train.labels, classes, opts);
  const accuracy = accuracyOf(predictWeightedSum(weighted, xTest, m, layers, dim), test.labels);
  const trainAccuracy = accuracyOf(predictWeightedSum(weighted, xTrain, n, layers, dim), train.labels);

  const perLayer: number[] = [];
  for (let l = 0; opts.perLayer && l < layers; l++) {
    const a = sliceLayer(xTrain, n, layers, dim, l);
    const b = sliceLayer(xTest, m, layers, dim, l);
    const model = await trainLogistic(a, n, dim, train.labels, classes, opts);
    perLayer.push(accuracyOf(predictLinear(model, b, m), test.labels));
  }
  return { accuracy, perLayer, layerWeights: Array.from(softmax(weighted.layerLogits)), trainAccuracy };
}

// ---------------------------------------------------------------------------------------------------------------
// Standardisation
// ---------------------------------------------------------------------------------------------------------------

export interface Standardiser {
  mean: Float64Array;
  /** 1/σ, or 0 for a constant feature (which then contributes nothing). */
  invStd: Float64Array;
  apply(x: Float32Array | Float64Array, rows: number): Float64Array;
}

export function fitStandardiser(x: Float32Array | Float64Array, rows: number, cols: number): Standardiser {
  const mean = new Float64Array(cols);
  const invStd = new Float64Array(cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) mean[j]! += x[i * cols + j]!;
  for (let j = 0; j < cols; j++) mean[j]! /= rows;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const d = x[i * cols + j]! - mean[j]!;
      invStd[j]! += d * d;
    }
  }
  for (let j = 0; j < cols; j++) {
    const sd = Math.sqrt(invStd[j]! / rows);
    invStd[j] = sd > 1e-8 * (1 + Math.abs(mean[j]!)) ? 1 / sd : 0;
  }
  return {
    mean,
    invStd,
    apply(data, r) {
      const out = new Float64Array(r * cols);
      for (let i = 0; i < r; i++) for (let j = 0; j < cols; j++) out[i * cols + j] = (data[i * cols + j]! - mean[j]!) * invStd[j]!;
      return out;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The models: multinomial logistic regression on softmax(a)-weighted sums of layers (one layer: plain regression)
// ---------------------------------------------------------------------------------------------------------------

export interface LinearModel {
  dim: number;
  classes: number;
  /** [dim, classes] */
  weights: Float64Array;
  bias: Float64Array;
}

export interface WeightedSumModel extends LinearModel {
  layers: number;
  /** Softmax of these weights the layers (a single layer: weight 1). */
  layerLogits: Float64Array;
}

/** Logistic regression on x [n, dim], already standardised. */
export function trainLogistic(
  x: Float64Array,
  n: number,
  dim: number,
  y: Int32Array,
  classes: number,
  options: ProbeOptions = {},
): Promise<LinearModel> {
  return trainWeightedSum(x, n, 1, dim, y, classes, options);
}

export function predictLinear(model: LinearModel, x: Float64Array, n: number): Int32Array {
  const p = new Float64Array(n * model.classes);
  logits(x, n, model.dim, classMajor(model.weights, model.dim, model.classes), model.bias, model.classes, p);
  return argmaxRows(p, n, model.classes);
}

/**
 * x is [n, layers, dim], standardised. Minimises mean cross-entropy + l2/2·‖W‖² over (W, b, a) jointly by L-BFGS
 * from W ~ N(0, 0.01²) (seeded), b = 0, a = 0 (a plain average of the layers to start). The loss and gradient run
 * in onnxruntime in float64 (eval/probe-objective.ts); W is held class-major ([classes, dim]) inside the optimiser,
 * and the returned model is [dim, classes].
 */
export async function trainWeightedSum(
  x: Float64Array,
  n: number,
  layers: number,
  dim: number,
  y: Int32Array,
  classes: number,
  options: ProbeOptions = {},
): Promise<WeightedSumModel> {
  const opts = { ...PROBE_DEFAULTS, ...options };
  const nw = dim * classes;
  const theta = new Float64Array(nw + classes + layers);
  theta.set(classMajor(initWeights(nw, opts.seed), dim, classes));
  const sums = await ProbeObjective.create(x, y, n, layers, dim, classes);
  const objective = async (t: Float64Array, grad: Float64Array): Promise<number> => {
    const w = t.subarray(0, nw);
    const s = softmax(t.subarray(nw + classes));
    const g = await sums.evaluate(s, w, t.subarray(nw, nw + classes));
    let penalty = 0;
    for (let k = 0; k < nw; k++) {
      penalty += w[k]! * w[k]!;
      grad[k] = g.weights[k]! / n + opts.l2 * w[k]!;
    }
    for (let c = 0; c < classes; c++) grad[nw + c] = g.bias[c]! / n;
    // dL/da = J_softmax(s) · dL/ds (zero for a single layer, whose weight is fixed at 1)
    let dot = 0;
    for (let l = 0; l < layers; l++) dot += (s[l]! * g.layerWeights[l]!) / n;
    for (let l = 0; l < layers; l++) grad[nw + classes + l] = layers > 1 ? s[l]! * (g.layerWeights[l]! / n - dot) : 0;
    return g.loss / n + 0.5 * opts.l2 * penalty;
  };
  await lbfgs(objective, theta, opts.iterations);
  return {
    dim,
    classes,
    weights: dimMajor(theta.subarray(0, nw), dim, classes),
    bias: theta.slice(nw, nw + classes),
    layers,
    layerLogits: theta.slice(nw + classes),
  };
}

export function predictWeightedSum(model: WeightedSumModel, x: Float64Array, n: number, layers: number, dim: number): Int32Array {
  const z = new Float64Array(n * dim);
  combine(x, n, layers, dim, softmax(model.layerLogits), z);
  return predictLinear(model, z, n);
}

/** [dim, classes] → [classes, dim]. */
function classMajor(w: Float64Array, dim: number, classes: number): Float64Array {
  const out = new Float64Array(dim * classes);
  for (let d = 0; d < dim; d++) for (let c = 0; c < classes; c++) out[c * dim + d] = w[d * classes + c]!;
  return out;
}

/** [classes, dim] → [dim, classes]. */
function dimMajor(w: Float64Array, dim: number, classes: number): Float64Array {
  const out = new Float64Array(dim * classes);
  for (let c = 0; c < classes; c++) for (let d = 0; d < dim; d++) out[d * classes + c] = w[c * dim + d]!;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Pieces
// ---------------------------------------------------------------------------------------------------------------

export function accuracyOf(pred: Int32Array, y: Int32Array): number {
  if (pred.length !== y.length) throw new RangeError(`${pred.length} predictions for ${y.length} labels`);
  if (y.length === 0) return Number.NaN;
  let ok = 0;
  for (let i = 0; i < y.length; i++) if (pred[i] === y[i]) ok++;
  return ok / y.length;
}

/** Small seeded N(0, 0.01²) weights (mulberry32 + Box–Muller). */
function initWeights(size: number, seed: number): Float64Array {
  const rand = mulberry32((seed ^ 0x5eed) >>> 0);
  const w = new Float64Array(size);
  for (let k = 0; k < size; k++) {
    const u = Math.max(rand(), 1e-12);
    const v = rand();
    w[k] = 0.01 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return w;
}

/** out = x·Wᵀ + b for class-major W ([classes, dim]). */
function logits(x: Float64Array, n: number, dim: number, w: Float64Array, b: Float64Array, classes: number, out: Float64Array): void {
  for (let i = 0; i < n; i++) {
    const xi = i * dim;
    for (let c = 0; c < classes; c++) {
      const wc = c * dim;
      let acc = b[c]!;
      for (let d = 0; d < dim; d++) acc += x[xi + d]! * w[wc + d]!;
      out[i * classes + c] = acc;
    }
  }
}

function argmaxRows(p: Float64Array, n: number, classes: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (p[i * classes + c]! > p[i * classes + best]!) best = c;
    out[i] = best;
  }
  return out;
}

function softmax(a: Float64Array): Float64Array {
  let max = -Infinity;
  for (const v of a) max = Math.max(max, v);
  const out = new Float64Array(a.length);
  let sum = 0;
  for (let k = 0; k < a.length; k++) sum += out[k] = Math.exp(a[k]! - max);
  for (let k = 0; k < a.length; k++) out[k]! /= sum;
  return out;
}

/** z[i] = Σ_l s_l · x[i, l]. */
function combine(x: Float64Array, n: number, layers: number, dim: number, s: Float64Array, z: Float64Array): void {
  z.fill(0);
  for (let i = 0; i < n; i++) {
    for (let l = 0; l < layers; l++) {
      const sl = s[l]!;
      const base = (i * layers + l) * dim;
      for (let d = 0; d < dim; d++) z[i * dim + d]! += sl * x[base + d]!;
    }
  }
}

function sliceLayer(x: Float64Array, n: number, layers: number, dim: number, l: number): Float64Array {
  const out = new Float64Array(n * dim);
  for (let i = 0; i < n; i++) out.set(x.subarray((i * layers + l) * dim, (i * layers + l + 1) * dim), i * dim);
  return out;
}

function shape3(t: Tensor, what: string): [number, number, number] {
  if (t.shape.length !== 3) throw new RangeError(`${what} features must be [n, layers, dim], got [${t.shape.join(', ')}]`);
  return [t.shape[0]!, t.shape[1]!, t.shape[2]!];
}

function checkLabels(y: Int32Array, n: number, classes: number, what: string): void {
  if (y.length !== n) throw new RangeError(`${what}: ${y.length} labels for ${n} feature rows`);
  for (let i = 0; i < n; i++) {
    if (!(y[i]! >= 0 && y[i]! < classes)) throw new RangeError(`${what}: label ${y[i]} at row ${i} is outside 0..${classes - 1}`);
  }
}
