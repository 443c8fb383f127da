/**
 * Permutations of an encoder's weights (group name → gather permutation, see spec.ts for the convention) and
 * applying them: exact copies moved, no arithmetic, so a permuted model computes bit-for-bit the same function up to
 * float summation order (and, with a residual permutation, outputs permuted by it).
 */
import { EngineError } from '../errors';
import type { Tensor, WeightMap } from '../model/tensor';
import { randomPermutation } from '../random';
import type { Move, PermGroup, PermutationSpec } from './spec';

/** Group name → permutation (gather: new unit i = old unit p[i]). A missing group is the identity. */
export type Permutations = Map<string, Int32Array>;

export function identityPermutation(n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return p;
}

export function isIdentity(p: Int32Array): boolean {
  for (let i = 0; i < p.length; i++) if (p[i] !== i) return false;
  return true;
}

export function invertPermutation(p: Int32Array): Int32Array {
  const inv = new Int32Array(p.length);
  for (let i = 0; i < p.length; i++) inv[p[i]!] = i;
  return inv;
}

/** The permutation equal to applying `first`, then `second`: result[i] = first[second[i]]. */
export function composePermutation(first: Int32Array, second: Int32Array): Int32Array {
  if (first.length !== second.length) throw new RangeError(`cannot compose permutations of ${first.length} and ${second.length} units`);
  const out = new Int32Array(first.length);
  for (let i = 0; i < out.length; i++) out[i] = first[second[i]!]!;
  return out;
}

/** Group-wise inverse. */
export function invertPermutations(perms: Permutations): Permutations {
  return new Map([...perms].map(([k, p]) => [k, invertPermutation(p)]));
}

/** Group-wise composition: applying `first` then `second` equals applying the result. */
export function composePermutations(first: Permutations, second: Permutations): Permutations {
  const out: Permutations = new Map(first);
  for (const [k, q] of second) {
    const p = first.get(k);
    out.set(k, p ? composePermutation(p, q) : q);
  }
  return out;
}

/** Fraction of units a permutation moves (0 for the identity). */
export function fractionMoved(p: Int32Array): number {
  if (p.length === 0) return 0;
  let moved = 0;
  for (let i = 0; i < p.length; i++) if (p[i] !== i) moved++;
  return moved / p.length;
}

/**
 * The block map of a permutation that maps blocks of `size` units to whole blocks (blockMap[b] = the old block that
 * new block b comes from), or null when it splits a block.
 */
export function blockMap(p: Int32Array, count: number, size: number): Int32Array | null {
  const map = new Int32Array(count);
  for (let b = 0; b < count; b++) {
    const ob = Math.floor(p[b * size]! / size);
    for (let j = 1; j < size; j++) if (Math.floor(p[b * size + j]! / size) !== ob) return null;
    map[b] = ob;
  }
  return map;
}

/** Builds a block-structured permutation: new block b = old block blocks[b], within it new j = old within[b][j]. */
export function fromBlocks(blocks: Int32Array, within: readonly (Int32Array | null)[], size: number): Int32Array {
  const p = new Int32Array(blocks.length * size);
  for (let b = 0; b < blocks.length; b++) {
    const w = within[b];
    for (let j = 0; j < size; j++) p[b * size + j] = blocks[b]! * size + (w ? w[j]! : j);
  }
  return p;
}

function isPermutationOf(p: Int32Array, n: number): boolean {
  if (p.length !== n) return false;
  const seen = new Uint8Array(n);
  for (const v of p) {
    if (v < 0 || v >= n || seen[v]) return false;
    seen[v] = 1;
  }
  return true;
}

/** Checks every permutation against its group: known name, size, a permutation, block structure, coupled heads. */
export function validatePermutations(spec: PermutationSpec, perms: Permutations): void {
  const byName = new Map(spec.groups.map((g) => [g.name, g]));
  for (const [name, p] of perms) {
    const g = byName.get(name);
    if (!g) throw new EngineError('runtime-error', `permutation for unknown group "${name}"`);
    if (!isPermutationOf(p, g.size))
      throw new EngineError('shape-mismatch', `permutation for ${name} is not a permutation of ${g.size} units (got ${p.length} values)`);
    if (g.blocks && !blockMap(p, g.blocks.count, g.blocks.size)) {
      throw new EngineError(
        'runtime-error',
        `permutation for ${name} splits a block of ${g.blocks.size} units (${g.kind === 'residual' ? 'positional-conv group' : 'head'})`,
      );
    }
  }
  for (const g of spec.groups) {
    if (!g.coupledWith || !g.blocks) continue;
    const p = perms.get(g.name);
    const q = perms.get(g.coupledWith);
    const bp = p ? blockMap(p, g.blocks.count, g.blocks.size)! : identityPermutation(g.blocks.count);
    const bq = q ? blockMap(q, g.blocks.count, g.blocks.size)! : identityPermutation(g.blocks.count);
    for (let b = 0; b < bp.length; b++) {
      if (bp[b] !== bq[b])
        throw new EngineError(
          'runtime-error',
          `${g.name} and ${g.coupledWith} must move heads together (head ${b} comes from ${bp[b]} vs ${bq[b]})`,
        );
    }
  }
}

/** Gathers `data` (shape) along `axis` by `p`. */
function gatherAxis(data: Float32Array, shape: readonly number[], axis: number, p: Int32Array): Float32Array {
  const len = shape[axis]!;
  let outer = 1;
  for (let k = 0; k < axis; k++) outer *= shape[k]!;
  let inner = 1;
  for (let k = axis + 1; k < shape.length; k++) inner *= shape[k]!;
  const out = new Float32Array(data.length);
  for (let o = 0; o < outer; o++) {
    const base = o * len * inner;
    if (inner === 1) {
      for (let i = 0; i < len; i++) out[base + i] = data[base + p[i]!]!;
    } else {
      for (let i = 0; i < len; i++) out.set(data.subarray(base + p[i]! * inner, base + (p[i]! + 1) * inner), base + i * inner);
    }
  }
  return out;
}

/** The grouped conv's input axis: row o (already in its new place) gathers within its group by p restricted to it. */
function gatherGroupedIn(data: Float32Array, shape: readonly number[], groups: number, p: Int32Array): Float32Array {
  const [O, I, K] = shape as [number, number, number];
  const s = O / groups;
  if (I !== s)
    throw new EngineError('shape-mismatch', `grouped conv with ${groups} groups of ${s} channels has ${I} input channels per group`);
  const out = new Float32Array(data.length);
  for (let o = 0; o < O; o++) {
    const g = Math.floor(o / s);
    const row = o * I * K;
    for (let b = 0; b < I; b++) {
      const src = p[g * s + b]! % s;
      out.set(data.subarray(row + src * K, row + (src + 1) * K), row + b * K);
    }
  }
  return out;
}

function checkMove(g: PermGroup, m: Move, t: Tensor | undefined): asserts t is Tensor {
  if (!t) throw new EngineError('missing-tensor', `permutation group ${g.name} moves ${m.tensor}, which the model does not have`);
  if (m.kind === 'axis' && t.shape[m.axis] !== g.size) {
    throw new EngineError(
      'shape-mismatch',
      `${m.tensor} axis ${m.axis} has ${t.shape[m.axis]} units, permutation group ${g.name} has ${g.size}`,
    );
  }
  if (m.kind === 'grouped-in' && (t.shape.length !== 3 || t.shape[0] !== g.size)) {
    throw new EngineError('shape-mismatch', `${m.tensor} [${t.shape.join(', ')}] is not a grouped conv over ${g.size} channels`);
  }
}

/**
 * A new WeightMap with every group's permutation applied to the axes its spec names. Tensors that no permutation
 * touches are shared with the input (tensors are never mutated in place by the engine); moved ones are new copies.
 */
export function applyPermutations(weights: WeightMap, spec: PermutationSpec, perms: Permutations): WeightMap {
  validatePermutations(spec, perms);
  // Per tensor, its moves in order: plain axis gathers first, then grouped-in (which reads rows in their new place).
  const plan = new Map<string, { g: PermGroup; m: Move; p: Int32Array }[]>();
  for (const g of spec.groups) {
    const p = perms.get(g.name);
    if (!p || isIdentity(p)) continue;
    for (const m of g.moves) {
      const t = weights.get(m.tensor);
      checkMove(g, m, t);
      const list = plan.get(m.tensor) ?? [];
      list.push({ g, m, p });
      plan.set(m.tensor, list);
    }
  }
  const out: WeightMap = new Map(weights);
  for (const [name, moves] of plan) {
    const t = weights.get(name)!;
    moves.sort((a, b) => (a.m.kind === 'grouped-in' ? 1 : 0) - (b.m.kind === 'grouped-in' ? 1 : 0));
    let data = t.data;
    for (const { m, p } of moves) {
      data = m.kind === 'axis' ? gatherAxis(data, t.shape, m.axis, p) : gatherGroupedIn(data, t.shape, m.groups, p);
    }
    out.set(name, { shape: [...t.shape], data });
  }
  return out;
}

/** Gathers the last (feature) axis of a [rows × n] activation by p: what a residual permutation does to outputs. */
export function permuteFeatures(x: Float32Array, n: number, p: Int32Array): Float32Array {
  return gatherAxis(x, [x.length / n, n], 1, p);
}

export interface RandomPermutationOptions {
  /** Which groups get a random permutation (default all). */
  include?: (g: PermGroup) => boolean;
  /** Random in-head Q/K permutations (default true); otherwise attn.qk only re-orders heads. */
  qkInHead?: boolean;
}

/** Random permutations that respect every group's constraints (blocks, coupled head maps); for tests and self-checks. */
export function randomPermutations(spec: PermutationSpec, rng: () => number, opts: RandomPermutationOptions = {}): Permutations {
  const include = opts.include ?? (() => true);
  const perms: Permutations = new Map();
  const headMaps = new Map<string, Int32Array>();
  for (const g of spec.groups) {
    if (!include(g)) continue;
    if (!g.blocks) {
      perms.set(g.name, randomPermutation(g.size, rng));
      continue;
    }
    const { count, size } = g.blocks;
    const coupled = g.coupledWith ? (headMaps.get(g.coupledWith) ?? identityPermutation(count)) : undefined;
    const blocks = coupled ?? randomPermutation(count, rng);
    headMaps.set(g.name, blocks);
    const inBlock = g.kind !== 'attn-qk' || opts.qkInHead !== false;
    const within = Array.from({ length: count }, () => (inBlock ? randomPermutation(size, rng) : null));
    perms.set(g.name, fromBlocks(blocks, within, size));
  }
  return perms;
}

/** permutations.json form: plain arrays per group. */
export function permutationsToJson(perms: Permutations): Record<string, number[]> {
  const o: Record<string, number[]> = {};
  for (const [k, p] of perms) o[k] = Array.from(p);
  return o;
}

export function permutationsFromJson(json: Record<string, number[]>): Permutations {
  return new Map(Object.entries(json).map(([k, v]) => [k, Int32Array.from(v)]));
}
