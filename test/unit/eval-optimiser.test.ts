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

  it('takes the same steps, to the last bit, as the textbook two-loop recursion (reused pair buffers, fused passes)', async () => {
    // A smooth non-quadratic objective (a softplus ridge) in 40 dimensions, run past the memory so that old curvature
    // pairs are dropped and their buffers reused; every evaluated point is compared, not only the result.
    const size = 40;
    const rand = mulberry32(11);
    const a = Float64Array.from({ length: size * size }, () => rand() - 0.5);
    const f = (t: Float64Array, g: Float64Array) => {
      let v = 0;
      g.fill(0);
      for (let i = 0; i < size; i++) {
        let u = 0;
        for (let j = 0; j < size; j++) u += a[i * size + j]! * t[j]!;
        const e = Math.exp(-Math.abs(u));
        v += Math.max(u, 0) + Math.log1p(e) - 0.3 * u + 0.05 * t[i]! * t[i]!;
        const sig = u >= 0 ? 1 / (1 + e) : e / (1 + e);
        for (let j = 0; j < size; j++) g[j]! += (sig - 0.3) * a[i * size + j]!;
        g[i]! += 0.1 * t[i]!;
      }
      return v;
    };
    const recorded = (points: number[][]) => (t: Float64Array, g: Float64Array) => {
      points.push(Array.from(t));
      return f(t, g);
    };
    const ours: number[][] = [];
    const theirs: number[][] = [];
    const start = () => Float64Array.from({ length: size }, (_, k) => Math.sin(k + 1));
    const t1 = start();
    const t2 = start();
    const f1 = await lbfgs(recorded(ours), t1, 30, 5);
    const f2 = await textbookLbfgs(recorded(theirs), t2, 30, 5);
    expect(ours.length).toBeGreaterThan(30); // every one of the 30 iterations ran, 25 past the memory
    expect(ours).toEqual(theirs);
    expect(f1).toBe(f2);
    expect(Array.from(t1)).toEqual(Array.from(t2));
  });
});

/** The L-BFGS of lbfgs.ts written plainly: one dot product or update per pass, fresh arrays for each curvature pair. */
async function textbookLbfgs(
  f: (t: Float64Array, g: Float64Array) => number,
  theta: Float64Array,
  iterations: number,
  memory: number,
): Promise<number> {
  const size = theta.length;
  const dot = (x: Float64Array, y: Float64Array) => x.reduce((s, v, k) => s + v * y[k]!, 0);
  const axpy = (alpha: number, x: Float64Array, y: Float64Array) => y.forEach((v, k) => (y[k] = v + alpha * x[k]!));
  let g = new Float64Array(size);
  let fx = f(theta, g);
  const ss: Float64Array[] = [];
  const ys: Float64Array[] = [];
  const rhos: number[] = [];
  const alpha = new Float64Array(memory);
  for (let it = 0; it < iterations; it++) {
    if (g.reduce((m, v) => Math.max(m, Math.abs(v)), 0) < 1e-7) break;
    const dir = g.map((v) => -v);
    for (let j = ss.length - 1; j >= 0; j--) {
      alpha[j] = rhos[j]! * dot(ss[j]!, dir);
      axpy(-alpha[j]!, ys[j]!, dir);
    }
    let step = 1;
    if (ss.length > 0) {
      const last = ss.length - 1;
      const gamma = dot(ss[last]!, ys[last]!) / dot(ys[last]!, ys[last]!);
      dir.forEach((v, k) => (dir[k] = v * gamma));
    } else step = Math.min(1, 1 / Math.sqrt(dot(g, g)));
    for (let j = 0; j < ss.length; j++) axpy(alpha[j]! - rhos[j]! * dot(ys[j]!, dir), ss[j]!, dir);
    let slope = dot(g, dir);
    if (!(slope < 0)) {
      ss.length = ys.length = rhos.length = 0;
      dir.forEach((_, k) => (dir[k] = -g[k]!));
      slope = dot(g, dir);
      step = Math.min(1, 1 / Math.sqrt(-slope));
    }
    const trial = new Float64Array(size);
    let gTrial = new Float64Array(size);
    let fTrial = Number.NaN;
    let accepted = false;
    for (let tries = 0; tries < 30; tries++) {
      trial.forEach((_, k) => (trial[k] = theta[k]! + step * dir[k]!));
      gTrial = new Float64Array(size);
      fTrial = f(trial, gTrial);
      if (Number.isFinite(fTrial) && fTrial <= fx + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    if (!accepted) break;
    const s = trial.map((v, k) => v - theta[k]!);
    const yv = gTrial.map((v, k) => v - g[k]!);
    const sy = dot(s, yv);
    if (sy > 1e-12) {
      if (ss.length === memory) {
        ss.shift();
        ys.shift();
        rhos.shift();
      }
      ss.push(s);
      ys.push(yv);
      rhos.push(1 / sy);
    }
    theta.set(trial);
    g = gTrial;
    fx = fTrial;
  }
  return fx;
}

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

  it('evaluates each point afresh although its parameter buffers are reused (results independent of call order)', async () => {
    const rand = mulberry32(5);
    const [n, layers, dim, classes] = [9, 4, 6, 3];
    const x = Float64Array.from({ length: n * layers * dim }, () => rand() * 2 - 1);
    const y = Int32Array.from({ length: n }, (_, i) => i % classes);
    const point = () =>
      [
        Float64Array.from({ length: layers }, () => rand()),
        Float64Array.from({ length: classes * dim }, () => rand() - 0.5),
        Float64Array.from({ length: classes }, () => rand() - 0.5),
      ] as const;
    const p1 = point();
    const p2 = point();
    const snapshot = (g: Awaited<ReturnType<ProbeObjective['evaluate']>>) => ({
      loss: g.loss,
      weights: Array.from(g.weights),
      bias: Array.from(g.bias),
      layerWeights: Array.from(g.layerWeights),
    });
    const objective = await ProbeObjective.create(x, y, n, layers, dim, classes);
    const first = await objective.evaluate(...p1);
    const kept = snapshot(first);
    const second = snapshot(await objective.evaluate(...p2));
    const again = snapshot(await objective.evaluate(...p1));
    expect(snapshot(first)).toEqual(kept); // a later evaluation does not write into an earlier result
    expect(again).toEqual(kept);
    expect(second.loss).not.toBe(kept.loss);
    // A second objective over other data, evaluated in between, does not disturb the first.
    const other = await ProbeObjective.create(
      x.map((v) => -v),
      y,
      n,
      layers,
      dim,
      classes,
    );
    await other.evaluate(...p2);
    expect(snapshot(await objective.evaluate(...p2))).toEqual(second);
  });
});
