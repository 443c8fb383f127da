import { EngineError } from '../errors';

/**
 * Dense assignment solved on a pruned candidate graph, then proved optimal on the full matrix.
 *
 * The optimal assignment of a correlation matrix (and of most dense matrices) uses only entries near the top of their
 * rows. So: keep a few candidate columns per row (one pass over the matrix), start
 * from the columns' minimum rows and an augmenting row reduction, solve the sparse problem with shortest augmenting
 * paths (Crouse's variant of Jonker–Volgenant with row and column duals, a binary heap instead of a full scan per
 * step), then prove it on the FULL matrix: if cost[i, j] − u[i] − v[j] ≥ 0 everywhere (up to rounding), LP duality
 * says the sparse optimum is the dense optimum. Most rows are proved from a bound kept while choosing candidates,
 * without reading them again. Entries that violate it join the candidate set and only the violating rows are
 * re-matched. A row whose search finds no free column inside the graph (identical rows — dead units — share their
 * candidates) is searched over all columns from then on. If that happens to too many rows, or the rounds run out, the
 * caller solves densely: the answer is always optimal; pruning only decides how fast.
 */

/**
 * Candidate graph in CSR form: row i's columns are cols[start[i] .. start[i+1]) with their costs in vals (a copy, so
 * the search never touches the n² matrix: random reads there cost a cache miss each).
 */
interface Candidates {
  start: Int32Array;
  cols: Int32Array;
  vals: Float64Array;
}

/** A bounded max-heap of the k smallest keys seen (keys in hv, columns in hj); returns the new size. */
function heapOffer(hv: Float64Array, hj: Int32Array, size: number, k: number, c: number, j: number): number {
  if (size < k) {
    let p = size++;
    while (p > 0) {
      const q = (p - 1) >> 1;
      if (hv[q]! >= c) break;
      hv[p] = hv[q]!;
      hj[p] = hj[q]!;
      p = q;
    }
    hv[p] = c;
    hj[p] = j;
    return size;
  }
  if (!(c < hv[0]!)) return size;
  let p = 0;
  for (;;) {
    let q = 2 * p + 1;
    if (q >= size) break;
    if (q + 1 < size && hv[q + 1]! > hv[q]!) q++;
    if (hv[q]! <= c) break;
    hv[p] = hv[q]!;
    hj[p] = hj[q]!;
    p = q;
  }
  hv[p] = c;
  hj[p] = j;
  return size;
}

/**
 * The one pass over the matrix before solving (an n² matrix costs a full read per pass): finiteness, the largest
 * |cost|, the column minima v0 with their rows (feasible duals for every entry with u = 0: cost − v0 ≥ 0), and each
 * row's candidates: the union of its k/2 cheapest columns by raw cost and its k/2 cheapest by cost − vEst, plus every
 * column's minimum row (so no column is out of everyone's reach). Raw picks what suits exchangeable rows (uniform
 * scores); the reduced key stops a column every row likes — a large-norm unit in a low-rank score — from crowding out
 * the ones the assignment uses. vEst are column minima over a sample of rows (≥ v0). Bounds for left-out columns:
 * cost ≥ kthRaw[i] and cost − vEst ≥ kthRed[i].
 */
function scanMatrix(
  cost: Float64Array,
  sg: number,
  n: number,
  k: number,
  vEst: Float64Array,
): { cand: Candidates; kthRaw: Float64Array; kthRed: Float64Array; v0: Float64Array; argmin: Int32Array; scale: number } {
  const kh = Math.max(1, k >> 1);
  const hv = new Float64Array(kh);
  const hj = new Int32Array(kh);
  const rv = new Float64Array(kh);
  const rj = new Int32Array(kh);
  const kthRaw = new Float64Array(n);
  const kthRed = new Float64Array(n);
  const v0 = new Float64Array(n).fill(Infinity);
  const argmin = new Int32Array(n);
  const picked = new Int32Array(n * 2 * kh);
  const pickedN = new Int32Array(n);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const row = i * n;
    let sr = 0;
    let sd = 0;
    let bad = 0;
    for (let j = 0; j < n; j++) {
      const c = sg * cost[row + j]!;
      bad += c - c; // NaN for NaN or ±Infinity
      if (c < v0[j]!) {
        v0[j] = c;
        argmin[j] = i;
      }
      if (c < lo) lo = c;
      if (c > hi) hi = c;
      if (sr < kh || c < hv[0]!) sr = heapOffer(hv, hj, sr, kh, c, j);
      const d = c - vEst[j]!;
      if (sd < kh || d < rv[0]!) sd = heapOffer(rv, rj, sd, kh, d, j);
    }
    if (bad !== 0) {
      for (let j = 0; j < n; j++) {
        if (!Number.isFinite(cost[row + j]!))
          throw new EngineError('non-finite', `assignment score [${i}, ${j}] is ${cost[row + j]}; every score must be a finite number`);
      }
    }
    kthRaw[i] = sr === n ? Infinity : hv[0]!;
    kthRed[i] = sd === n ? Infinity : rv[0]!;
    picked.set(hj.subarray(0, sr), i * 2 * kh);
    picked.set(rj.subarray(0, sd), i * 2 * kh + sr);
    pickedN[i] = sr + sd;
  }
  // CSR: picked columns (deduplicated) plus the argmin edges.
  const byRow: number[][] = Array.from({ length: n }, () => []);
  for (let j = 0; j < n; j++) byRow[argmin[j]!]!.push(j);
  const start = new Int32Array(n + 1);
  const colsL: number[] = [];
  const seen = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    start[i] = colsL.length;
    const add = (j: number) => {
      if (seen[j] === i) return;
      seen[j] = i;
      colsL.push(j);
    };
    for (let t = 0; t < pickedN[i]!; t++) add(picked[i * 2 * kh + t]!);
    for (const j of byRow[i]!) add(j);
  }
  start[n] = colsL.length;
  const cols = Int32Array.from(colsL);
  const vals = new Float64Array(cols.length);
  for (let i = 0; i < n; i++) for (let e = start[i]!; e < start[i + 1]!; e++) vals[e] = sg * cost[i * n + cols[e]!]! + 0;
  return { cand: { start, cols, vals }, kthRaw, kthRed, v0, argmin, scale: Math.max(Math.abs(lo), Math.abs(hi)) };
}

/** Assignment state carried across rounds: matching and duals (reduced costs ≥ 0 on candidates, 0 on matches). */
interface State {
  x: Int32Array; // row → col
  y: Int32Array; // col → row
  u: Float64Array;
  v: Float64Array;
}

/**
 * Sparse shortest augmenting paths (minimising) for the free rows freeRows[from..], on the candidate graph (rows
 * marked in denseRow use every column of `cost`). Returns −1 when all are matched, or the index in freeRows of a row
 * whose search found no free column inside the graph (nothing of that search is kept; earlier rows stay matched).
 */
function augmentSparse(
  cost: Float64Array,
  sg: number,
  n: number,
  cand: Candidates,
  denseRow: Uint8Array,
  st: State,
  freeRows: Int32Array,
  from: number,
  dirty: Uint8Array,
): number {
  const { x, y, u, v } = st;
  const spc = new Float64Array(n).fill(Infinity);
  const path = new Int32Array(n);
  const scannedCol = new Uint8Array(n);
  const heap = new Int32Array(n); // columns, ordered by (spc, free first)
  const pos = new Int32Array(n).fill(-1);
  const touched = new Int32Array(n);
  const rowsSeen = new Int32Array(n);
  const colsSeen = new Int32Array(n);
  const { start, cols, vals } = cand;

  const less = (a: number, b: number): boolean => {
    const da = spc[a]!;
    const db = spc[b]!;
    return da < db || (da === db && y[a]! < 0 && y[b]! >= 0);
  };
  let hsize = 0;
  const siftUp = (p: number): void => {
    const j = heap[p]!;
    while (p > 0) {
      const q = (p - 1) >> 1;
      const h = heap[q]!;
      if (!less(j, h)) break;
      heap[p] = h;
      pos[h] = p;
      p = q;
    }
    heap[p] = j;
    pos[j] = p;
  };
  const pop = (): number => {
    const top = heap[0]!;
    pos[top] = -1;
    const last = heap[--hsize]!;
    if (hsize > 0) {
      let p = 0;
      for (;;) {
        let q = 2 * p + 1;
        if (q >= hsize) break;
        if (q + 1 < hsize && less(heap[q + 1]!, heap[q]!)) q++;
        if (!less(heap[q]!, last)) break;
        heap[p] = heap[q]!;
        pos[heap[p]!] = p;
        p = q;
      }
      heap[p] = last;
      pos[last] = p;
    }
    return top;
  };

  for (let f = from; f < freeRows.length; f++) {
    const cur = freeRows[f]!;
    let minVal = 0;
    let i = cur;
    let sink = -1;
    let nTouched = 0;
    let nRows = 0;
    let nCols = 0;
    hsize = 0;
    while (sink < 0) {
      rowsSeen[nRows++] = i;
      const ui = u[i]!;
      if (denseRow[i]) {
        const row = i * n;
        for (let j = 0; j < n; j++) {
          if (scannedCol[j]) continue;
          const r = minVal + sg * cost[row + j]! - ui - v[j]!;
          if (r < spc[j]!) {
            if (spc[j] === Infinity) touched[nTouched++] = j;
            spc[j] = r;
            path[j] = i;
            if (pos[j]! < 0) {
              heap[hsize] = j;
              pos[j] = hsize++;
            }
            siftUp(pos[j]!);
          }
        }
      } else {
        for (let e = start[i]!; e < start[i + 1]!; e++) {
          const j = cols[e]!;
          if (scannedCol[j]) continue;
          const r = minVal + vals[e]! - ui - v[j]!;
          if (r < spc[j]!) {
            if (spc[j] === Infinity) touched[nTouched++] = j;
            spc[j] = r;
            path[j] = i;
            if (pos[j]! < 0) {
              heap[hsize] = j;
              pos[j] = hsize++;
            }
            siftUp(pos[j]!);
          }
        }
      }
      if (hsize === 0) {
        // No free column reachable inside the graph (e.g. identical rows sharing the same top-k columns).
        for (let t = 0; t < nCols; t++) scannedCol[colsSeen[t]!] = 0;
        for (let t = 0; t < nTouched; t++) {
          spc[touched[t]!] = Infinity;
          pos[touched[t]!] = -1;
        }
        return f;
      }
      const j = pop();
      minVal = spc[j]!;
      scannedCol[j] = 1;
      colsSeen[nCols++] = j;
      if (y[j]! < 0) sink = j;
      else i = y[j]!;
    }
    // Dual update (as in Crouse 2016 / scipy): keeps reduced costs non-negative on every candidate edge.
    u[cur] = u[cur]! + minVal;
    dirty[cur] = 1;
    for (let t = 1; t < nRows; t++) {
      const r = rowsSeen[t]!;
      u[r] = u[r]! + minVal - spc[x[r]!]!;
      dirty[r] = 1;
    }
    for (let t = 0; t < nCols; t++) {
      const j = colsSeen[t]!;
      v[j] = v[j]! - (minVal - spc[j]!);
      scannedCol[j] = 0;
    }
    let j = sink;
    for (;;) {
      const r = path[j]!;
      y[j] = r;
      const next = x[r]!;
      x[r] = j;
      j = next;
      if (r === cur) break;
    }
    for (let t = 0; t < nTouched; t++) {
      const c = touched[t]!;
      spc[c] = Infinity;
      pos[c] = -1;
    }
  }
  return -1;
}

/**
 * Augmenting row reduction (Jonker–Volgenant) on the candidate graph, in the row-and-column-dual form: a free row
 * takes its cheapest column j1 at reduced cost u1, lowering v[j1] by the gap to its second cheapest (u2) and setting
 * u = u2, which leaves every candidate edge feasible and the new match tight; the displaced owner becomes free
 * (first in line when v fell, else it takes the second-best column on a tie). Each step is O(k); capped at 4 steps
 * per free row, as in the dense solver. Returns the rows still free.
 */
function reduceSparse(cand: Candidates, st: State, free: Int32Array): Int32Array {
  const { x, y, u, v } = st;
  const { start, cols, vals } = cand;
  const queue = Int32Array.from(free);
  const nFree = queue.length;
  const left: number[] = [];
  let current = 0;
  let steps = 0;
  while (current < nFree) {
    const i = queue[current++]!;
    if (++steps > 4 * nFree) {
      left.push(i);
      while (current < nFree) left.push(queue[current++]!);
      break;
    }
    let j1 = -1;
    let u1 = Infinity;
    let j2 = -1;
    let u2 = Infinity;
    for (let e = start[i]!; e < start[i + 1]!; e++) {
      const j = cols[e]!;
      const r = vals[e]! - v[j]!;
      if (r < u2) {
        if (r >= u1) {
          u2 = r;
          j2 = j;
        } else {
          u2 = u1;
          j2 = j1;
          u1 = r;
          j1 = j;
        }
      }
    }
    if (j2 < 0) {
      left.push(i); // a single candidate: leave it to the shortest-path search
      continue;
    }
    let i0 = y[j1]!;
    if (u1 < u2) {
      v[j1] = v[j1]! - (u2 - u1);
      if (i0 >= 0) queue[--current] = i0; // reprocess the displaced row next
    } else if (i0 >= 0) {
      j1 = j2;
      i0 = y[j2]!;
      if (i0 >= 0) left.push(i0);
    }
    u[i] = u2;
    if (i0 >= 0) x[i0] = -1;
    x[i] = j1;
    y[j1] = i;
  }
  return Int32Array.from(left);
}

export interface PrunedOptions {
  /** −1: minimise −cost, i.e. maximise the given scores (default 1). */
  sign?: 1 | -1;
  /** Candidates kept per row at first (default 24). */
  k?: number;
  /**
   * Rounds of solve + verify before giving up (default 40). On low-rank score matrices the violations fall by about
   * half a round (1913 → 616 → 285 → … rows at n = 4096) while each round only re-matches and re-proves the rows
   * involved, so late rounds are cheap.
   */
  rounds?: number;
}

/**
 * The minimising assignment (row → column) via pruned candidates and a dense optimality proof, or null when the
 * proof did not close within `rounds` and the caller should solve densely instead. Its first pass over the matrix
 * also refuses NaN and infinities (EngineError 'non-finite'), so callers need no separate check.
 */
export function lapPrunedMin(cost: Float64Array, n: number, opts: PrunedOptions = {}): Int32Array | null {
  // Costs are sg·cost[i, j]: sign −1 solves a maximisation on the caller's scores without an n² negated copy.
  const sg = opts.sign ?? 1;
  const k = Math.min(n, opts.k ?? 24);
  // Column minima over a sample of rows: the reduced key's yardstick (see scanMatrix).
  const vEst = new Float64Array(n).fill(Infinity);
  const samples = Math.min(n, 64);
  for (let t = 0; t < samples; t++) {
    const row = Math.floor((t * n) / samples) * n;
    for (let j = 0; j < n; j++) {
      const c = sg * cost[row + j]!;
      if (c < vEst[j]!) vEst[j] = c;
    }
  }
  const { cand: first, kthRaw, kthRed, v0, argmin, scale } = scanMatrix(cost, sg, n, k, vEst);
  let cand: Candidates = first;
  // Reduced costs below −tol count as violations; above it the assignment is optimal to within n·tol in total.
  const tol = 16e-12 * scale;
  const st: State = { x: new Int32Array(n).fill(-1), y: new Int32Array(n).fill(-1), u: new Float64Array(n), v: v0 };
  // Free start (as Jonker–Volgenant's column reduction): a column's minimum row takes it when still unmatched; its
  // reduced cost there is 0, so the matching and the duals (u = 0, v = column minima) are a valid starting state.
  for (let j = 0; j < n; j++) {
    const i = argmin[j]!;
    if (st.x[i]! < 0) {
      st.x[i] = j;
      st.y[j] = i;
    }
  }
  let free = reduceSparse(cand, st, Int32Array.from(st.x.reduce<number[]>((acc, j, i) => (j < 0 ? (acc.push(i), acc) : acc), [])));
  // Rows whose dual u rose since they were last proved (all, at first). The searches only ever raise u (of the rows
  // they scan) and lower v, and lowering v cannot create a violation, so only these rows need proving again.
  const dirty = new Uint8Array(n).fill(1);
  // Rows searched over every column: those whose search got stuck in the sparse graph. From a dense row some free
  // column is always reachable, so each row needs this at most once.
  const denseRow = new Uint8Array(n);
  let denseRows = 0;
  for (let round = 0; round < (opts.rounds ?? 40); round++) {
    for (let from = 0; ;) {
      const stuck = augmentSparse(cost, sg, n, cand, denseRow, st, free, from, dirty);
      if (stuck < 0) break;
      const i = free[stuck]!;
      // Mostly identical rows (a matrix of ties): the heap search over full rows would cost more than dense LAPJV.
      if (++denseRows > n / 8) return null;
      denseRow[i] = 1;
      // Keep its dual feasible on the new edges (it is free, so lowering u breaks nothing).
      let m = Infinity;
      for (let j = 0; j < n; j++) m = Math.min(m, sg * cost[i * n + j]! - st.v[j]!);
      st.u[i] = Math.min(st.u[i]!, m);
      from = stuck;
    }
    const { x, y, u, v } = st;
    // Proof on the full matrix: min_j (cost[i, j] − v[j]) ≥ u[i] − tol for every dirty row, one tight pass per row;
    // failing rows are scanned again for their violating columns.
    const extra = new Map<number, Int32Array>();
    let vmax = -Infinity;
    for (let j = 0; j < n; j++) if (v[j]! > vmax) vmax = v[j]!;
    for (let i = 0; i < n; i++) {
      // Outside its candidates a row has cost − vEst ≥ kthRed[i] and cost ≥ kthRaw[i]; v only ever falls from
      // v0 ≤ vEst, so cost − v ≥ max(kthRed[i], kthRaw[i] − max v) there: a row whose u is below that is proved without reading
      // it (most rows). Candidate edges are feasible by construction.
      if (!dirty[i] || denseRow[i] || u[i]! - tol <= Math.max(kthRed[i]!, kthRaw[i]! - vmax)) {
        dirty[i] = 0;
        continue;
      }
      dirty[i] = 0;
      const row = i * n;
      let m = Infinity;
      for (let j = 0; j < n; j++) {
        const r = sg * cost[row + j]! - v[j]!;
        if (r < m) m = r;
      }
      const ui = u[i]!;
      if (m >= ui - tol) continue;
      const bad: number[] = [];
      for (let j = 0; j < n; j++) if (sg * cost[row + j]! - v[j]! < ui - tol) bad.push(j);
      if (bad.length > n / 4) {
        // Violators everywhere: search this row over all columns.
        if (++denseRows > n / 8) return null;
        denseRow[i] = 1;
        extra.set(i, new Int32Array(0));
      } else extra.set(i, Int32Array.from(bad));
    }
    if (extra.size === 0) return x;
    // Grow the candidate graph by the violators.
    const start = new Int32Array(n + 1);
    for (let i = 0; i < n; i++) start[i + 1] = start[i]! + (cand.start[i + 1]! - cand.start[i]!) + (extra.get(i)?.length ?? 0);
    const cols = new Int32Array(start[n]!);
    const vals = new Float64Array(start[n]!);
    for (let i = 0; i < n; i++) {
      const a = cand.start[i]!;
      const b = cand.start[i + 1]!;
      cols.set(cand.cols.subarray(a, b), start[i]!);
      vals.set(cand.vals.subarray(a, b), start[i]!);
      const e = extra.get(i);
      if (e) {
        cols.set(e, start[i]! + (b - a));
        for (let t = 0; t < e.length; t++) vals[start[i]! + (b - a) + t] = sg * cost[i * n + e[t]!]!;
      }
    }
    cand = { start, cols, vals };
    // Warm start: a violating row gives up its column and takes the largest dual its candidates allow; every other
    // row keeps its match, and the duals stay feasible, so only these rows are augmented again.
    free = Int32Array.from(extra.keys());
    for (const i of free) {
      let m = Infinity;
      if (denseRow[i]) for (let j = 0; j < n; j++) m = Math.min(m, sg * cost[i * n + j]! - v[j]!);
      else for (let e = start[i]!; e < start[i + 1]!; e++) m = Math.min(m, vals[e]! - v[cols[e]!]!);
      u[i] = m;
      y[x[i]!] = -1;
      x[i] = -1;
    }
  }
  return null;
}
