/**
 * Assignment for block-structured groups (attention heads, positional-conv groups of the residual stream): a
 * permutation that maps whole blocks to blocks and then permutes within each block.
 *
 * Two stages, both exact for their sub-problem: for every block pair (a, b) the optimal in-block assignment on the
 * score sub-matrix gives the pair score S[a, b]; the block map is the optimal assignment on S; the in-block
 * permutations are those of the chosen pairs. (The joint optimum over block-respecting permutations is exactly this:
 * for a fixed block map the in-block problems are independent, and S[a, b] is each one's optimum.)
 */
import { solveLap } from './lap';
import { fromBlocks, identityPermutation } from './permute';

/** One additive score over a block-structured space (n = count·size, row-major n×n), and how its blocks may move. */
export interface BlockScore {
  score: Float64Array;
  /** 'permute': optimal in-block permutation; 'fixed': units keep their in-block index (score = block trace). */
  inBlock: 'permute' | 'fixed';
}

export interface BlockSolution {
  /** blocks[a] = the old block new block a comes from. */
  blocks: Int32Array;
  /** One permutation per input score, all sharing `blocks`. */
  perms: Int32Array[];
  /** Total of all scores at the solution. */
  total: number;
  /** pairScores[a·count + b]: the best in-block total of anchor block a against other block b (0 when not scored). */
  pairScores: Float64Array;
}

function subBlock(score: Float64Array, n: number, a: number, b: number, size: number): Float64Array {
  const sub = new Float64Array(size * size);
  for (let i = 0; i < size; i++) {
    const row = (a * size + i) * n + b * size;
    sub.set(score.subarray(row, row + size), i * size);
  }
  return sub;
}

/**
 * Solves jointly for one block map and per-score in-block permutations maximising the summed score.
 * `reorder` false keeps every block in place (heads: within).
 */
export function solveBlocks(scores: readonly BlockScore[], count: number, size: number, reorder: boolean): BlockSolution {
  const n = count * size;
  const pair = new Float64Array(count * count);
  const within: (Int32Array | null)[][][] = scores.map(() =>
    Array.from({ length: count }, () => new Array<Int32Array | null>(count).fill(null)),
  );
  for (let a = 0; a < count; a++) {
    for (let b = 0; b < count; b++) {
      if (!reorder && a !== b) continue;
      let total = 0;
      scores.forEach((s, k) => {
        const sub = subBlock(s.score, n, a, b, size);
        if (s.inBlock === 'permute') {
          const r = solveLap(sub, size);
          within[k]![a]![b] = r.perm;
          total += r.total;
        } else {
          for (let j = 0; j < size; j++) total += sub[j * size + j]!;
        }
      });
      pair[a * count + b] = total;
    }
  }
  const blocks = reorder ? solveLap(pair, count).perm : identityPermutation(count);
  let total = 0;
  for (let a = 0; a < count; a++) total += pair[a * count + blocks[a]!]!;
  const perms = scores.map((_, k) =>
    fromBlocks(
      blocks,
      Array.from({ length: count }, (_, a) => within[k]![a]![blocks[a]!]!),
      size,
    ),
  );
  return { blocks, perms, total, pairScores: pair };
}
