import { describe, expect, it } from 'vitest';
import { lbfgs } from '../../server/src/engine/eval/lbfgs';
import { ProbeObjective } from '../../server/src/engine/eval/probe-objective';
import { mulberry32 } from '../../server/src/engine/random';

describe('lbfgs', () => {
  it('reaches the minimum of the Rosenbrock function from the classic start', async () => {
    const theta = Float64Array.from([-1.2, 1]);
    const f = (t: Float64Array, g: Float64Array) => {
      const [x, y] = [t[0]!, t[1]!];
      g[0] = -2 * (1 - x) - 400 * x * (y - x * x);
      g[1] = 200 * (y - x * x);
      return (1 - x) ** 2 + 100 * (y - x * x) ** 2;
    };
    const fx = await lbfgs(f, theta, 200);
    expect(fx).toBeLessThan(1e-12);
    expect(theta[0]).toBeCloseTo(1, 5);
    expect(theta[1]).toBeCloseTo(1, 5);
  });

  it('solves a convex quadratic (async objective) to its closed form, and stops early when the gradient vanishes', async () => {
    // f = ½ θᵀAθ − bᵀθ with A = diag(1..6) + 0.5·11ᵀ; the minimum is A⁻¹b, checked through Aθ = b.
    const n = 6;
    const A = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? i + 1 : 0) + 0.5));
    const b = Array.from({ length: n }, (_, i) => i - 2);
    let calls = 0;
    const f = async (t: Float64Array, g: Float64Array) => {
      calls++;
      let v = 0;
      for (let i = 0; i < n; i++) {
        let ai = 0;
        for (let j = 0; j < n; j++) ai += A[i]![j]! * t[j]!;
        g[i] = ai - b[i]!;
        v += 0.5 * t[i]! * ai - b[i]! * t[i]!;
      }
      return v;
    };
    const theta = new Float64Array(n);
    await lbfgs(f, theta, 1000);
    for (let i = 0; i < n; i++) expect(A[i]!.reduce((s, a, j) => s + a * theta[j]!, 0)).toBeCloseTo(b[i]!, 6);
    expect(calls).toBeLessThan(100);
  });
});

describe('ProbeObjective (onnxruntime, float64)', () => {
  it('gives the loss and gradients of a float64 JS reference to 1e-12', async () => {
    const rand = mulberry32(3);
    const [n, layers, dim, classes] = [7, 3, 5, 4];
    const x = Float64Array.from({ length: n * layers * dim }, () => rand() * 2 - 1);
    const y = Int32Array.from({ length: n }, (_, i) => (i * 3) % classes);
    const s = Float64Array.from([0.2, 0.5, 0.3]);
    const w = Float64Array.from({ length: classes * dim }, () => rand() - 0.5);
    const b = Float64Array.from({ length: classes }, () => rand() - 0.5);

    // Reference: z = Σ s_l x_l, P = softmax(zWᵀ + b), R = P − Y; loss = −Σ log P_iy; gW = Rᵀz; gb = Σ R; gs_l = Σ (RW) ⊙ x_l
    let loss = 0;
    const gw = new Float64Array(classes * dim);
    const gb = new Float64Array(classes);
    const gs = new Float64Array(layers);
    for (let i = 0; i < n; i++) {
      const z = Array.from({ length: dim }, (_, d) => s.reduce((k, sl, l) => k + sl * x[(i * layers + l) * dim + d]!, 0));
      const logit = Array.from({ length: classes }, (_, c) => b[c]! + z.reduce((k, zd, d) => k + zd * w[c * dim + d]!, 0));
      const max = Math.max(...logit);
      const sum = logit.reduce((k, v) => k + Math.exp(v - max), 0);
      const p = logit.map((v) => Math.exp(v - max) / sum);
      loss -= Math.log(p[y[i]!]!);
      const r = p.map((v, c) => v - (c === y[i] ? 1 : 0));
      for (let c = 0; c < classes; c++) {
        gb[c]! += r[c]!;
        for (let d = 0; d < dim; d++) gw[c * dim + d]! += r[c]! * z[d]!;
      }
      for (let l = 0; l < layers; l++) {
        for (let d = 0; d < dim; d++) {
          const gz = r.reduce((k, rc, c) => k + rc * w[c * dim + d]!, 0);
          gs[l]! += gz * x[(i * layers + l) * dim + d]!;
        }
      }
    }

    const objective = await ProbeObjective.create(x, y, n, layers, dim, classes);
    const g = await objective.evaluate(s, w, b);
    expect(Math.abs(g.loss - loss)).toBeLessThan(1e-12 * Math.abs(loss));
    const close = (a: Float64Array, e: Float64Array) => a.forEach((v, k) => expect(Math.abs(v - e[k]!)).toBeLessThan(1e-12));
    expect(g.weights).toHaveLength(classes * dim);
    close(g.weights, gw);
    close(g.bias, gb);
    close(g.layerWeights, gs);
  });
});
