// The report's heatmaps show matched structure: a large matrix is sampled, not block-averaged into invisibility.
import { describe, expect, it } from 'vitest';
import { blockHeatmap, HEATMAP_MAX } from '../../server/src/engine/pipeline/heatmap';

/** n × n correlations: unit i of the anchor matches unit match[i] of the other with strength s(i); small noise elsewhere. */
function matrix(n: number, match: Int32Array, strength: (i: number) => number): Float64Array {
  const r = new Float64Array(n * n);
  let seed = 1;
  const noise = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 0.02;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) r[i * n + j] = noise();
  for (let i = 0; i < n; i++) r[i * n + match[i]!] = strength(i);
  return r;
}

describe('correlation heatmaps', () => {
  it('512 units with a 0.3 matched diagonal: the "after" view shows it at full strength, the "before" view does not', () => {
    const n = 512;
    const perm = Int32Array.from({ length: n }, (_, i) => (i * 37 + 5) % n); // the other model's unit perm[i] matches anchor unit i
    const h = blockHeatmap(
      matrix(n, perm, () => 0.3),
      n,
      perm,
    );
    expect(h.size).toBe(HEATMAP_MAX);
    expect(h.blocks).toBe(1);
    expect(h.units).toHaveLength(HEATMAP_MAX);
    const diag = (m: number[]) => Array.from({ length: h.size }, (_, k) => m[k * h.size + k]!);
    // Block-averaging 8 × 8 would have shown 0.3 / 8 ≈ 0.04 on the diagonal.
    expect(Math.min(...diag(h.after))).toBeCloseTo(0.3, 5);
    expect(Math.max(...diag(h.before).map(Math.abs))).toBeLessThan(0.02);
  });

  it('samples evenly over the units ranked by matched correlation, best first (not the best 64)', () => {
    const n = 256;
    const identity = Int32Array.from({ length: n }, (_, i) => i);
    const h = blockHeatmap(
      matrix(n, identity, (i) => i / n),
      n,
      identity,
    ); // unit i matched with strength i / n
    const diag = Array.from({ length: h.size }, (_, k) => h.after[k * h.size + k]!);
    expect(diag[0]).toBeCloseTo((n - 1) / n, 3);
    expect(diag.at(-1)!).toBeLessThan(0.05);
    for (let k = 1; k < diag.length; k++) expect(diag[k]!).toBeLessThanOrEqual(diag[k - 1]!);
  });

  it('a small matrix is shown whole, unsampled', () => {
    const n = 8;
    const perm = Int32Array.from([1, 0, 3, 2, 5, 4, 7, 6]);
    const h = blockHeatmap(
      matrix(n, perm, () => 0.9),
      n,
      perm,
    );
    expect(h.size).toBe(8);
    expect(h.units).toBeUndefined();
    for (let k = 0; k < n; k++) expect(h.after[k * n + k]).toBeCloseTo(0.9, 5);
  });
});
