/**
 * L-BFGS: a general minimiser of a smooth function of a Float64Array, used by the linear probes
 * (eval/probe-classifier.ts). Kept apart from the probes because nothing in it knows about classifiers.
 */

/** Value of the objective at theta; writes its gradient into grad. */
export type Objective = (theta: Float64Array, grad: Float64Array) => number | Promise<number>;

/**
 * L-BFGS (memory 10) with a backtracking Armijo line search, in place on theta, for exactly `iterations` iterations
 * unless the gradient vanishes (‖g‖∞ < 1e-7) or no descent step is found. Deterministic.
 */
export async function lbfgs(f: Objective, theta: Float64Array, iterations: number, memory = 10): Promise<number> {
  const size = theta.length;
  let g = new Float64Array(size);
  let fx = await f(theta, g);
  const ss: Float64Array[] = [];
  const ys: Float64Array[] = [];
  const rhos: number[] = [];
  const dir = new Float64Array(size);
  const trial = new Float64Array(size);
  let gTrial = new Float64Array(size);
  const alpha = new Float64Array(memory);
  for (let it = 0; it < iterations; it++) {
    let gmax = 0;
    for (let k = 0; k < size; k++) gmax = Math.max(gmax, Math.abs(g[k]!));
    if (gmax < 1e-7) break;
    // two-loop recursion: dir = −H·g
    for (let k = 0; k < size; k++) dir[k] = -g[k]!;
    for (let j = ss.length - 1; j >= 0; j--) {
      alpha[j] = rhos[j]! * dotp(ss[j]!, dir);
      axpy(-alpha[j]!, ys[j]!, dir);
    }
    let step = 1;
    if (ss.length > 0) {
      const last = ss.length - 1;
      const gamma = dotp(ss[last]!, ys[last]!) / dotp(ys[last]!, ys[last]!);
      for (let k = 0; k < size; k++) dir[k]! *= gamma;
    } else {
      step = Math.min(1, 1 / Math.sqrt(dotp(g, g)));
    }
    for (let j = 0; j < ss.length; j++) {
      const beta = rhos[j]! * dotp(ys[j]!, dir);
      axpy(alpha[j]! - beta, ss[j]!, dir);
    }
    let slope = dotp(g, dir);
    if (!(slope < 0)) {
      // not a descent direction (curvature pairs gone stale): restart from steepest descent
      ss.length = ys.length = rhos.length = 0;
      for (let k = 0; k < size; k++) dir[k] = -g[k]!;
      slope = dotp(g, dir);
      step = Math.min(1, 1 / Math.sqrt(-slope));
    }
    let fTrial = Number.NaN;
    let accepted = false;
    for (let tries = 0; tries < 30; tries++) {
      for (let k = 0; k < size; k++) trial[k] = theta[k]! + step * dir[k]!;
      fTrial = await f(trial, gTrial);
      if (Number.isFinite(fTrial) && fTrial <= fx + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    if (!accepted) break;
    const s = new Float64Array(size);
    const yv = new Float64Array(size);
    for (let k = 0; k < size; k++) {
      s[k] = trial[k]! - theta[k]!;
      yv[k] = gTrial[k]! - g[k]!;
    }
    const sy = dotp(s, yv);
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
    [g, gTrial] = [gTrial, g];
    fx = fTrial;
  }
  return fx;
}

function dotp(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k]! * b[k]!;
  return s;
}

function axpy(alpha: number, x: Float64Array, y: Float64Array): void {
  for (let k = 0; k < y.length; k++) y[k]! += alpha * x[k]!;
}
