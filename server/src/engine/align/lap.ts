/**
 * Dense square linear assignment, maximising the total score.
 *
 * Jonker–Volgenant (LAPJV, 1987): column reduction, two passes of augmenting row reduction, then Dijkstra-style
 * shortest augmenting paths for the rows still free. Worst case O(n³); on correlation matrices (one strong match
 * per row) the reductions assign almost every row before the first augmenting path, and on uniform random
 * matrices it beats the pure shortest-augmenting-path variant (Crouse 2016, scipy) because the reductions
 * start it with good duals.
 *
 * From n = 128 the pruned solver (lap-pruned.ts) runs first: candidates per row, sparse shortest paths, and a dual
 * proof of optimality on the full matrix; it hands over to the dense LAPJV here when the proof does not close.
 *
 * Internally it minimises cost = −score. Pure function of typed arrays, so it runs unchanged in a worker thread
 * (see lap-worker.ts / lap-async.ts).
 */
import { EngineError } from '../errors';
import { lapPrunedMin } from './lap-pruned';

export interface Assignment {
  /** perm[i] = the column assigned to row i (for alignment: the `other` unit matched to anchor unit i). */
  perm: Int32Array;
  /** Σᵢ score[i, perm[i]], summed in float64. */
  total: number;
}

/**
 * Throws EngineError('non-finite') when a score is NaN or ±Infinity. −0 is an ordinary zero (it compares equal to 0,
 * and negating it for the minimisation changes nothing).
 */
export function checkScores(score: ArrayLike<number>, n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`assignment size must be a non-negative integer, got ${n}`);
  if (score.length !== n * n) throw new RangeError(`assignment score has ${score.length} values, ${n}×${n} needs ${n * n}`);
  for (let k = 0; k < score.length; k++) {
    const s = score[k]!;
    if (!Number.isFinite(s)) {
      const i = Math.floor(k / n);
      throw new EngineError('non-finite', `assignment score [${i}, ${k - i * n}] is ${s}; every score must be a finite number`);
    }
  }
}

/**
 * 'auto' (default): the pruned solver with its dense optimality proof (lap-pruned.ts) from n = 128 (2–6× faster than
 * dense LAPJV on correlation-like and uniform matrices at n = 3072), falling back to dense LAPJV when the proof does
 * not close; dense LAPJV below. 'dense' and 'pruned' force one (pruned still falls back when it must).
 */
export type LapMethod = 'auto' | 'dense' | 'pruned';

const PRUNED_FROM = 128;

/** Minimising assignment of a finite cost matrix (row-major n×n): row → column. */
export function lapMin(cost: Float64Array, n: number, method: LapMethod = 'auto'): Int32Array {
  if (method === 'pruned' || (method === 'auto' && n >= PRUNED_FROM)) {
    const x = lapPrunedMin(cost, n);
    if (x) return x;
  }
  return lapjvMin(cost, n);
}

/** Maximise Σ score[i, perm[i]] over permutations; `score` is row-major n×n and is not modified. */
export function solveLap(score: ArrayLike<number>, n: number, method: LapMethod = 'auto'): Assignment {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`assignment size must be a non-negative integer, got ${n}`);
  if (score.length !== n * n) throw new RangeError(`assignment score has ${score.length} values, ${n}×${n} needs ${n * n}`);
  if (n === 0) return { perm: new Int32Array(0), total: 0 };
  let x: Int32Array | null = null;
  if (method === 'pruned' || (method === 'auto' && n >= PRUNED_FROM)) {
    // Straight on the scores (sign −1): on a memory-bound n² matrix every pass saved counts. It checks finiteness.
    const s = score instanceof Float64Array ? score : Float64Array.from(score);
    x = lapPrunedMin(s, n, { sign: -1 });
  }
  if (!x) {
    checkScores(score, n);
    const cost = new Float64Array(n * n);
    for (let k = 0; k < cost.length; k++) cost[k] = -score[k]! + 0; // + 0 turns −0 into +0
    x = lapjvMin(cost, n);
  }
  let total = 0;
  for (let i = 0; i < n; i++) total += score[i * n + x[i]!]!;
  return { perm: x, total };
}

/** Minimising LAPJV on a finite cost matrix (row-major, n×n). Returns x: row → column. */
export function lapjvMin(cost: Float64Array, n: number): Int32Array {
  const x = new Int32Array(n).fill(-1); // row → col
  const y = new Int32Array(n).fill(-1); // col → row
  const v = new Float64Array(n); // column duals
  if (n === 1) {
    x[0] = 0;
    return x;
  }
  const free = new Int32Array(n);
  let nFree = columnReduction(cost, n, x, y, v, free);
  for (let pass = 0; pass < 2 && nFree > 0; pass++) nFree = augmentingRowReduction(cost, n, x, y, v, free, nFree);
  if (nFree > 0) augment(cost, n, x, y, v, free, nFree);
  return x;
}

/** Column minima give the initial duals; a row that is the minimum of exactly one column keeps it. */
function columnReduction(cost: Float64Array, n: number, x: Int32Array, y: Int32Array, v: Float64Array, free: Int32Array): number {
  v.fill(Infinity);
  // Row-major scan (cache friendly): for each column keep the first row attaining its minimum.
  for (let i = 0; i < n; i++) {
    const row = i * n;
    for (let j = 0; j < n; j++) {
      const c = cost[row + j]!;
      if (c < v[j]!) {
        v[j] = c;
        y[j] = i;
      }
    }
  }
  const unique = new Uint8Array(n).fill(1);
  for (let j = n - 1; j >= 0; j--) {
    const i = y[j]!;
    if (x[i]! < 0) x[i] = j;
    else {
      unique[i] = 0;
      y[j] = -1;
    }
  }
  let nFree = 0;
  for (let i = 0; i < n; i++) {
    if (x[i]! < 0) free[nFree++] = i;
    else if (unique[i]) {
      // Reduction transfer: lower the dual of the row's column by the row's second-best reduced cost.
      const j = x[i]!;
      const row = i * n;
      let min = Infinity;
      for (let j2 = 0; j2 < n; j2++) {
        if (j2 === j) continue;
        const c = cost[row + j2]! - v[j2]!;
        if (c < min) min = c;
      }
      v[j] = v[j]! - min;
    }
  }
  return nFree;
}

/**
 * Cap on augmenting-row-reduction steps per pass, as a multiple of the rows free at its start. Uncapped, ties and
 * near-ties make the reduction cycle for O(n²) steps of O(n) each (it dominated the run time on noisy permuted
 * identities); capped, it does the cheap part of its work and the Dijkstra phase finishes. 4 was the fastest of
 * 1–32 on n = 2000–3072 noisy-identity and uniform matrices.
 */
const ARR_STEP_CAP = 4;

/**
 * Augmenting row reduction: a free row takes its best column, displacing its owner, while lowering that column's
 * dual by the gap to the row's second best. The step counter bound (as in Jonker–Volgenant and gatagat/lap) stops
 * the cycling that ties can cause; whatever stays free goes to the shortest-path phase.
 */
function augmentingRowReduction(
  cost: Float64Array,
  n: number,
  x: Int32Array,
  y: Int32Array,
  v: Float64Array,
  free: Int32Array,
  nFree: number,
): number {
  let current = 0;
  let newFree = 0;
  let steps = 0;
  while (current < nFree) {
    steps++;
    const fi = free[current++]!;
    const row = fi * n;
    let j1 = 0;
    let u1 = cost[row]! - v[0]!;
    let j2 = -1;
    let u2 = Infinity;
    for (let j = 1; j < n; j++) {
      const c = cost[row + j]! - v[j]!;
      if (c < u2) {
        if (c >= u1) {
          u2 = c;
          j2 = j;
        } else {
          u2 = u1;
          u1 = c;
          j2 = j1;
          j1 = j;
        }
      }
    }
    let i0 = y[j1]!;
    const v1New = v[j1]! - (u2 - u1);
    const lowers = v1New < v[j1]!;
    if (steps > ARR_STEP_CAP * nFree) {
      // Enough reduction for this pass: the rest goes to the shortest-path phase.
      free[newFree++] = fi;
      while (current < nFree) free[newFree++] = free[current++]!;
      break;
    }
    if (steps < current * n) {
      if (lowers) v[j1] = v1New;
      else if (i0 >= 0 && j2 >= 0) {
        j1 = j2;
        i0 = y[j2]!;
      }
      if (i0 >= 0) {
        if (lowers) free[--current] = i0;
        else free[newFree++] = i0;
      }
    } else if (i0 >= 0) free[newFree++] = i0;
    x[fi] = j1;
    y[j1] = fi;
    if (i0 >= 0) x[i0] = -1;
  }
  return newFree;
}

/** Shortest augmenting paths (Dijkstra on reduced costs) from each remaining free row. */
function augment(cost: Float64Array, n: number, x: Int32Array, y: Int32Array, v: Float64Array, free: Int32Array, nFree: number): void {
  const pred = new Int32Array(n);
  const cols = new Int32Array(n);
  const d = new Float64Array(n);
  for (let f = 0; f < nFree; f++) {
    const start = free[f]!;
    let j = findPath(cost, n, start, y, v, pred, cols, d);
    // Flip the path back to the start row.
    let i = -1;
    while (i !== start) {
      i = pred[j]!;
      y[j] = i;
      const k = j;
      j = x[i]!;
      x[i] = k;
    }
  }
}

/**
 * One Dijkstra search from a free row over reduced costs; the relaxation and the search for the next minimum share
 * one pass over the unscanned columns (as in Crouse's variant), which halves the memory traffic of the textbook
 * find-then-scan loop. cols[0, scanned) are the scanned columns, cols[scanned, n) the rest. On a tie the free
 * column wins, which ends the search early. Returns the free column that ends the path and lowers the duals of the
 * scanned columns so that reduced costs stay non-negative on the new matching.
 */
function findPath(
  cost: Float64Array,
  n: number,
  start: number,
  y: Int32Array,
  v: Float64Array,
  pred: Int32Array,
  cols: Int32Array,
  d: Float64Array,
): number {
  for (let j = 0; j < n; j++) cols[j] = j;
  d.fill(Infinity);
  let i = start;
  let h = 0; // the row's potential: cost[i, j] - v[j] - h is the distance through row i
  let scanned = 0;
  let mind = 0;
  let finalJ = -1;
  while (finalJ < 0) {
    const row = i * n;
    let lowest = Infinity;
    let kmin = scanned;
    for (let k = scanned; k < n; k++) {
      const j = cols[k]!;
      let dj = d[j]!;
      const red = cost[row + j]! - v[j]! - h;
      if (red < dj) {
        d[j] = red;
        pred[j] = i;
        dj = red;
      }
      if (dj < lowest || (dj === lowest && y[j]! < 0)) {
        lowest = dj;
        kmin = k;
      }
    }
    const j = cols[kmin]!;
    cols[kmin] = cols[scanned]!;
    cols[scanned++] = j;
    mind = lowest;
    if (y[j]! < 0) finalJ = j;
    else {
      i = y[j]!;
      h = cost[i * n + j]! - v[j]! - mind;
    }
  }
  for (let k = 0; k < scanned - 1; k++) {
    const j = cols[k]!;
    v[j] = v[j]! + d[j]! - mind;
  }
  return finalJ;
}
