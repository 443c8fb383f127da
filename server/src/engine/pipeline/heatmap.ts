/**
 * Small pictures of big correlation matrices for the report: block-averaged to at most 64 × 64, before and after the
 * permutation (after = the other model's units gathered by the permutation, so a good alignment shows a diagonal).
 */
export const HEATMAP_MAX = 64;

export function blockHeatmap(r: Float64Array, n: number, perm?: Int32Array): { size: number; blocks: number; before: number[]; after: number[] } {
  const size = Math.min(HEATMAP_MAX, n);
  const blocks = Math.ceil(n / size);
  const pool = (col: (j: number) => number) => {
    const sum = new Float64Array(size * size);
    const count = new Float64Array(size * size);
    for (let i = 0; i < n; i++) {
      const bi = Math.min(size - 1, Math.floor(i / blocks));
      for (let j = 0; j < n; j++) {
        const k = bi * size + Math.min(size - 1, Math.floor(j / blocks));
        sum[k]! += r[i * n + col(j)]!;
        count[k]! += 1;
      }
    }
    return Array.from(sum, (s, k) => Math.round((s / Math.max(1, count[k]!)) * 1e4) / 1e4);
  };
  return { size, blocks, before: pool((j) => j), after: pool((j) => (perm ? perm[j]! : j)) };
}
