/**
 * Linear probes on frozen, mean-pooled encoder features, trained in JS (the features are small: one [layers, dim]
 * row per clip).
 *
 * The classifier is multinomial logistic regression on standardised features (per layer and dimension, mean and
 * standard deviation from the train split only), with an L2 penalty on the weights (not the biases), trained by
 * full-batch Adam for a fixed number of iterations from a seeded initialisation. Full batch and fixed iterations
 * make a result a pure function of (features, labels, options): no early stopping on the test split, no tuning.
 *
 * Two probes per task, as SUPERB reports them:
 *  - per layer: one classifier on each layer's pooled features (hidden_states[0..L]); diagnostic, shows where the
 *    information sits and how a merge moves it.
 *  - weighted sum (the task's score): SUPERB's featurizer, softmax(a)-weighted sum over layers of the standardised
 *    features, with the layer logits `a` learned jointly with the classifier. Because mean pooling is linear, the
 *    weighted sum of pooled layers equals pooling the weighted sum of frame-level layers, so this is exactly SUPERB's
 *    learnable layer weighting followed by a mean-pool linear head. It needs no choice of layer, which matters when
 *    comparing a model with merges of it whose best layer may differ.
 */
import type { Tensor } from '../model/tensor';

export interface ProbeOptions {
  /** Full-batch Adam iterations (default 300). */
  iterations?: number;
  /** Adam step size (default 0.05). */
  learningRate?: number;
  /** L2 penalty coefficient on the weights, added to the mean cross-entropy as l2/2·‖W‖² (default 1e-3). */
  l2?: number;
  /** Seed of the weight initialisation (default 0). */
  seed?: number;
}

export const PROBE_DEFAULTS: Required<ProbeOptions> = { iterations: 300, learningRate: 0.05, l2: 1e-3, seed: 0 };

/** Pooled features and their class indices. `features` is [n, layers, dim]. */
export interface ProbeSet {
  features: Tensor;
  labels: Int32Array;
}

export interface ProbeResult {
  /** Test accuracy of the weighted-sum probe: the task's score. */
  accuracy: number;
  /** Test accuracy of a probe on each layer alone (hidden_states[0..L]). */
  perLayer: number[];
  /** The learned softmax layer weights of the weighted-sum probe (sum to 1). */
  layerWeights: number[];
  /** Train accuracy of the weighted-sum probe (a probe that cannot fit train says the features lack the information). */
  trainAccuracy: number;
}

/** Trains the weighted-sum probe and one probe per layer on `train`; scores them on `test`. */
export function runProbes(train: ProbeSet, test: ProbeSet, classes: number, options: ProbeOptions = {}): ProbeResult {
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

  const weighted = trainWeightedSum(xTrain, n, layers, dim, train.labels, classes, opts);
  const accuracy = accuracyOf(predictWeightedSum(weighted, xTest, m, layers, dim), test.labels);
  const trainAccuracy = accuracyOf(predictWeightedSum(weighted, xTrain, n, layers, dim), train.labels);

  const perLayer: number[] = [];
  for (let l = 0; l < layers; l++) {
    const a = sliceLayer(xTrain, n, layers, dim, l);
    const b = sliceLayer(xTest, m, layers, dim, l);
    const model = trainLogistic(a, n, dim, train.labels, classes, opts);
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
// Multinomial logistic regression (one layer)
// ---------------------------------------------------------------------------------------------------------------

export interface LinearModel {
  dim: number;
  classes: number;
  /** [dim, classes] */
  weights: Float64Array;
  bias: Float64Array;
}

/** Full-batch Adam on mean cross-entropy + l2/2·‖W‖²; x is [n, dim], already standardised. */
export function trainLogistic(x: Float64Array, n: number, dim: number, y: Int32Array, classes: number, options: ProbeOptions = {}): LinearModel {
  const opts = { ...PROBE_DEFAULTS, ...options };
  const w = initWeights(dim * classes, opts.seed);
  const b = new Float64Array(classes);
  const gw = new Float64Array(dim * classes);
  const gb = new Float64Array(classes);
  const adamW = new Adam(dim * classes, opts.learningRate);
  const adamB = new Adam(classes, opts.learningRate);
  const p = new Float64Array(n * classes);
  for (let it = 0; it < opts.iterations; it++) {
    logits(x, n, dim, w, b, classes, p);
    softmaxRowsMinusOneHot(p, n, classes, y);
    gradients(x, n, dim, p, classes, gw, gb);
    for (let k = 0; k < gw.length; k++) gw[k]! += opts.l2 * w[k]!;
    adamW.step(w, gw);
    adamB.step(b, gb);
  }
  return { dim, classes, weights: w, bias: b };
}

export function predictLinear(model: LinearModel, x: Float64Array, n: number): Int32Array {
  const p = new Float64Array(n * model.classes);
  logits(x, n, model.dim, model.weights, model.bias, model.classes, p);
  return argmaxRows(p, n, model.classes);
}

// ---------------------------------------------------------------------------------------------------------------
// Weighted sum of layers (SUPERB featurizer) + logistic regression, trained jointly
// ---------------------------------------------------------------------------------------------------------------

export interface WeightedSumModel extends LinearModel {
  layers: number;
  /** Softmax of these weights the layers. */
  layerLogits: Float64Array;
}

/** x is [n, layers, dim], standardised. The layer logits start at 0 (a plain average) and are learned with W, b. */
export function trainWeightedSum(
  x: Float64Array,
  n: number,
  layers: number,
  dim: number,
  y: Int32Array,
  classes: number,
  options: ProbeOptions = {},
): WeightedSumModel {
  const opts = { ...PROBE_DEFAULTS, ...options };
  const w = initWeights(dim * classes, opts.seed);
  const b = new Float64Array(classes);
  const a = new Float64Array(layers);
  const gw = new Float64Array(dim * classes);
  const gb = new Float64Array(classes);
  const ga = new Float64Array(layers);
  const adamW = new Adam(dim * classes, opts.learningRate);
  const adamB = new Adam(classes, opts.learningRate);
  const adamA = new Adam(layers, opts.learningRate);
  const z = new Float64Array(n * dim);
  const p = new Float64Array(n * classes);
  const gz = new Float64Array(n * dim);
  for (let it = 0; it < opts.iterations; it++) {
    const s = softmax(a);
    combine(x, n, layers, dim, s, z);
    logits(z, n, dim, w, b, classes, p);
    softmaxRowsMinusOneHot(p, n, classes, y);
    gradients(z, n, dim, p, classes, gw, gb);
    for (let k = 0; k < gw.length; k++) gw[k]! += opts.l2 * w[k]!;
    // dL/dz = (P - Y) Wᵀ / n ; dL/ds_l = Σ_i Σ_d dL/dz_id · x_ild ; dL/da = J_softmax(s) · dL/ds
    gz.fill(0);
    for (let i = 0; i < n; i++) {
      for (let d = 0; d < dim; d++) {
        let acc = 0;
        for (let c = 0; c < classes; c++) acc += p[i * classes + c]! * w[d * classes + c]!;
        gz[i * dim + d] = acc / n;
      }
    }
    const gs = new Float64Array(layers);
    for (let i = 0; i < n; i++) {
      for (let l = 0; l < layers; l++) {
        let acc = 0;
        const base = (i * layers + l) * dim;
        for (let d = 0; d < dim; d++) acc += gz[i * dim + d]! * x[base + d]!;
        gs[l]! += acc;
      }
    }
    let dot = 0;
    for (let l = 0; l < layers; l++) dot += s[l]! * gs[l]!;
    for (let l = 0; l < layers; l++) ga[l] = s[l]! * (gs[l]! - dot);
    adamW.step(w, gw);
    adamB.step(b, gb);
    adamA.step(a, ga);
  }
  return { dim, classes, weights: w, bias: b, layers, layerLogits: a };
}

export function predictWeightedSum(model: WeightedSumModel, x: Float64Array, n: number, layers: number, dim: number): Int32Array {
  const z = new Float64Array(n * dim);
  combine(x, n, layers, dim, softmax(model.layerLogits), z);
  return predictLinear(model, z, n);
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

/** Adam (β1 0.9, β2 0.999, ε 1e-8) on one flat parameter array. */
class Adam {
  private readonly m: Float64Array;
  private readonly v: Float64Array;
  private t = 0;
  constructor(
    size: number,
    private readonly lr: number,
  ) {
    this.m = new Float64Array(size);
    this.v = new Float64Array(size);
  }
  step(param: Float64Array, grad: Float64Array): void {
    this.t++;
    const c1 = 1 - 0.9 ** this.t;
    const c2 = 1 - 0.999 ** this.t;
    for (let k = 0; k < param.length; k++) {
      const g = grad[k]!;
      this.m[k] = 0.9 * this.m[k]! + 0.1 * g;
      this.v[k] = 0.999 * this.v[k]! + 0.001 * g * g;
      param[k]! -= (this.lr * (this.m[k]! / c1)) / (Math.sqrt(this.v[k]! / c2) + 1e-8);
    }
  }
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

function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function logits(x: Float64Array, n: number, dim: number, w: Float64Array, b: Float64Array, classes: number, out: Float64Array): void {
  for (let i = 0; i < n; i++) {
    const row = i * classes;
    for (let c = 0; c < classes; c++) out[row + c] = b[c]!;
    for (let d = 0; d < dim; d++) {
      const xv = x[i * dim + d]!;
      if (xv === 0) continue;
      const wr = d * classes;
      for (let c = 0; c < classes; c++) out[row + c]! += xv * w[wr + c]!;
    }
  }
}

/** In place: logits → softmax probabilities − one-hot(y), i.e. ∂(cross-entropy)/∂logits per row. */
function softmaxRowsMinusOneHot(p: Float64Array, n: number, classes: number, y: Int32Array): void {
  for (let i = 0; i < n; i++) {
    const row = i * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, p[row + c]!);
    let sum = 0;
    for (let c = 0; c < classes; c++) {
      const e = Math.exp(p[row + c]! - max);
      p[row + c] = e;
      sum += e;
    }
    for (let c = 0; c < classes; c++) p[row + c]! /= sum;
    p[row + y[i]!]! -= 1;
  }
}

/** gw = xᵀ(P−Y)/n, gb = mean(P−Y). */
function gradients(x: Float64Array, n: number, dim: number, pMinusY: Float64Array, classes: number, gw: Float64Array, gb: Float64Array): void {
  gw.fill(0);
  gb.fill(0);
  for (let i = 0; i < n; i++) {
    const row = i * classes;
    for (let c = 0; c < classes; c++) gb[c]! += pMinusY[row + c]!;
    for (let d = 0; d < dim; d++) {
      const xv = x[i * dim + d]!;
      if (xv === 0) continue;
      const wr = d * classes;
      for (let c = 0; c < classes; c++) gw[wr + c]! += xv * pMinusY[row + c]!;
    }
  }
  for (let k = 0; k < gw.length; k++) gw[k]! /= n;
  for (let c = 0; c < classes; c++) gb[c]! /= n;
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
