/**
 * L-BFGS: a general minimiser of a smooth function of a Float64Array, used by the linear probes
 * (eval/probe-classifier.ts). Kept apart from the probes because nothing in it knows about classifiers.
 */

/** Value of the objective at theta; writes its gradient into grad. */
export type Objective = (theta: Float64Array, grad: Float64Array) => number | Promise<number>;

/**
 * L-BFGS (memory 10) with a backtracking Armijo line search, in place on theta, for exactly `iterations` iterations
 * unless the gradient vanishes (‖g‖∞ < 1e-7) or no descent step is found. Deterministic.
 *
 * The curvature pairs live in `memory` preallocated buffers reused in turn, and each pass of the two-loop recursion
 * that updates the direction also takes the next pair's dot product with it: the same operations in the same order
 * as one dot product and one update at a time (so the same iterates to the last bit), in half the passes over memory.
 */
export async function lbfgs(f: Objective, theta: Float64Array, iterations: number, memory = 10): Promise<number> {
  const size = theta.length;
  let g = new Float64Array(size);
  let fx = await f(theta, g);
  // History, oldest first: ss[j], ys[j], rhos[j] for j < count; buffers of dropped pairs are reused.
  const ss: Float64Array[] = [];
  const ys: Float64Array[] = [];
  const rhos: number[] = [];
  const spare: [Float64Array, Float64Array][] = [];
  const dir = new Float64Array(size);
  const trial = new Float64Array(size);
  let gTrial = new Float64Array(size);
  const alpha = new Float64Array(memory);
  for (let it = 0; it < iterations; it++) {
    let gmax = 0;
    for (let k = 0; k < size; k++) gmax = Math.max(gmax, Math.abs(g[k]!));
    if (gmax < 1e-7) break;
    // two-loop recursion: dir = −H·g
    const last = ss.length - 1;
    let dot = 0;
    for (let k = 0; k < size; k++) {
      dir[k] = -g[k]!;
      if (last >= 0) dot += ss[last]![k]! * dir[k]!;
    }
    for (let j = last; j >= 0; j--) {
      alpha[j] = rhos[j]! * dot;
      dot = addScaledThenDot(dir, -alpha[j]!, ys[j]!, j > 0 ? ss[j - 1] : undefined);
    }
    let step = 1;
    if (last >= 0) {
      const gamma = dotp(ss[last]!, ys[last]!) / dotp(ys[last]!, ys[last]!);
      const y0 = ys[0]!;
      dot = 0;
      for (let k = 0; k < size; k++) {
        dir[k]! *= gamma;
        dot += y0[k]! * dir[k]!;
      }
    } else {
      step = Math.min(1, 1 / Math.sqrt(dotp(g, g)));
    }
    for (let j = 0; j <= last; j++) {
      const beta = rhos[j]! * dot;
      dot = addScaledThenDot(dir, alpha[j]! - beta, ss[j]!, j < last ? ys[j + 1] : undefined);
    }
    let slope = dotp(g, dir);
    if (!(slope < 0)) {
      // not a descent direction (curvature pairs gone stale): restart from steepest descent
      while (ss.length > 0) spare.push([ss.pop()!, ys.pop()!]);
      rhos.length = 0;
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
    const [s, yv] = spare.pop() ?? [new Float64Array(size), new Float64Array(size)];
    let sy = 0;
    for (let k = 0; k < size; k++) {
      s[k] = trial[k]! - theta[k]!;
      yv[k] = gTrial[k]! - g[k]!;
      sy += s[k]! * yv[k]!;
    }
    if (sy > 1e-12) {
      if (ss.length === memory) {
        spare.push([ss.shift()!, ys.shift()!]);
        rhos.shift();
      }
      ss.push(s);
      ys.push(yv);
      rhos.push(1 / sy);
    } else spare.push([s, yv]);
    theta.set(trial);
    [g, gTrial] = [gTrial, g];
    fx = fTrial;
  }
  return fx;
}

/** dir += a·x, and in the same pass next·dir of the updated dir (0 without `next`). */
function addScaledThenDot(dir: Float64Array, a: number, x: Float64Array, next: Float64Array | undefined): number {
  if (!next) {
    for (let k = 0; k < dir.length; k++) dir[k]! += a * x[k]!;
    return 0;
  }
  let dot = 0;
  for (let k = 0; k < dir.length; k++) {
    dir[k]! += a * x[k]!;
    dot += next[k]! * dir[k]!;
  }
  return dot;
}

function dotp(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k]! * b[k]!;
  return s;
}
