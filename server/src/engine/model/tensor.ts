/** A float32 tensor in row-major order. The engine computes on float32; checkpoints in F16/BF16 are upcast on read. */
export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/**
 * A model's parameters by canonical name: the Hugging Face name without the model prefix (`hubert.`, `wav2vec2.`,
 * …), e.g. `encoder.layers.0.attention.q_proj.weight`. The positional conv is held as its *effective* weight
 * `encoder.pos_conv_embed.conv.weight` (g·v/‖v‖, norm over all dims but the kernel dim), whichever way the
 * checkpoint stored it; writers decompose it again (see model/weights.ts).
 */
export type WeightMap = Map<string, Tensor>;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensor(shape: readonly number[], data?: Float32Array): Tensor {
  const n = numel(shape);
  if (data && data.length !== n) throw new RangeError(`tensor data has ${data.length} values, shape [${shape.join(', ')}] needs ${n}`);
  return { shape: [...shape], data: data ?? new Float32Array(n) };
}
