/**
 * From scores to permutations, for the groups of a PermutationSpec.
 *
 *   correlation  per-tap Pearson correlations (anchor units × other units) → one assignment per group:
 *                CNN block / FFN: linear assignment on the tap's correlation;
 *                attention: in-head assignment for every head pair on the context (value) space, head re-ordering
 *                by assignment on the head-pair score matrix (score(a, b) = optimal in-head total), then the chosen
 *                pairs' in-head permutations (blocks.ts). q/k move with their heads; with `qkInHead` and a Q/K-space
 *                correlation for the layer, q/k also get a shared in-head permutation.
 *                residual: the mean of the residual-stream taps' correlations (proj, layer.{l}.out, hidden.{k}),
 *                solved block-wise over the positional conv's groups.
 *   weights      data-free weight matching (Git Re-Basin): a group's score is Σ over the tensors it moves of
 *                ⟨anchor unit i, other unit j⟩ with the other's remaining axes already permuted by the current
 *                permutations of the other groups; coordinate descent over groups in a seeded random order, until a
 *                round changes nothing (or `rounds`).
 *
 * heads: 'reorder' (heads may move, plus in-head), 'within' (in-head only), 'none' (attention left as it is).
 */
import { EngineError } from '../errors';
import type { WeightMap } from '../model/tensor';
import { solveBlocks, type BlockScore } from './blocks';
import type { Assignment } from './lap';
import { solveAssignment } from './lap-async';
import { applyPermutations, fractionMoved, fromBlocks, identityPermutation, type Permutations } from './permute';
import { mulberry32 } from '../random';
import { groupName, type Move, type PermGroup, type PermutationSpec } from './spec';

import type { HeadsMode, PermutePart } from '../recipe/schema';

export type { HeadsMode, PermutePart };

export interface AlignOptions {
  /** Which parts to permute (the recipe's `align.permute`). */
  permute: readonly PermutePart[];
  /** Default 'reorder'. */
  heads?: HeadsMode;
  /** Shared in-head permutation of q and k (default false). */
  qkInHead?: boolean;
  signal?: AbortSignal;
  /** Called after each group (or attention layer) is solved. */
  onProgress?: (done: number, total: number, what: string) => void;
  /** The square assignment used for CNN/FFN groups (default: solveAssignment, off the main thread for large n). */
  assign?: (score: Float64Array, n: number) => Promise<Assignment>;
}

export interface GroupReport {
  group: string;
  kind: PermGroup['kind'];
  /** The tap(s) the score came from (correlation) or 'weights'. */
  source: string;
  size: number;
  /** Mean matched score before (identity) and after: Pearson correlation (correlation) or cosine similarity (weights). */
  before: number;
  after: number;
  /** Fraction of units the permutation moves. */
  moved: number;
  /** Block-structured groups (attention): block-pair scores [blocks × blocks], each the mean matched score of the pair. */
  blockScores?: { count: number; scores: number[] };
}

export interface AlignResult {
  perms: Permutations;
  report: GroupReport[];
}

export interface CorrelationSet {
  /** Pearson correlation (anchor × other, row-major) by tap name. */
  taps: ReadonlyMap<string, Float64Array>;
  /** Q/K-space correlation (heads·head_dim square) per layer, for `qkInHead`. */
  qk?: ReadonlyMap<number, Float64Array>;
}

const RESIDUAL_TAP = /^(proj|layer\.\d+\.out|hidden\.\d+)$/;

/** Mean of score[i, p[i]] (p = identity when omitted). */
export function meanMatched(score: Float64Array, n: number, p?: Int32Array): number {
  if (n === 0) return 0;
  let s = 0;
  for (let i = 0; i < n; i++) s += score[i * n + (p ? p[i]! : i)]!;
  return s / n;
}

function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) throw new EngineError('cancelled', 'alignment cancelled');
}

function defaultAssign(signal?: AbortSignal) {
  return (score: Float64Array, n: number) => solveAssignment(score, n, signal ? { signal } : {});
}

function needTap(corr: CorrelationSet, tap: string, size: number): Float64Array {
  const r = corr.taps.get(tap);
  if (!r) throw new EngineError('runtime-error', `no correlation statistics for tap ${tap}`);
  if (r.length !== size * size)
    throw new EngineError('shape-mismatch', `correlation for tap ${tap} has ${r.length} values, ${size}×${size} expected`);
  return r;
}

function partsOf(
  spec: PermutationSpec,
  opts: AlignOptions,
): { cnn: PermGroup[]; ffn: PermGroup[]; layers: number[]; residual: PermGroup | null } {
  const want = new Set(opts.permute);
  const heads = opts.heads ?? 'reorder';
  const g = spec.groups;
  return {
    cnn: want.has('cnn') ? g.filter((x) => x.kind === 'cnn') : [],
    ffn: want.has('ffn') ? g.filter((x) => x.kind === 'ffn') : [],
    layers: want.has('attention') && heads !== 'none' ? g.filter((x) => x.kind === 'attn-v').map((x) => x.layer!) : [],
    residual: want.has('residual') ? (g.find((x) => x.kind === 'residual') ?? null) : null,
  };
}

function group(spec: PermutationSpec, name: string): PermGroup {
  const g = spec.groups.find((x) => x.name === name);
  if (!g) throw new EngineError('runtime-error', `the permutation spec has no group ${name}`);
  return g;
}

/** Permutations from per-tap correlations (the paper's method, exactly function-preserving). */
export async function permutationsFromCorrelations(spec: PermutationSpec, corr: CorrelationSet, opts: AlignOptions): Promise<AlignResult> {
  const parts = partsOf(spec, opts);
  const assign = opts.assign ?? defaultAssign(opts.signal);
  const perms: Permutations = new Map();
  const report: GroupReport[] = [];
  const total = parts.cnn.length + parts.ffn.length + parts.layers.length + (parts.residual ? 1 : 0);
  let done = 0;
  const step = (what: string) => opts.onProgress?.(++done, total, what);

  for (const g of [...parts.cnn, ...parts.ffn]) {
    checkAbort(opts.signal);
    const r = needTap(corr, g.tap!, g.size);
    const { perm } = await assign(r, g.size);
    perms.set(g.name, perm);
    report.push({
      group: g.name,
      kind: g.kind,
      source: g.tap!,
      size: g.size,
      before: meanMatched(r, g.size),
      after: meanMatched(r, g.size, perm),
      moved: fractionMoved(perm),
    });
    step(g.name);
  }

  const reorder = (opts.heads ?? 'reorder') === 'reorder';
  for (const l of parts.layers) {
    checkAbort(opts.signal);
    const v = group(spec, groupName.attnV(l));
    const { count, size } = v.blocks!;
    const r = needTap(corr, v.tap!, v.size);
    const scores: BlockScore[] = [{ score: r, inBlock: 'permute' }];
    const qk = opts.qkInHead ? corr.qk?.get(l) : undefined;
    if (opts.qkInHead && !qk) throw new EngineError('runtime-error', `in-head Q/K permutation needs Q/K-space correlations for layer ${l}`);
    if (qk) scores.push({ score: qk, inBlock: 'permute' });
    const sol = solveBlocks(scores, count, size, reorder);
    const vPerm = sol.perms[0]!;
    perms.set(v.name, vPerm);
    perms.set(groupName.attnQK(l), qk ? sol.perms[1]! : fromBlocks(sol.blocks, [], size));
    const blockScores = { count, scores: Array.from(sol.pairScores, (x) => x / (size * scores.length)) };
    report.push({
      group: v.name,
      kind: v.kind,
      source: v.tap!,
      size: v.size,
      before: meanMatched(r, v.size),
      after: meanMatched(r, v.size, vPerm),
      moved: fractionMoved(vPerm),
      blockScores,
    });
    step(`layer.${l}.attn`);
  }

  if (parts.residual) {
    checkAbort(opts.signal);
    const g = parts.residual;
    const taps = [...corr.taps.keys()].filter((t) => RESIDUAL_TAP.test(t));
    if (taps.length === 0)
      throw new EngineError('runtime-error', 'residual permutation needs residual-stream taps (proj, layer.{l}.out or hidden.{k})');
    const mean = new Float64Array(g.size * g.size);
    for (const t of taps) {
      const r = needTap(corr, t, g.size);
      for (let k = 0; k < mean.length; k++) mean[k] = mean[k]! + r[k]! / taps.length;
    }
    const sol = solveBlocks([{ score: mean, inBlock: 'permute' }], g.blocks!.count, g.blocks!.size, true);
    const perm = sol.perms[0]!;
    perms.set(g.name, perm);
    report.push({
      group: g.name,
      kind: g.kind,
      source: taps.join(' '),
      size: g.size,
      before: meanMatched(mean, g.size),
      after: meanMatched(mean, g.size, perm),
      moved: fractionMoved(perm),
    });
    step(g.name);
  }
  return { perms, report };
}

// ---------------------------------------------------------------------------------------------------------------
// Weight matching

/** The tensor unfolded with `axis` first: [len(axis), rest], float64. */
function unfold(data: Float32Array, shape: readonly number[], axis: number): Float64Array {
  const len = shape[axis]!;
  let outer = 1;
  for (let k = 0; k < axis; k++) outer *= shape[k]!;
  let inner = 1;
  for (let k = axis + 1; k < shape.length; k++) inner *= shape[k]!;
  const rest = outer * inner;
  const out = new Float64Array(len * rest);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < len; i++) {
      const src = (o * len + i) * inner;
      const dst = i * rest + o * inner;
      for (let r = 0; r < inner; r++) out[dst + r] = data[src + r]!;
    }
  return out;
}

/** S += A Bᵀ for A, B of n rows × k (row-major): the dot product of every row pair, 2×2 blocked for register reuse. */
function addGram(S: Float64Array, A: Float64Array, B: Float64Array, n: number, k: number): void {
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const a0 = i * k;
    const a1 = a0 + k;
    let j = 0;
    for (; j + 1 < n; j += 2) {
      const b0 = j * k;
      const b1 = b0 + k;
      let s00 = 0;
      let s01 = 0;
      let s10 = 0;
      let s11 = 0;
      for (let q = 0; q < k; q++) {
        const x0 = A[a0 + q]!;
        const x1 = A[a1 + q]!;
        const y0 = B[b0 + q]!;
        const y1 = B[b1 + q]!;
        s00 += x0 * y0;
        s01 += x0 * y1;
        s10 += x1 * y0;
        s11 += x1 * y1;
      }
      S[i * n + j] += s00;
      S[i * n + j + 1] += s01;
      S[(i + 1) * n + j] += s10;
      S[(i + 1) * n + j + 1] += s11;
    }
    for (; j < n; j++) {
      let s0 = 0;
      let s1 = 0;
      for (let q = 0; q < k; q++) {
        s0 += A[a0 + q]! * B[j * k + q]!;
        s1 += A[a1 + q]! * B[j * k + q]!;
      }
      S[i * n + j] += s0;
      S[(i + 1) * n + j] += s1;
    }
  }
  for (; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += A[i * k + q]! * B[j * k + q]!;
      S[i * n + j] += s;
    }
}

export interface WeightMatchOptions extends AlignOptions {
  /** Most coordinate-descent rounds (default 8); it stops earlier once a round changes nothing. */
  rounds?: number;
  /** Seed of the group order (default 0). */
  seed?: number;
  /**
   * A·Bᵀ for row-major A, B of `rows` × k (float64), rows × rows out. The default is a blocked JS loop: O(rows²·k) per
   * tensor, minutes per round for a HuBERT-base FFN stack; a caller with onnxruntime at hand can pass a MatMul here.
   */
  gram?: (a: Float64Array, b: Float64Array, rows: number, k: number) => Float64Array | Promise<Float64Array>;
}

/** A coordinate-descent unit: groups solved together (an attention layer's V and Q/K share their head map). */
interface Unit {
  name: string;
  groups: PermGroup[];
  solve: (scores: Float64Array[]) => Promise<Int32Array[]>;
}

/**
 * The moves that score a group: a tensor the same group moves on two axes (the positional conv under the residual
 * permutation) is left out, since its other axis would still be unaligned while the group is being solved; every
 * other tensor of the group scores it.
 */
function scoringMoves(g: PermGroup): Move[] {
  const count = new Map<string, number>();
  for (const m of g.moves) count.set(m.tensor, (count.get(m.tensor) ?? 0) + 1);
  return g.moves.filter((m) => m.kind === 'axis' && count.get(m.tensor) === 1);
}

/** Permutations from the weights alone (Git Re-Basin weight matching), same spec and parts as the correlation method. */
export async function permutationsFromWeights(
  spec: PermutationSpec,
  anchor: WeightMap,
  other: WeightMap,
  opts: WeightMatchOptions,
): Promise<AlignResult> {
  const parts = partsOf(spec, opts);
  const assign = opts.assign ?? defaultAssign(opts.signal);
  const reorder = (opts.heads ?? 'reorder') === 'reorder';
  const qkInHead = opts.qkInHead ?? false;

  const units: Unit[] = [];
  for (const g of [...parts.cnn, ...parts.ffn])
    units.push({ name: g.name, groups: [g], solve: async ([s]) => [(await assign(s!, g.size)).perm] });
  for (const l of parts.layers) {
    const v = group(spec, groupName.attnV(l));
    const qk = group(spec, groupName.attnQK(l));
    const { count, size } = v.blocks!;
    units.push({
      name: `layer.${l}.attn`,
      groups: [v, qk],
      solve: async ([sv, sqk]) =>
        solveBlocks(
          [
            { score: sv!, inBlock: 'permute' },
            { score: sqk!, inBlock: qkInHead ? 'permute' : 'fixed' },
          ],
          count,
          size,
          reorder,
        ).perms,
    });
  }
  if (parts.residual) {
    const g = parts.residual;
    units.push({
      name: g.name,
      groups: [g],
      solve: async ([s]) => solveBlocks([{ score: s!, inBlock: 'permute' }], g.blocks!.count, g.blocks!.size, true).perms,
    });
  }

  const perms: Permutations = new Map();
  for (const u of units) for (const g of u.groups) perms.set(g.name, identityPermutation(g.size));
  const version = new Map<string, number>([...perms.keys()].map((k) => [k, 0]));

  // Per group: the anchor's unfolded tensors (fixed), unit norms for the cosine report, and a score cache keyed by the
  // versions of the other groups that move the same tensors.
  interface GroupState {
    moves: Move[];
    unfoldedA: Float64Array[];
    normA: Float64Array;
    normB: Float64Array;
    neighbours: string[];
    /** Indices of the moves on tensors that no other active group moves: their score needs no other permutation. */
    warm: number[];
    cacheKey: string | null;
    score: Float64Array | null;
    before: number | null;
  }
  const state = new Map<string, GroupState>();
  for (const u of units) {
    for (const g of u.groups) {
      const moves = scoringMoves(g);
      const tensors = new Set(moves.map((m) => m.tensor));
      const neighbours = spec.groups
        .filter((h) => !u.groups.includes(h) && perms.has(h.name) && h.moves.some((m) => tensors.has(m.tensor)))
        .map((h) => h.name);
      const normA = new Float64Array(g.size);
      const normB = new Float64Array(g.size);
      const unfoldedA = moves.map((m) => {
        const a = anchor.get(m.tensor);
        const b = other.get(m.tensor);
        if (!a || !b) throw new EngineError('missing-tensor', `weight matching needs ${m.tensor} in both models`);
        const ua = unfold(a.data, a.shape, m.axis);
        const ub = unfold(b.data, b.shape, m.axis);
        const k = ua.length / g.size;
        for (let i = 0; i < g.size; i++)
          for (let q = 0; q < k; q++) {
            normA[i] += ua[i * k + q]! ** 2;
            normB[i] += ub[i * k + q]! ** 2;
          }
        return ua;
      });
      const others = spec.groups.filter((h) => !u.groups.includes(h) && perms.has(h.name));
      const warm = moves.flatMap((m, i) => (others.some((h) => h.moves.some((hm) => hm.tensor === m.tensor)) ? [] : [i]));
      state.set(g.name, { moves, unfoldedA, normA, normB, neighbours, warm, cacheKey: null, score: null, before: null });
    }
  }

  const addScore = async (S: Float64Array, a: Float64Array, b: Float64Array, rows: number, k: number): Promise<void> => {
    if (!opts.gram) return addGram(S, a, b, rows, k);
    const g = await opts.gram(a, b, rows, k);
    if (g.length !== S.length) throw new EngineError('runtime-error', `gram hook returned ${g.length} values, ${S.length} expected`);
    for (let t = 0; t < S.length; t++) S[t] = S[t]! + g[t]!;
  };

  const scoreFor = async (u: Unit, g: PermGroup): Promise<Float64Array> => {
    const st = state.get(g.name)!;
    const key = st.neighbours.map((h) => version.get(h)).join(',');
    if (st.score && st.cacheKey === key) return st.score;
    // The other model's tensors with every other group's current permutation applied (this unit's groups excluded).
    const tensors = new Set(st.moves.map((m) => m.tensor));
    const sub: PermutationSpec = {
      summary: spec.summary,
      groups: spec.groups
        .filter((h) => !u.groups.includes(h))
        .map((h) => ({ ...h, coupledWith: undefined, moves: h.moves.filter((m) => tensors.has(m.tensor)) })),
    };
    const rest: Permutations = new Map([...perms].filter(([k]) => !u.groups.some((h) => h.name === k)));
    const otherSub: WeightMap = new Map([...tensors].map((t) => [t, other.get(t)!]));
    const moved = applyPermutations(otherSub, sub, rest);
    const S = new Float64Array(g.size * g.size);
    for (let idx = 0; idx < st.moves.length; idx++) {
      const m = st.moves[idx]!;
      const b = moved.get(m.tensor)!;
      const ua = st.unfoldedA[idx]!;
      await addScore(S, ua, unfold(b.data, b.shape, m.axis), g.size, ua.length / g.size);
    }
    st.score = S;
    st.cacheKey = key;
    return S;
  };

  /** The score from the warm moves only (exact whatever the other groups' permutations are), or null if none. */
  const warmScore = async (g: PermGroup): Promise<Float64Array | null> => {
    const st = state.get(g.name)!;
    if (st.warm.length === 0) return null;
    const S = new Float64Array(g.size * g.size);
    for (const idx of st.warm) {
      const m = st.moves[idx]!;
      const b = other.get(m.tensor)!;
      const ua = st.unfoldedA[idx]!;
      await addScore(S, ua, unfold(b.data, b.shape, m.axis), g.size, ua.length / g.size);
    }
    return S;
  };

  const cosine = (g: PermGroup, S: Float64Array, p?: Int32Array): number => {
    const st = state.get(g.name)!;
    let s = 0;
    for (let i = 0; i < g.size; i++) {
      const j = p ? p[i]! : i;
      const d = Math.sqrt(st.normA[i]! * st.normB[j]!);
      s += d > 0 ? S[i * g.size + j]! / d : 0;
    }
    return g.size ? s / g.size : 0;
  };

  // "Before" is the identity everywhere: score every group now, before any permutation moves.
  for (const u of units) for (const g of u.groups) state.get(g.name)!.before = cosine(g, await scoreFor(u, g));

  // Warm start: every unit whose groups all have warm moves (norm parameters, biases, the first conv's kernels) is
  // solved on those alone. They are exact whatever the other permutations are, which keeps the descent out of the
  // poor local optima a start from the identity falls into once the residual stream is permuted (the residual's
  // LayerNorm and bias vectors pin it down before any matrix is compared).
  const rng = mulberry32(opts.seed ?? 0);
  const maxRounds = Math.max(1, opts.rounds ?? 8);
  const totalSteps = (maxRounds + 1) * units.length;
  let done = 0;
  for (const u of units) {
    checkAbort(opts.signal);
    const scores: (Float64Array | null)[] = [];
    for (const g of u.groups) scores.push(await warmScore(g));
    if (scores.every((x): x is Float64Array => x !== null)) {
      const next = await u.solve(scores);
      u.groups.forEach((g, k) => {
        const p = next[k]!;
        if (p.some((x, i) => x !== i)) {
          perms.set(g.name, p);
          version.set(g.name, version.get(g.name)! + 1);
        }
      });
    }
    opts.onProgress?.(++done, totalSteps, u.name);
  }
  for (let round = 0; round < maxRounds; round++) {
    const order = [...units];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let changed = false;
    for (const u of order) {
      checkAbort(opts.signal);
      const scores: Float64Array[] = [];
      for (const g of u.groups) scores.push(await scoreFor(u, g));
      const next = await u.solve(scores);
      u.groups.forEach((g, k) => {
        const old = perms.get(g.name)!;
        const p = next[k]!;
        if (old.some((x, i) => x !== p[i])) {
          perms.set(g.name, p);
          version.set(g.name, version.get(g.name)! + 1);
          changed = true;
        }
      });
      opts.onProgress?.(++done, totalSteps, u.name);
    }
    if (!changed) break;
  }

  // Report from scores under the final permutations of the neighbours.
  const report: GroupReport[] = [];
  for (const u of units) {
    for (const g of u.groups) {
      if (g.kind === 'attn-qk') continue;
      const S = await scoreFor(u, g);
      const p = perms.get(g.name)!;
      report.push({
        group: g.name,
        kind: g.kind,
        source: 'weights',
        size: g.size,
        before: state.get(g.name)!.before!,
        after: cosine(g, S, p),
        moved: fractionMoved(p),
      });
    }
  }
  return { perms, report };
}
