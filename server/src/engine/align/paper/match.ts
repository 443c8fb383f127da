/**
 * The released code's matching (s3prl/matching_functions.py), as called by model_merger_new.py
 * ModelMerge.compute_transformations with the defaults of prepare_hubert_mert_merging_permutation_style.py
 * (merging_algorithm match_tensors_permute, merge_type ff+attn → permute_heads=True, no_absval=True):
 *
 *   FFN (hook: input of fc2)          match_tensors_permute: one linear assignment maximising the SIGNED
 *                                     correlation of the anchor × other block (no_absval=True: no absolute value).
 *   attention (hook: MHA output)      match_tensors_permute_MHA with permute_heads=True and no head_assignments: for
 *                                     every head pair (j, k) a linear assignment on the head_dim × head_dim sub-block,
 *                                     costs[j, k] = its optimal total; the head map is the assignment on `costs`; each
 *                                     anchor head j takes the in-head permutation of its pair. permute_heads=False
 *                                     (heads: within) pairs head j with head j only.
 *
 * Both give a gather permutation in this engine's convention (new unit i = old unit p[i]; p = col_ind, the other
 * model's unit matched to anchor unit i): the code's P_B = eye[col_ind].T, and its unmerge W @ P_B gathers W's
 * columns by col_ind.
 */
import { solveBlocks } from '../blocks';
import type { Assignment } from '../lap';
import { meanMatched } from '../solve';

export interface PaperMatch {
  perm: Int32Array;
  /** Mean matched correlation before (identity) and after. */
  before: number;
  after: number;
  /** Head-pair scores (attention only): mean matched correlation of each head pair, [heads × heads] row-major. */
  blockScores?: { count: number; scores: number[] };
}

/** FFN: match_tensors_permute on the signed correlation. */
export async function matchUnits(
  corr: Float64Array,
  n: number,
  assign: (score: Float64Array, n: number) => Promise<Assignment>,
): Promise<PaperMatch> {
  const { perm } = await assign(corr, n);
  return { perm, before: meanMatched(corr, n), after: meanMatched(corr, n, perm) };
}

/** Attention: match_tensors_permute_MHA on the signed correlation of the MHA outputs, `reorder` = permute_heads. */
export function matchHeads(corr: Float64Array, heads: number, headDim: number, reorder: boolean): PaperMatch {
  const n = heads * headDim;
  const sol = solveBlocks([{ score: corr, inBlock: 'permute' }], heads, headDim, reorder);
  const perm = sol.perms[0]!;
  return {
    perm,
    before: meanMatched(corr, n),
    after: meanMatched(corr, n, perm),
    blockScores: { count: heads, scores: Array.from(sol.pairScores, (s) => s / headDim) },
  };
}
