/**
 * Streaming sufficient statistics of one tap pair (anchor units A × other units B), in float64.
 *
 * Held in centred form — n, means, per-unit M2 = Σ(a − ā)², and the cross matrix C = Σ(a − ā)(b − b̄)ᵀ — and combined
 * with the parallel (Chan et al.) update, so the result does not depend on how frames were split into batches, and
 * shards computed apart can be added in any order. Batches come either as centred moments (what the pair graph
 * emits, model/pair-graph.ts) or as raw sums (n, Σa, Σb, Σa², Σb², Σabᵀ); raw sums are centred per batch first
 * (subtracting n·āb̄ᵀ in float64 once per batch, not once per run, keeps the cancellation small).
 */
import { EngineError } from '../errors';

type Numbers = Float32Array | Float64Array | readonly number[];

export interface PairStats {
  readonly dimA: number;
  readonly dimB: number;
  /** Rows (frames) seen. */
  n: number;
  readonly meanA: Float64Array;
  readonly meanB: Float64Array;
  readonly m2A: Float64Array;
  readonly m2B: Float64Array;
  /** Σ(a − ā)(b − b̄)ᵀ, dimA × dimB row-major. */
  readonly cross: Float64Array;
}

/** Per-batch centred moments (field names as model/pair-graph.ts's TapPairMoments). */
export interface BatchMoments {
  n: number;
  meanA: Numbers;
  meanB: Numbers;
  m2A: Numbers;
  m2B: Numbers;
  cross: Numbers;
}

/** Per-batch raw sums. */
export interface BatchSums {
  n: number;
  sumA: Numbers;
  sumB: Numbers;
  sumSqA: Numbers;
  sumSqB: Numbers;
  /** Σ a bᵀ, dimA × dimB row-major. */
  sumAB: Numbers;
}

export function createPairStats(dimA: number, dimB: number): PairStats {
  return {
    dimA,
    dimB,
    n: 0,
    meanA: new Float64Array(dimA),
    meanB: new Float64Array(dimB),
    m2A: new Float64Array(dimA),
    m2B: new Float64Array(dimB),
    cross: new Float64Array(dimA * dimB),
  };
}

function checkLengths(s: PairStats, m: BatchMoments, what: string): void {
  const want: [string, number, number][] = [
    ['meanA', m.meanA.length, s.dimA],
    ['meanB', m.meanB.length, s.dimB],
    ['m2A', m.m2A.length, s.dimA],
    ['m2B', m.m2B.length, s.dimB],
    ['cross', m.cross.length, s.dimA * s.dimB],
  ];
  for (const [name, got, need] of want) {
    if (got !== need)
      throw new EngineError('shape-mismatch', `${what}: ${name} has ${got} values, a ${s.dimA}×${s.dimB} tap pair needs ${need}`);
  }
  if (!(m.n >= 0) || !Number.isFinite(m.n)) throw new EngineError('non-finite', `${what}: row count ${m.n} is not a non-negative number`);
}

/** Adds one batch (or a whole shard) given as centred moments: Chan's parallel update, in place. */
export function addMoments(s: PairStats, m: BatchMoments): PairStats {
  checkLengths(s, m, 'statistics batch');
  const nb = m.n;
  if (nb === 0) return s;
  const na = s.n;
  const n = na + nb;
  const { dimA, dimB } = s;
  if (na === 0) {
    // A typed-array copy (native, converting float32 to float64): an element loop over the union of array types runs
    // unoptimised on its first call, 0.5 s per 3072×3072 FFN tap (bench:align's first batch).
    s.meanA.set(m.meanA);
    s.m2A.set(m.m2A);
    s.meanB.set(m.meanB);
    s.m2B.set(m.m2B);
    s.cross.set(m.cross);
    s.n = nb;
    return s;
  }
  const f = (na * nb) / n;
  const wb = nb / n;
  const dA = new Float64Array(dimA);
  const dB = new Float64Array(dimB);
  for (let i = 0; i < dimA; i++) {
    const d = m.meanA[i]! - s.meanA[i]!;
    dA[i] = d;
    s.meanA[i] = s.meanA[i]! + d * wb;
    s.m2A[i] = s.m2A[i]! + m.m2A[i]! + d * d * f;
  }
  for (let j = 0; j < dimB; j++) {
    const d = m.meanB[j]! - s.meanB[j]!;
    dB[j] = d;
    s.meanB[j] = s.meanB[j]! + d * wb;
    s.m2B[j] = s.m2B[j]! + m.m2B[j]! + d * d * f;
  }
  const c = s.cross;
  const mc = m.cross;
  for (let i = 0; i < dimA; i++) {
    const row = i * dimB;
    const di = dA[i]! * f;
    for (let j = 0; j < dimB; j++) c[row + j] = c[row + j]! + mc[row + j]! + di * dB[j]!;
  }
  s.n = n;
  return s;
}

/** Adds one batch given as raw sums: centred in float64 here, then combined like addMoments. */
export function addSums(s: PairStats, b: BatchSums): PairStats {
  const n = b.n;
  if (n === 0) return s;
  const { dimA, dimB } = s;
  const meanA = new Float64Array(dimA);
  const meanB = new Float64Array(dimB);
  const m2A = new Float64Array(dimA);
  const m2B = new Float64Array(dimB);
  if (
    b.sumA.length !== dimA ||
    b.sumSqA.length !== dimA ||
    b.sumB.length !== dimB ||
    b.sumSqB.length !== dimB ||
    b.sumAB.length !== dimA * dimB
  ) {
    throw new EngineError('shape-mismatch', `statistics batch (sums): lengths do not fit a ${dimA}×${dimB} tap pair`);
  }
  for (let i = 0; i < dimA; i++) {
    meanA[i] = b.sumA[i]! / n;
    m2A[i] = Math.max(0, b.sumSqA[i]! - n * meanA[i]! * meanA[i]!);
  }
  for (let j = 0; j < dimB; j++) {
    meanB[j] = b.sumB[j]! / n;
    m2B[j] = Math.max(0, b.sumSqB[j]! - n * meanB[j]! * meanB[j]!);
  }
  const cross = new Float64Array(dimA * dimB);
  for (let i = 0; i < dimA; i++) {
    const row = i * dimB;
    const ai = n * meanA[i]!;
    for (let j = 0; j < dimB; j++) cross[row + j] = b.sumAB[row + j]! - ai * meanB[j]!;
  }
  return addMoments(s, { n, meanA, meanB, m2A, m2B, cross });
}

/** Combines two shards into a new PairStats (either order gives the same result up to rounding). */
export function mergeStats(a: PairStats, b: PairStats): PairStats {
  if (a.dimA !== b.dimA || a.dimB !== b.dimB) {
    throw new EngineError('shape-mismatch', `cannot add statistics of a ${a.dimA}×${a.dimB} tap pair to a ${b.dimA}×${b.dimB} one`);
  }
  const out = createPairStats(a.dimA, a.dimB);
  addMoments(out, a);
  return addMoments(out, b);
}

export interface CorrelationOptions {
  /**
   * A unit whose variance is at most this fraction of the tap's mean variance counts as dead (its correlations are 0):
   * constant units (a ReLU that never fires, a padded channel) would otherwise give 0/0. Default 1e-12.
   */
  deadRelative?: number;
}

function deadMask(m2: Float64Array, n: number, rel: number): Uint8Array {
  let mean = 0;
  for (const v of m2) mean += v;
  mean /= Math.max(1, m2.length);
  const floor = rel * mean;
  const dead = new Uint8Array(m2.length);
  for (let i = 0; i < m2.length; i++) if (!(m2[i]! > floor) || n < 2) dead[i] = 1;
  return dead;
}

/** Units with (near) zero variance on each side: they correlate 0 with everything. */
export function deadUnits(s: PairStats, opts: CorrelationOptions = {}): { anchor: number; other: number } {
  const rel = opts.deadRelative ?? 1e-12;
  const count = (m: Uint8Array) => m.reduce((a, b) => a + b, 0);
  return { anchor: count(deadMask(s.m2A, s.n, rel)), other: count(deadMask(s.m2B, s.n, rel)) };
}

/** Signed Pearson correlation, dimA × dimB row-major (anchor units × other units), clamped to [−1, 1]. */
export function correlation(s: PairStats, opts: CorrelationOptions = {}): Float64Array {
  const rel = opts.deadRelative ?? 1e-12;
  const deadA = deadMask(s.m2A, s.n, rel);
  const deadB = deadMask(s.m2B, s.n, rel);
  const invA = new Float64Array(s.dimA);
  const invB = new Float64Array(s.dimB);
  for (let i = 0; i < s.dimA; i++) invA[i] = deadA[i] ? 0 : 1 / Math.sqrt(s.m2A[i]!);
  for (let j = 0; j < s.dimB; j++) invB[j] = deadB[j] ? 0 : 1 / Math.sqrt(s.m2B[j]!);
  const r = new Float64Array(s.dimA * s.dimB);
  for (let i = 0; i < s.dimA; i++) {
    const row = i * s.dimB;
    const ia = invA[i]!;
    for (let j = 0; j < s.dimB; j++) {
      const v = s.cross[row + j]! * ia * invB[j]!;
      if (!Number.isFinite(v)) {
        throw new EngineError('non-finite', `correlation [${i}, ${j}] is ${v}: the tap statistics contain non-finite values`);
      }
      r[row + j] = v > 1 ? 1 : v < -1 ? -1 : v + 0; // + 0: no −0 in the output
    }
  }
  return r;
}
