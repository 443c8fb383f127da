/**
 * Named taps: the places inside an encoder that alignment looks at. One naming scheme, shared by the graph builder,
 * the statistics step, the permutation specs and the report.
 *
 *   conv.{i}        conv block i output after its norm/activation           [batch, channels, frames_i]
 *   proj            feature projection output (before the positional conv) [batch, frames, hidden]
 *   layer.{l}.attn_in   attention input (q/k/v_proj's input: after the pre-LN norm)  [batch, frames, hidden]
 *   layer.{l}.attn  attention context before out_proj, heads concatenated   [batch, frames, heads*head_dim]
 *   layer.{l}.attn_out  attention output after out_proj, before the residual add [batch, frames, hidden]
 *                   (where the released research code measured attention; align/paper/)
 *   layer.{l}.ffn_in    FFN input (intermediate_dense's input, after its norm)  [batch, frames, hidden]
 *   layer.{l}.ffn   FFN intermediate after the activation                   [batch, frames, intermediate]
 *   layer.{l}.out   layer output (the residual stream after layer l)        [batch, frames, hidden]
 *   hidden.{k}      transformers' hidden_states[k], k = 0..layers           [batch, frames, hidden]
 *                   (for pre-LN models the final encoder LayerNorm is applied to last_hidden_state only)
 */
export type TapName =
  `conv.${number}` | 'proj' | `layer.${number}.${'attn_in' | 'attn' | 'attn_out' | 'ffn_in' | 'ffn' | 'out'}` | `hidden.${number}`;

export const tapName = {
  conv: (i: number): TapName => `conv.${i}`,
  proj: (): TapName => 'proj',
  attnIn: (l: number): TapName => `layer.${l}.attn_in`,
  attn: (l: number): TapName => `layer.${l}.attn`,
  attnOut: (l: number): TapName => `layer.${l}.attn_out`,
  ffnIn: (l: number): TapName => `layer.${l}.ffn_in`,
  ffn: (l: number): TapName => `layer.${l}.ffn`,
  out: (l: number): TapName => `layer.${l}.out`,
  hidden: (k: number): TapName => `hidden.${k}`,
};

/** Whether a tap is laid out channels-first ([batch, channels, frames]) rather than frames-first. */
export function isChannelsFirst(tap: TapName): boolean {
  return tap.startsWith('conv.');
}
