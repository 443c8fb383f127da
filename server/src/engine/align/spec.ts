/**
 * Permutation spec: every group of hidden units an encoder can be permuted by without changing what it computes,
 * and exactly which tensor axes each group moves. One description, used by the solver (which groups to find),
 * applyPermutations (which axes to gather), the weight-matching method (which tensors score a group) and the report.
 *
 * Convention (everywhere in align/): a permutation p of a group is a gather, new unit i = old unit p[i]. For alignment,
 * p[i] is the `other` model's unit matched to the anchor's unit i, so the permuted `other` lines up with the anchor.
 *
 * Groups (names are stable; they key permutations.json):
 *   conv.{i}         CNN block i output channels: conv i weight axis 0 (+ bias), its norm's weight/bias when that norm
 *                    is per channel (GroupNorm(C, C) on block 0 of 'group' extractors, the channel LayerNorm of every
 *                    block of 'layer' extractors; both are permutation-equivariant), conv i+1 weight axis 1; the last
 *                    block moves feature_projection.layer_norm and feature_projection.projection weight axis 1.
 *   layer.{l}.ffn    FFN neurons: intermediate_dense weight axis 0 + bias, output_dense weight axis 1.
 *   layer.{l}.attn.v value/context space, H blocks of head_dim: v_proj rows + bias, out_proj columns. A permutation
 *                    that maps head blocks to head blocks re-orders heads and permutes within each head at once.
 *   layer.{l}.attn.qk query/key space, H blocks of head_dim: q_proj and k_proj rows + biases, with ONE shared
 *                    permutation (Q_h K_hᵀ is unchanged by a shared in-head permutation). It must move head blocks
 *                    exactly as attn.v does (`coupledWith`): a head's q, k, v and out_proj columns travel together —
 *                    the released research code re-ordered V/O without Q/K, which is not function-preserving.
 *                    With no in-head Q/K permutation it is the head re-ordering alone.
 *   residual         the residual stream (one permutation for the whole encoder): projection rows + bias, the
 *                    positional conv (see below), encoder.layer_norm, every layer's q/k/v and intermediate_dense
 *                    columns, out_proj and output_dense rows + biases, both layer norms. LayerNorm over D is
 *                    permutation-equivariant, so post-LN and pre-LN layouts move the same tensors. The encoder's
 *                    outputs (every hidden state) come out permuted by it too: compare against gathered outputs.
 *
 * The positional conv is grouped (G groups of D/G channels; output channel o sees input channels of its own group
 * only, weight [D, D/G, K]). The residual permutation must therefore map whole groups to whole groups (blocks
 * {G, D/G}), and within a group it is one permutation used for both the output channels (axis 0) and the group's
 * input channels (axis 1, the 'grouped-in' move): new weight[g'·s + a, b, k] = old[P[g'·s + a], P[g'·s + b] mod s, k].
 * Any P that maps blocks to blocks can be written so; the solver builds such P by assigning groups to groups on
 * the group-pair score matrix (like heads) and then units within each matched group pair. The weight-norm
 * magnitude g (one value per kernel tap, norm over all other dims) is invariant under such a P.
 */
import type { EncoderConfig } from '../io/hfconfig';
import { tapName, type TapName } from '../model/taps';

export type EncoderSummary = Pick<
  EncoderConfig,
  | 'hidden'
  | 'layers'
  | 'heads'
  | 'headDim'
  | 'intermediate'
  | 'convDims'
  | 'convBias'
  | 'featExtractNorm'
  | 'featProjLayerNorm'
  | 'posConvGroups'
  | 'preLayerNorm'
>;

export type GroupKind = 'cnn' | 'ffn' | 'attn-v' | 'attn-qk' | 'residual';

/** Gather `tensor` along `axis` with the group's permutation. */
export interface AxisMove {
  kind: 'axis';
  tensor: string;
  axis: number;
}

/**
 * The input-channel axis (1) of a grouped conv whose output axis (0) the same permutation moves: within each output
 * row's group, gather by the permutation restricted to that group. Applied after the axis-0 move.
 */
export interface GroupedInMove {
  kind: 'grouped-in';
  tensor: string;
  axis: 1;
  groups: number;
}

export type Move = AxisMove | GroupedInMove;

export interface PermGroup {
  name: string;
  kind: GroupKind;
  size: number;
  /** The permutation must map blocks of `size` consecutive units to whole blocks (heads, positional-conv groups). */
  blocks?: { count: number; size: number };
  /** Another group whose block mapping this one must share (attn.qk → attn.v of the same layer). */
  coupledWith?: string;
  /** Layer index for transformer groups (for per-layer reporting). */
  layer?: number;
  /** The tap whose correlation drives this group (correlation method), when there is one. */
  tap?: TapName;
  moves: Move[];
}

export interface PermutationSpec {
  readonly summary: EncoderSummary;
  readonly groups: readonly PermGroup[];
}

const ax = (tensor: string, axis: number): AxisMove => ({ kind: 'axis', tensor, axis });

export const groupName = {
  conv: (i: number) => `conv.${i}`,
  ffn: (l: number) => `layer.${l}.ffn`,
  attnV: (l: number) => `layer.${l}.attn.v`,
  attnQK: (l: number) => `layer.${l}.attn.qk`,
  residual: () => 'residual',
};

/** Every permutation group of an encoder with this configuration. */
export function buildPermutationSpec(cfg: EncoderSummary): PermutationSpec {
  const groups: PermGroup[] = [];
  const D = cfg.hidden;
  const nConv = cfg.convDims.length;

  for (let i = 0; i < nConv; i++) {
    const p = `feature_extractor.conv_layers.${i}`;
    const moves: Move[] = [ax(`${p}.conv.weight`, 0)];
    if (cfg.convBias) moves.push(ax(`${p}.conv.bias`, 0));
    if (cfg.featExtractNorm === 'layer' || i === 0) moves.push(ax(`${p}.layer_norm.weight`, 0), ax(`${p}.layer_norm.bias`, 0));
    if (i + 1 < nConv) moves.push(ax(`feature_extractor.conv_layers.${i + 1}.conv.weight`, 1));
    else {
      if (cfg.featProjLayerNorm) moves.push(ax('feature_projection.layer_norm.weight', 0), ax('feature_projection.layer_norm.bias', 0));
      moves.push(ax('feature_projection.projection.weight', 1));
    }
    groups.push({ name: groupName.conv(i), kind: 'cnn', size: cfg.convDims[i]!, tap: tapName.conv(i), moves });
  }

  const heads = { count: cfg.heads, size: cfg.headDim };
  for (let l = 0; l < cfg.layers; l++) {
    const p = `encoder.layers.${l}`;
    const a = `${p}.attention`;
    groups.push({
      name: groupName.attnV(l),
      kind: 'attn-v',
      size: D,
      blocks: heads,
      layer: l,
      tap: tapName.attn(l),
      moves: [ax(`${a}.v_proj.weight`, 0), ax(`${a}.v_proj.bias`, 0), ax(`${a}.out_proj.weight`, 1)],
    });
    groups.push({
      name: groupName.attnQK(l),
      kind: 'attn-qk',
      size: D,
      blocks: heads,
      coupledWith: groupName.attnV(l),
      layer: l,
      moves: [ax(`${a}.q_proj.weight`, 0), ax(`${a}.q_proj.bias`, 0), ax(`${a}.k_proj.weight`, 0), ax(`${a}.k_proj.bias`, 0)],
    });
    const f = `${p}.feed_forward`;
    groups.push({
      name: groupName.ffn(l),
      kind: 'ffn',
      size: cfg.intermediate,
      layer: l,
      tap: tapName.ffn(l),
      moves: [ax(`${f}.intermediate_dense.weight`, 0), ax(`${f}.intermediate_dense.bias`, 0), ax(`${f}.output_dense.weight`, 1)],
    });
  }

  const res: Move[] = [
    ax('feature_projection.projection.weight', 0),
    ax('feature_projection.projection.bias', 0),
    ax('encoder.pos_conv_embed.conv.weight', 0),
    { kind: 'grouped-in', tensor: 'encoder.pos_conv_embed.conv.weight', axis: 1, groups: cfg.posConvGroups },
    ax('encoder.pos_conv_embed.conv.bias', 0),
    ax('encoder.layer_norm.weight', 0),
    ax('encoder.layer_norm.bias', 0),
  ];
  for (let l = 0; l < cfg.layers; l++) {
    const p = `encoder.layers.${l}`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj']) res.push(ax(`${p}.attention.${proj}.weight`, 1));
    res.push(ax(`${p}.attention.out_proj.weight`, 0), ax(`${p}.attention.out_proj.bias`, 0));
    res.push(ax(`${p}.layer_norm.weight`, 0), ax(`${p}.layer_norm.bias`, 0));
    res.push(ax(`${p}.feed_forward.intermediate_dense.weight`, 1));
    res.push(ax(`${p}.feed_forward.output_dense.weight`, 0), ax(`${p}.feed_forward.output_dense.bias`, 0));
    res.push(ax(`${p}.final_layer_norm.weight`, 0), ax(`${p}.final_layer_norm.bias`, 0));
  }
  groups.push({
    name: groupName.residual(),
    kind: 'residual',
    size: D,
    blocks: { count: cfg.posConvGroups, size: D / cfg.posConvGroups },
    moves: res,
  });

  return { summary: cfg, groups };
}

export function findGroup(spec: PermutationSpec, name: string): PermGroup | undefined {
  return spec.groups.find((g) => g.name === name);
}
