/**
 * Small pictures of big correlation matrices for the report, before and after the permutation (after = the other
 * model's units gathered by the permutation, so a good alignment shows a diagonal).
 *
 * Up to 64 units, the whole matrix. Beyond that, 64 of the units, un-averaged: averaging 512 units into 64 × 64
 * blocks divides a diagonal of strength r by the block side (0.3 / 8), which hides exactly what the picture is for.
 * The 64 are spread evenly over the units ranked by their matched correlation (best first), so the diagonal of the
 * "after" view runs from the strongest matches to the weakest: a faithful sample, not the best 64. The "before" view
 * shows the same units in identity order.
 */
export const HEATMAP_MAX = 64;

export interface Heatmap {
  size: number;
  /** Units per cell side: 1 (every cell one unit pair). */
  blocks: number;
  before: number[];
  after: number[];
  /** When the matrix is larger than `size`: the anchor units shown (row and column order), best matched first. */
  units?: number[];
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;

export function blockHeatmap(r: Float64Array, n: number, perm?: Int32Array): Heatmap {
  const col = (j: number) => (perm ? perm[j]! : j);
  if (n <= HEATMAP_MAX) {
    const before: number[] = [];
    const after: number[] = [];
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        before.push(round(r[i * n + j]!));
        after.push(round(r[i * n + col(j)]!));
      }
    return { size: n, blocks: 1, before, after };
  }
  const ranked = Array.from({ length: n }, (_, i) => i).sort((a, b) => r[b * n + col(b)]! - r[a * n + col(a)]! || a - b);
  const units = Array.from({ length: HEATMAP_MAX }, (_, k) => ranked[Math.floor((k * n) / HEATMAP_MAX)]!);
  const before: number[] = [];
  const after: number[] = [];
  for (const i of units)
    for (const j of units) {
      before.push(round(r[i * n + j]!));
      after.push(round(r[i * n + col(j)]!));
    }
  return { size: HEATMAP_MAX, blocks: 1, before, after, units };
}
