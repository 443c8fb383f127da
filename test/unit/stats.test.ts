import { describe, expect, it } from 'vitest';
import { isEngineError } from '../../server/src/engine/errors';
import {
  addMoments,
  addSums,
  correlation,
  createPairStats,
  deadUnits,
  mergeStats,
  type PairStats,
} from '../../server/src/engine/align/stats';
import { gaussian, mulberry32 } from '../../server/src/engine/random';

/** n frames of correlated anchor (dA units) and other (dB units) activations, float32 like onnxruntime's. */
function makeData(n: number, dA: number, dB: number, seed: number): { a: Float32Array; b: Float32Array } {
  const rng = mulberry32(seed);
  const a = new Float32Array(n * dA);
  const b = new Float32Array(n * dB);
  for (let t = 0; t < n; t++) {
    const z = gaussian(rng);
    for (let i = 0; i < dA; i++) a[t * dA + i] = 3 + (i + 1) * 0.5 * z + gaussian(rng) * (1 + i * 0.1);
    for (let j = 0; j < dB; j++) b[t * dB + j] = -2 + (j % 2 ? -1 : 1) * z + 0.4 * a[t * dA + (j % dA)]! + gaussian(rng);
  }
  return { a, b };
}

/** What the pair graph emits for frames [t0, t1): centred moments (computed here in float64, stored float32). */
function moments(a: Float32Array, b: Float32Array, dA: number, dB: number, t0: number, t1: number) {
  const n = t1 - t0;
  const meanA = new Float64Array(dA);
  const meanB = new Float64Array(dB);
  for (let t = t0; t < t1; t++) {
    for (let i = 0; i < dA; i++) meanA[i] += a[t * dA + i]! / n;
    for (let j = 0; j < dB; j++) meanB[j] += b[t * dB + j]! / n;
  }
  const m2A = new Float64Array(dA);
  const m2B = new Float64Array(dB);
  const cross = new Float64Array(dA * dB);
  for (let t = t0; t < t1; t++) {
    for (let i = 0; i < dA; i++) {
      const da = a[t * dA + i]! - meanA[i]!;
      m2A[i] += da * da;
      for (let j = 0; j < dB; j++) cross[i * dB + j] += da * (b[t * dB + j]! - meanB[j]!);
    }
    for (let j = 0; j < dB; j++) m2B[j] += (b[t * dB + j]! - meanB[j]!) ** 2;
  }
  return { n, meanA, meanB, m2A, m2B, cross };
}

function sums(a: Float32Array, b: Float32Array, dA: number, dB: number, t0: number, t1: number) {
  const sumA = new Float64Array(dA);
  const sumB = new Float64Array(dB);
  const sumSqA = new Float64Array(dA);
  const sumSqB = new Float64Array(dB);
  const sumAB = new Float64Array(dA * dB);
  for (let t = t0; t < t1; t++) {
    for (let i = 0; i < dA; i++) {
      const x = a[t * dA + i]!;
      sumA[i] += x;
      sumSqA[i] += x * x;
      for (let j = 0; j < dB; j++) sumAB[i * dB + j] += x * b[t * dB + j]!;
    }
    for (let j = 0; j < dB; j++) {
      sumB[j] += b[t * dB + j]!;
      sumSqB[j] += b[t * dB + j]! ** 2;
    }
  }
  return { n: t1 - t0, sumA, sumB, sumSqA, sumSqB, sumAB };
}

/** The textbook two-pass Pearson correlation over all frames, in float64. */
function reference(a: Float32Array, b: Float32Array, dA: number, dB: number, n: number): Float64Array {
  const r = new Float64Array(dA * dB);
  for (let i = 0; i < dA; i++)
    for (let j = 0; j < dB; j++) {
      let ma = 0;
      let mb = 0;
      for (let t = 0; t < n; t++) {
        ma += a[t * dA + i]!;
        mb += b[t * dB + j]!;
      }
      ma /= n;
      mb /= n;
      let sab = 0;
      let saa = 0;
      let sbb = 0;
      for (let t = 0; t < n; t++) {
        const x = a[t * dA + i]! - ma;
        const y = b[t * dB + j]! - mb;
        sab += x * y;
        saa += x * x;
        sbb += y * y;
      }
      r[i * dB + j] = sab / Math.sqrt(saa * sbb);
    }
  return r;
}

function maxDiff(x: Float64Array, y: Float64Array): number {
  let m = 0;
  for (let k = 0; k < x.length; k++) m = Math.max(m, Math.abs(x[k]! - y[k]!));
  return m;
}

function accumulate(
  a: Float32Array,
  b: Float32Array,
  dA: number,
  dB: number,
  n: number,
  batch: number,
  form: 'moments' | 'sums',
): PairStats {
  const s = createPairStats(dA, dB);
  for (let t = 0; t < n; t += batch) {
    const end = Math.min(n, t + batch);
    if (form === 'moments') addMoments(s, moments(a, b, dA, dB, t, end));
    else addSums(s, sums(a, b, dA, dB, t, end));
  }
  return s;
}

describe('tap-pair statistics', () => {
  const dA = 6;
  const dB = 5;
  const n = 997;
  const { a, b } = makeData(n, dA, dB, 1);
  const ref = reference(a, b, dA, dB, n);

  it('gives the float64 reference correlation, signed, from centred moments and from raw sums', () => {
    const r = correlation(accumulate(a, b, dA, dB, n, 64, 'moments'));
    expect(maxDiff(r, ref)).toBeLessThan(1e-12);
    expect(Math.min(...r)).toBeLessThan(-0.2); // signed: negative correlations survive
    const rs = correlation(accumulate(a, b, dA, dB, n, 64, 'sums'));
    expect(maxDiff(rs, ref)).toBeLessThan(1e-10);
  });

  it('does not depend on the batch size', () => {
    const whole = accumulate(a, b, dA, dB, n, n, 'moments');
    for (const batch of [1, 7, 100, 333]) {
      const s = accumulate(a, b, dA, dB, n, batch, 'moments');
      expect(s.n).toBe(n);
      expect(maxDiff(s.meanA, whole.meanA)).toBeLessThan(1e-12);
      expect(maxDiff(s.m2B, whole.m2B) / Math.max(...whole.m2B)).toBeLessThan(1e-12);
      expect(maxDiff(s.cross, whole.cross) / Math.max(...whole.cross.map(Math.abs))).toBeLessThan(1e-12);
      expect(maxDiff(correlation(s), correlation(whole))).toBeLessThan(1e-12);
    }
  });

  it('adds shards in any order', () => {
    const cuts = [0, 100, 350, 351, 800, n];
    const shards = cuts.slice(0, -1).map((t0, k) => {
      const s = createPairStats(dA, dB);
      addMoments(s, moments(a, b, dA, dB, t0, cuts[k + 1]!));
      return s;
    });
    const forward = shards.reduce((acc, s) => mergeStats(acc, s), createPairStats(dA, dB));
    const backward = [...shards].reverse().reduce((acc, s) => mergeStats(acc, s), createPairStats(dA, dB));
    const tree = mergeStats(mergeStats(shards[3]!, shards[0]!), mergeStats(shards[4]!, mergeStats(shards[2]!, shards[1]!)));
    for (const s of [forward, backward, tree]) {
      expect(s.n).toBe(n);
      expect(maxDiff(correlation(s), ref)).toBeLessThan(1e-12);
    }
    // Adding a shard does not modify its inputs.
    expect(shards[0]!.n).toBe(100);
  });

  it('guards zero-variance units: correlation 0 and a dead-unit count', () => {
    const m = 50;
    const x = new Float32Array(m * 3);
    const y = new Float32Array(m * 2);
    const rng = mulberry32(3);
    for (let t = 0; t < m; t++) {
      x[t * 3] = gaussian(rng);
      x[t * 3 + 1] = 0.7; // constant: a dead unit
      x[t * 3 + 2] = gaussian(rng);
      y[t * 2] = x[t * 3]! * 2;
      y[t * 2 + 1] = -1.5; // dead
    }
    const s = accumulate(x, y, 3, 2, m, 16, 'sums');
    const r = correlation(s);
    expect(Array.from(r).every(Number.isFinite)).toBe(true);
    expect(r[0]).toBeCloseTo(1, 6);
    expect(r[1 * 2 + 0]).toBe(0);
    expect(r[0 * 2 + 1]).toBe(0);
    expect(deadUnits(s)).toEqual({ anchor: 1, other: 1 });
  });

  it('takes its first batch as float32 (what the pair graph emits), float64 or plain numbers alike, without aliasing it', () => {
    const m64 = moments(a, b, dA, dB, 0, 300);
    const f32 = (v: Float64Array) => Float32Array.from(v);
    const m32 = { n: m64.n, meanA: f32(m64.meanA), meanB: f32(m64.meanB), m2A: f32(m64.m2A), m2B: f32(m64.m2B), cross: f32(m64.cross) };
    const plain = { n: m32.n, meanA: [...m32.meanA], meanB: [...m32.meanB], m2A: [...m32.m2A], m2B: [...m32.m2B], cross: [...m32.cross] };
    const rest = moments(a, b, dA, dB, 300, n);
    const fromF32 = addMoments(addMoments(createPairStats(dA, dB), m32), rest);
    const fromPlain = addMoments(addMoments(createPairStats(dA, dB), plain), rest);
    for (const k of ['meanA', 'meanB', 'm2A', 'm2B', 'cross'] as const) expect(fromF32[k]).toEqual(fromPlain[k]);
    // float32 rounding of one batch's moments stays far below what the alignment can see.
    expect(maxDiff(correlation(fromF32), ref)).toBeLessThan(1e-6);
    // The accumulator copies the batch: changing the batch afterwards changes nothing.
    const first = addMoments(createPairStats(dA, dB), m32);
    const before = first.cross.slice();
    m32.cross.fill(0);
    expect(first.cross).toEqual(before);
  });

  it('refuses mismatched shapes and non-finite statistics', () => {
    const s = createPairStats(2, 2);
    expect(() => addMoments(s, { n: 3, meanA: [0, 0], meanB: [0], m2A: [1, 1], m2B: [1, 1], cross: [0, 0, 0, 0] })).toThrow(/meanB/);
    addMoments(s, { n: 3, meanA: [0, 0], meanB: [0, 0], m2A: [1, 1], m2B: [1, 1], cross: [NaN, 0, 0, 0] });
    let err: unknown;
    try {
      correlation(s);
    } catch (e) {
      err = e;
    }
    expect(isEngineError(err, 'non-finite')).toBe(true);
    expect(() => mergeStats(createPairStats(2, 3), createPairStats(3, 2))).toThrow(/2×3/);
  });
});
