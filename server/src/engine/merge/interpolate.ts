/**
 * Per-tensor interpolation between the anchor (weight λ) and the aligned other (weight 1 − λ), computed in float64
 * and rounded once to float32. λ = 1 and λ = 0 return exact copies of the anchor and the other.
 */

/** λ·a + (1 − λ)·b. */
export function lerpTensor(a: Float32Array, b: Float32Array, lambda: number): Float32Array {
  if (lambda === 1) return Float32Array.from(a);
  if (lambda === 0) return Float32Array.from(b);
  const out = new Float32Array(a.length);
  const mu = 1 - lambda;
  for (let i = 0; i < a.length; i++) out[i] = lambda * a[i]! + mu * b[i]!;
  return out;
}

export interface SlerpResult {
  data: Float32Array;
  /** True when the tensor was interpolated linearly: a zero tensor, or (anti)parallel tensors (sin Ω below eps). */
  linear: boolean;
}

/**
 * Spherical interpolation of the whole tensor as one vector: the direction moves along the great circle from â to b̂
 * (angle Ω, fraction 1 − λ of the way), the norm is interpolated linearly, λ‖a‖ + (1 − λ)‖b‖ — so two tensors of
 * equal norm keep it, and unequal ones do not get the norm dip of linear interpolation between diverging directions.
 * Falls back to linear interpolation where the direction is undefined or ill-conditioned (a zero tensor, or
 * sin Ω < eps: near-parallel, where both agree, or antiparallel, where the great circle is not unique).
 */
export function slerpTensor(a: Float32Array, b: Float32Array, lambda: number, eps = 1e-6): SlerpResult {
  if (lambda === 1) return { data: Float32Array.from(a), linear: false };
  if (lambda === 0) return { data: Float32Array.from(b), linear: false };
  let aa = 0;
  let bb = 0;
  let ab = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    aa += x * x;
    bb += y * y;
    ab += x * y;
  }
  const na = Math.sqrt(aa);
  const nb = Math.sqrt(bb);
  if (na === 0 || nb === 0) return { data: lerpTensor(a, b, lambda), linear: true };
  const cos = Math.min(1, Math.max(-1, ab / (na * nb)));
  const omega = Math.acos(cos);
  const sin = Math.sin(omega);
  if (sin < eps) return { data: lerpTensor(a, b, lambda), linear: true };
  const t = 1 - lambda; // fraction of the way toward the other
  const norm = lambda * na + t * nb;
  const ca = (Math.sin((1 - t) * omega) / sin) * (norm / na);
  const cb = (Math.sin(t * omega) / sin) * (norm / nb);
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = ca * a[i]! + cb * b[i]!;
  return { data: out, linear: false };
}
