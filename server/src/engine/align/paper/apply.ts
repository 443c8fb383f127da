/**
 * How the released code applies its permutations, reproduced with its departures from function preservation.
 *
 * model_merger_new.py ModelMerge.apply_transformations_custom visits every hook node and, for each model in turn,
 * applies `merge` (output rows, + bias) to the node's closest parameterised predecessor and `unmerge` (input
 * columns) to its closest successor. For the ff+attn graph (graphs/hubert_graph_complete_merge.py) the nodes sit
 * before fc2 (predecessor fc1, successor fc2) and before out_proj (predecessor v_proj, successor out_proj).
 * The set `processed_nodes` that skips a predecessor already merged is shared by both models, and both graphs
 * number their nodes identically; the anchor (graph 0, identity matrices) is visited first, so for the other model
 * every predecessor counts as processed and its `merge` is skipped. Only `unmerge` reaches the other model:
 *
 *   FFN        output_dense (fc2) columns gathered; intermediate_dense (fc1) rows and bias left in place.
 *   attention  out_proj columns gathered (heads re-ordered and permuted within); v_proj left in place; q_proj and
 *              k_proj are not part of the ff+attn graph at all.
 *
 * The permuted model therefore does not compute what the original did (the self-check measures by how much).
 * The residual stream is not permuted: the ff+attn graph has no POSTFIX (residual) nodes.
 */
import type { EncoderConfig } from '../../io/hfconfig';
import type { WeightMap } from '../../model/tensor';
import { applyPermutations, type Permutations } from '../permute';
import { groupName, type PermGroup, type PermutationSpec } from '../spec';

/** The released code's moves: the consumers' input columns only (group names as in spec.ts). */
export function paperSpec(cfg: EncoderConfig): PermutationSpec {
  const groups: PermGroup[] = [];
  for (let l = 0; l < cfg.layers; l++) {
    const p = `encoder.layers.${l}`;
    groups.push({
      name: groupName.attnV(l),
      kind: 'attn-v',
      size: cfg.hidden,
      blocks: { count: cfg.heads, size: cfg.headDim },
      layer: l,
      moves: [{ kind: 'axis', tensor: `${p}.attention.out_proj.weight`, axis: 1 }],
    });
    groups.push({
      name: groupName.ffn(l),
      kind: 'ffn',
      size: cfg.intermediate,
      layer: l,
      moves: [{ kind: 'axis', tensor: `${p}.feed_forward.output_dense.weight`, axis: 1 }],
    });
  }
  return { summary: cfg, groups };
}

/** The other model as the released code leaves it after apply_transformations_custom. */
export function applyPaperPermutations(weights: WeightMap, cfg: EncoderConfig, perms: Permutations): WeightMap {
  return applyPermutations(weights, paperSpec(cfg), perms);
}
