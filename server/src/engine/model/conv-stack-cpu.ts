/**
 * The feature extractor's conv blocks as the CPU backend runs them fastest, same values up to float32 rounding
 * (test/unit/conv-stack-cpu.test.ts; bench:eval measures the difference):
 *
 *  - Every block is a 2-D Conv of height 1 ([B, C, 1, T]): onnxruntime lays 2-D convs out in channel blocks (NCHWc)
 *    with direct AVX kernels, ~25 % faster than its 1-D Conv, which gathers taps (im2col) before a GEMM.
 *  - Block 0 with GroupNorm (HuBERT-base, MERT, wav2vec2-base) is one MatMul instead of Conv + InstanceNormalization:
 *    its input has one channel, so its k taps per frame are gathered cheaply ([B, k, T]); centred per clip, the output
 *    has no mean, and channel c's variance is kernelᵀ_c · Cov · kernel_c from the k × k covariance of those rows
 *    (float64: a high-pass filter's variance is a small difference of large terms). The normalisation becomes a
 *    per-clip scaling of the kernel, and GroupNorm's shift a row of ones, so the front end's largest tensor is
 *    written once, already normalised, instead of four times.
 */
import type { EncoderConfig } from '../io/hfconfig';
import { DataType } from './onnx-proto';
import type { GraphBuilder } from './graph-builder';
import type { Tensor } from './tensor';

/** GroupNorm's epsilon in transformers' feature extractor (torch's default). */
const GROUP_NORM_EPS = 1e-5;

export interface ConvStackInputs {
  /** A canonical weight as a graph initializer (under the encoder's prefix). */
  w: (name: string) => string;
  /** A canonical weight's values (to lay kernels out for 2-D convs and MatMuls). */
  tensor: (name: string) => Tensor;
  /** A value name under the encoder's prefix. */
  p: (hint: string) => string;
  /** The feature extractor's activation. */
  act: (x: string, hint: string) => string;
  /** Graph values ([1, C, 1]) replacing block 0's GroupNorm statistics (the windowed long-audio forward). */
  conv0Stats?: { mean: string; invStd: string };
}

/** Conv blocks on `wave` ([batch, samples]). Returns each block's output, [batch, channels_i, frames_i]. */
export function addConvStackForCpu(b: GraphBuilder, cfg: EncoderConfig, wave: string, inputs: ConvStackInputs): string[] {
  const { w, p } = inputs;
  const outputs: string[] = [];
  const height = b.int64s([2]);
  let x = b.op('Unsqueeze', [wave, b.int64s([1, 2])], {}, p('audio_channels')); // [B, 1, 1, S]
  cfg.convDims.forEach((channels, i) => {
    const base = `feature_extractor.conv_layers.${i}`;
    const norm = `${base}.layer_norm`;
    const k = cfg.convKernels[i]!;
    const s = cfg.convStrides[i]!;
    if (cfg.featExtractNorm === 'group' && i === 0 && !inputs.conv0Stats) {
      const rows = gatherWaveTaps(b, b.op('Squeeze', [x, b.int64s([1, 2])]), k, s, p('conv0_taps'));
      x = b.op('Unsqueeze', [
        normalisedConv(b, rows, inputs.tensor(`${base}.conv.weight`), w(`${norm}.weight`), w(`${norm}.bias`), p),
        height,
      ]);
    } else {
      const kernel = inputs.tensor(`${base}.conv.weight`);
      const conv = [x, b.weight(p(`${base}.conv.weight_2d`), { shape: [kernel.shape[0]!, kernel.shape[1]!, 1, k], data: kernel.data })];
      if (cfg.convBias) conv.push(w(`${base}.conv.bias`));
      x = b.op('Conv', conv, { kernel_shape: [1, k], strides: [1, s], pads: [0, 0, 0, 0] }, p(`conv${i}`));
      if (cfg.featExtractNorm === 'group' && i === 0 && inputs.conv0Stats) {
        // The same GroupNorm with statistics given from outside (a whole clip's, while this graph sees a window of it).
        const planar = (v: string) => b.op('Reshape', [v, b.int64s([1, channels, 1, 1])]);
        const normed = b.op('Mul', [b.op('Sub', [x, planar(inputs.conv0Stats.mean)]), planar(inputs.conv0Stats.invStd)]);
        x = b.op('Add', [b.op('Mul', [normed, planar(w(`${norm}.weight`))]), planar(w(`${norm}.bias`))], {}, p(`conv${i}_norm`));
      } else if (cfg.featExtractNorm === 'group' && i === 0) {
        x = b.op('InstanceNormalization', [x, w(`${norm}.weight`), w(`${norm}.bias`)], { epsilon: { f: 1e-5 } }, p(`conv${i}_norm`));
      } else if (cfg.featExtractNorm === 'layer') {
        const t = b.op('Transpose', [x], { perm: [0, 2, 3, 1] }); // [B, 1, T, C]
        const n = b.op(
          'LayerNormalization',
          [t, w(`${norm}.weight`), w(`${norm}.bias`)],
          { axis: -1, epsilon: { f: 1e-5 } },
          p(`conv${i}_norm`),
        );
        x = b.op('Transpose', [n], { perm: [0, 3, 1, 2] });
      }
    }
    x = inputs.act(x, p(`conv${i}_act`));
    outputs.push(b.op('Squeeze', [x, height], {}, p(`conv${i}_out`)));
  });
  return outputs;
}

/**
 * [B, S] → [B, k, T] with T = ⌊(S − k)/s⌋ + 1: column t holds samples s·t … s·t + k − 1. Whole strides come from one
 * reshape of the first s·(T + ⌊k/s⌋ − 1) samples into blocks of s, shifted; the k mod s remaining taps from strided
 * slices.
 */
function gatherWaveTaps(b: GraphBuilder, wave: string, k: number, s: number, hint: string): string {
  const whole = Math.floor(k / s);
  const samples = b.op('Shape', [wave], { start: 1, end: 2 }); // [S]
  const frames = b.op('Add', [b.op('Div', [b.op('Sub', [samples, b.int64s([k])]), b.int64s([s])]), b.int64s([1])]); // [T]
  const axis = b.int64s([1]);
  const parts: string[] = [];
  if (whole > 0) {
    const end = b.op('Mul', [b.op('Add', [frames, b.int64s([whole - 1])]), b.int64s([s])]);
    const blocks = b.op('Reshape', [b.op('Slice', [wave, b.int64s([0]), end, axis]), b.int64s([0, -1, s])]); // [B, T + whole − 1, s]
    for (let j = 0; j < whole; j++) parts.push(b.op('Slice', [blocks, b.int64s([j]), b.op('Add', [frames, b.int64s([j])]), axis]));
  }
  for (let tap = whole * s; tap < k; tap++) {
    // Samples tap, tap + s, …, tap + s·(T − 1), as a column.
    const end = b.op('Add', [b.op('Mul', [frames, b.int64s([s])]), b.int64s([tap + 1 - s])]);
    parts.push(b.op('Unsqueeze', [b.op('Slice', [wave, b.int64s([tap]), end, axis, b.int64s([s])]), b.int64s([2])]));
  }
  const rows = parts.length === 1 ? parts[0]! : b.op('Concat', parts, { axis: 2 }); // [B, T, k]
  return b.op('Transpose', [rows], { perm: [0, 2, 1] }, hint);
}

/**
 * GroupNorm(C, C) of a one-channel conv over each clip's frames, as one MatMul (see the file comment).
 * rows [B, k, T], kernel [C, 1, k] → [B, C, T].
 */
function normalisedConv(b: GraphBuilder, rows: string, weight: Tensor, gamma: string, beta: string, p: (hint: string) => string): string {
  const [channels, , k] = weight.shape as [number, number, number];
  const kernel = b.weight(p('conv0_kernel'), { shape: [channels, k], data: weight.data }); // [C, k]
  const centred = b.op('Sub', [rows, b.op('ReduceMean', [rows], { axes: [2], keepdims: 1 })], {}, p('conv0_centred')); // [B, k, T]
  const f64 = (v: string) => b.op('Cast', [v], { to: DataType.DOUBLE });
  const c64 = f64(centred);
  const frames = f64(b.op('Shape', [rows], { start: 2, end: 3 }));
  const covariance = b.op('Div', [b.op('MatMul', [c64, b.op('Transpose', [c64], { perm: [0, 2, 1] })]), frames]); // [B, k, k]
  const k64 = f64(kernel);
  const variance = b.op('ReduceSum', [b.op('Mul', [b.op('MatMul', [k64, covariance]), k64]), b.int64s([2])], { keepdims: 1 }); // [B, C, 1]
  const eps = b.op('Cast', [b.scalar(GROUP_NORM_EPS)], { to: DataType.DOUBLE });
  const scale = b.op(
    'Cast',
    [b.op('Div', [f64(b.op('Unsqueeze', [gamma, b.int64s([1])])), b.op('Sqrt', [b.op('Add', [variance, eps])])])],
    {
      to: DataType.FLOAT,
    },
  ); // [B, C, 1]
  // [kernel · scale | beta] · [centred; 1]: the shift rides in the MatMul as a row of ones.
  const batch = b.op('Shape', [rows], { start: 0, end: 1 });
  const shift = b.op('Expand', [
    b.op('Unsqueeze', [beta, b.int64s([0, 2])]),
    b.op('Concat', [batch, b.int64s([channels, 1])], { axis: 0 }),
  ]);
  const affine = b.op('Concat', [b.op('Mul', [kernel, scale]), shift], { axis: 2 }, p('conv0_affine')); // [B, C, k + 1]
  const onesShape = b.op('Concat', [batch, b.int64s([1]), b.op('Shape', [rows], { start: 2, end: 3 })], { axis: 0 });
  const ones = b.op('Expand', [b.scalar(1), onesShape]); // [B, 1, T]
  return b.op('MatMul', [affine, b.op('Concat', [centred, ones], { axis: 1 })], {}, p('conv0_norm'));
}
