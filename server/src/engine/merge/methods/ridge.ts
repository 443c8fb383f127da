/**
 * Small dense float64 linear algebra for least-squares refits: Cholesky solves of ridge normal equations.
 * Sizes are a layer's input width (hundreds to a few thousand), so plain loops suffice.
 */
import { EngineError } from '../../errors';

/** In-place Cholesky factor L (lower, row-major) of a symmetric positive-definite p×p matrix. */
export function cholesky(a: Float64Array, p: number): Float64Array {
  const l = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * p + j]!;
      for (let k = 0; k < j; k++) s -= l[i * p + k]! * l[j * p + k]!;
      if (i === j) {
        if (!(s > 0))
          throw new EngineError(
            'runtime-error',
            `least-squares refit: the normal equations are not positive definite (pivot ${s} at ${i})`,
          );
        l[i * p + i] = Math.sqrt(s);
      } else l[i * p + j] = s / l[j * p + j]!;
    }
  }
  return l;
}

/**
 * Ridge regression toward a prior from normal equations: W (q×p, row-major) minimising ‖X Wᵀ − Y‖² + α‖W − W0‖²,
 * given XᵀX (p×p) and XᵀY (p×q): (XᵀX + αI) Wᵀ = XᵀY + α W0ᵀ.
 */
export function ridgeSolve(
  xtx: Float64Array,
  xty: Float64Array,
  p: number,
  q: number,
  alpha: number,
  prior: ArrayLike<number>,
): Float64Array {
  const a = Float64Array.from(xtx);
  for (let i = 0; i < p; i++) a[i * p + i] += alpha;
  const l = cholesky(a, p);
  const w = new Float64Array(q * p);
  const y = new Float64Array(p);
  for (let c = 0; c < q; c++) {
    // Forward then back substitution for column c of Wᵀ.
    for (let i = 0; i < p; i++) {
      let s = xty[i * q + c]! + alpha * prior[c * p + i]!;
      for (let k = 0; k < i; k++) s -= l[i * p + k]! * y[k]!;
      y[i] = s / l[i * p + i]!;
    }
    for (let i = p - 1; i >= 0; i--) {
      let s = y[i]!;
      for (let k = i + 1; k < p; k++) s -= l[k * p + i]! * w[c * p + k]!;
      w[c * p + i] = s / l[i * p + i]!;
    }
  }
  return w;
}
