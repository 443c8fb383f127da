import { describe, expect, it } from 'vitest';
import type { PairStats } from '../../server/src/engine/align/stats';
import type { ProbeSet } from '../../server/src/engine/io/probe';
import { fitSite, lsq, residual, siteSystem } from '../../server/src/engine/merge/methods/lsq';
import { ridgeSolve } from '../../server/src/engine/merge/methods/ridge';
import { randomWeights } from '../../server/src/engine/model/random';
import { mulberry32 } from '../../server/src/engine/random';
import { tinyHubertConfig } from '../helpers/tiny-model';

/** Float64 reference: solve A x = b by Gaussian elimination with partial pivoting. */
function gaussSolve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[piv]![c]!)) piv = r;
    [m[c], m[piv]] = [m[piv]!, m[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / m[c]![c]!;
      for (let k = c; k <= n; k++) m[r]![k]! -= f * m[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= m[r]![k]! * x[k]!;
    x[r] = s / m[r]![r]!;
  }
  return x;
}

/** Centred moments of rows of X (n×p) against rows of Z (n×r), as the pair statistics hold them. */
function pairStats(x: number[][], z: number[][]): PairStats {
  const n = x.length;
  const p = x[0]!.length;
  const r = z[0]!.length;
  const mean = (rows: number[][], d: number) => Float64Array.from({ length: d }, (_, j) => rows.reduce((s, row) => s + row[j]!, 0) / n);
  const mx = mean(x, p);
  const mz = mean(z, r);
  const cross = new Float64Array(p * r);
  for (const [k, row] of x.entries())
    for (let i = 0; i < p; i++) for (let j = 0; j < r; j++) cross[i * r + j] += (row[i]! - mx[i]!) * (z[k]![j]! - mz[j]!);
  return { dimA: p, dimB: r, n, meanA: mx, meanB: mz, m2A: new Float64Array(p), m2B: new Float64Array(r), cross };
}

describe('least-squares refit (merge.method lsq)', () => {
  it('ridgeSolve matches a float64 Gaussian-elimination reference of (XᵀX + αI)Wᵀ = XᵀY + αW0ᵀ', () => {
    const rand = mulberry32(3);
    const p = 6;
    const q = 3;
    const n = 20;
    const x = Array.from({ length: n }, () => Array.from({ length: p }, () => rand() - 0.5));
    const y = Array.from({ length: n }, () => Array.from({ length: q }, () => rand() - 0.5));
    const xtx = new Float64Array(p * p);
    const xty = new Float64Array(p * q);
    for (let k = 0; k < n; k++) {
      for (let i = 0; i < p; i++) {
        for (let j = 0; j < p; j++) xtx[i * p + j] += x[k]![i]! * x[k]![j]!;
        for (let c = 0; c < q; c++) xty[i * q + c] += x[k]![i]! * y[k]![c]!;
      }
    }
    const prior = Float64Array.from({ length: q * p }, () => rand() - 0.5);
    const alpha = 0.3;
    const w = ridgeSolve(xtx, xty, p, q, alpha, prior);
    for (let c = 0; c < q; c++) {
      const a = Array.from({ length: p }, (_, i) => Array.from({ length: p }, (_, j) => xtx[i * p + j]! + (i === j ? alpha : 0)));
      const ref = gaussSolve(
        a,
        Array.from({ length: p }, (_, i) => xty[i * q + c]! + alpha * prior[c * p + i]!),
      );
      ref.forEach((v, i) => expect(Math.abs(w[c * p + i]! - v)).toBeLessThan(1e-12));
    }
  });

  it('recovers the λ-mix of two affine maps from moments, and the validation residual is smallest there', () => {
    const rand = mulberry32(8);
    const p = 4;
    const q = 2;
    const n = 200;
    const xm = Array.from({ length: n }, () => Array.from({ length: p }, () => rand() - 0.5));
    // Endpoint inputs are linear in x_m here, so the mixed target is exactly affine in x_m.
    const xa = xm.map((r) => r.map((v, i) => v + 0.1 * i));
    const xb = xm.map((r) => r.map((v, i) => 2 * v - r[(i + 1) % p]!));
    const wa = Float32Array.from({ length: q * p }, () => rand() - 0.5);
    const wb = Float32Array.from({ length: q * p }, () => rand() - 0.5);
    const ba = Float32Array.of(0.2, -0.1);
    const bb = Float32Array.of(-0.3, 0.4);
    const lambda = 0.3;
    const sys = siteSystem(pairStats(xm, xm), pairStats(xm, xa), pairStats(xm, xb), wa, ba, wb, bb, lambda);
    const f = fitSite(sys, 1e-10, new Float32Array(q * p));
    for (const [k, r] of xm.entries()) {
      for (let c = 0; c < q; c++) {
        let got = f.b[c]!;
        let want = lambda * ba[c]! + (1 - lambda) * bb[c]!;
        for (let j = 0; j < p; j++) {
          got += f.w[c * p + j]! * r[j]!;
          want += lambda * wa[c * p + j]! * xa[k]![j]! + (1 - lambda) * wb[c * p + j]! * xb[k]![j]!;
        }
        expect(Math.abs(got - want)).toBeLessThan(1e-6);
      }
    }
    const worse = fitSite(sys, 10, new Float32Array(q * p));
    expect(residual(sys, f.w, f.b)).toBeLessThan(residual(sys, worse.w, worse.b));
  });

  it('is function-preserving: two copies of one model refit to that model (1e-5)', async () => {
    const cfg = tinyHubertConfig();
    const w = randomWeights(cfg, 4);
    const rand = mulberry32(2);
    const segments = Array.from({ length: 10 }, (_, i) => ({
      source: 0,
      file: `n${i}`,
      offsetSamples: 0,
      offsetSeconds: 0,
      paddedSamples: 0,
      samples: Float32Array.from({ length: 1600 }, (_, k) => 0.3 * Math.sin(k / (5 + i)) + 0.2 * (rand() - 0.5)),
    }));
    const probe: ProbeSet = {
      sampleRate: 16000,
      segmentSeconds: 0.1,
      segmentSamples: 1600,
      seed: 0,
      segments,
      sources: [],
      totalSegments: 10,
      totalSeconds: 1,
    };
    const merged = await lsq.merge({
      config: cfg,
      anchor: w,
      other: w,
      lambda: 0.4,
      probe,
      batchSize: 4,
      seed: 0,
      session: {},
      emit: () => undefined,
      signal: undefined,
    });
    for (const [name, t] of w) {
      const m = merged.get(name)!.data;
      let err = 0;
      let scale = 0;
      t.data.forEach((v, i) => {
        err = Math.max(err, Math.abs(m[i]! - v));
        scale = Math.max(scale, Math.abs(v));
      });
      expect(err / scale, name).toBeLessThan(1e-5);
    }
  });
});
