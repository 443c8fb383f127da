/**
 * The wav2vec2 / HuBERT / MERT encoder as an ONNX graph, op for op what transformers computes in eval mode, with
 * named taps (model/taps.ts). Weights are canonical (model/tensor.ts). Several encoders can share one graph (each
 * under its own name prefix, on the same input), which is how alignment runs both models on one batch.
 */
import type { Activation, EncoderConfig } from '../io/hfconfig';
import { POS_CONV } from './weights';
import type { GraphBuilder } from './graph-builder';
import { tapName, type TapName } from './taps';
import type { Tensor, WeightMap } from './tensor';
import { addConvStackForCpu } from './conv-stack-cpu';

/** Value names of every tap in the graph, plus `last_hidden_state`. */
export type TapValues = Map<TapName | 'last_hidden_state', string>;

/**
 * Layers [from, to) of an encoder. With `from` given (0 included) the graph starts from hidden.{from} ([batch, frames,
 * hidden], passed as `audio`) instead of the waveform and has no front end: the statistics step runs an encoder as a chain of such passes, each tapping a
 * group of layers, so that only one group's activations are alive at a time (model/pair-graph.ts).
 */
export interface EncoderRange {
  from?: number;
  to?: number;
}

export interface FrontEndOptions {
  /** Graph values ([1, C, 1]) replacing the first conv's GroupNorm statistics (the windowed long-audio forward). */
  conv0Stats?: { mean: string; invStd: string };
  /** Conv blocks laid out for the CPU backend (model/conv-stack-cpu.ts): faster there, same values. */
  cpuConvStack?: boolean;
}

/**
 * Adds one encoder reading `audio` ([batch, samples], float32 at the model's sample rate) to the builder.
 * Returns the value name of every tap; the caller chooses which become graph outputs or feed reductions.
 */
export function addEncoder(
  b: GraphBuilder,
  cfg: EncoderConfig,
  weights: WeightMap,
  audio: string,
  prefix = '',
  range: EncoderRange = {},
  front: FrontEndOptions = {},
): TapValues {
  const taps: TapValues = new Map();
  const get = (name: string) => {
    const t = weights.get(name);
    if (!t) throw new Error(`internal: weight ${name} missing after validation`);
    return t;
  };
  const w: W = Object.assign((name: string) => b.weight(`${prefix}${name}`, get(name)), {
    transposed: (name: string) => b.weightTransposed(`${prefix}${name}_T`, get(name)),
    tensor: get,
  });
  const p = (hint: string) => `${prefix}${hint}`;
  const from = range.from ?? 0;
  const to = range.to ?? cfg.layers;
  let x = range.from === undefined ? addFrontEnd(b, cfg, w, audio, p, taps, front) : audio;

  for (let l = from; l < to; l++) {
    const base = `encoder.layers.${l}`;
    const lp = (h: string) => p(`l${l}_${h}`);
    if (cfg.preLayerNorm) {
      const n = layerNorm(b, x, w, `${base}.layer_norm`, cfg.layerNormEps, lp('attn_norm'));
      const a = attention(b, cfg, w, n, base, lp, taps, l);
      x = b.op('Add', [x, a], {}, lp('attn_res'));
      const f = feedForward(b, cfg, w, layerNorm(b, x, w, `${base}.final_layer_norm`, cfg.layerNormEps, lp('ffn_norm')), base, lp, taps, l);
      x = b.op('Add', [x, f], {}, lp('out'));
    } else {
      const a = attention(b, cfg, w, x, base, lp, taps, l);
      x = layerNorm(b, b.op('Add', [x, a], {}, lp('attn_res')), w, `${base}.layer_norm`, cfg.layerNormEps, lp('attn_norm'));
      const f = feedForward(b, cfg, w, x, base, lp, taps, l);
      x = layerNorm(b, b.op('Add', [x, f], {}, lp('ffn_res')), w, `${base}.final_layer_norm`, cfg.layerNormEps, lp('out'));
    }
    taps.set(tapName.out(l), x);
    taps.set(tapName.hidden(l + 1), x);
  }
  if (to < cfg.layers) return taps;
  // Pre-LN ends with the encoder LayerNorm; transformers (≥ 5) applies it to last_hidden_state only, not to hidden_states.
  if (cfg.preLayerNorm) x = layerNorm(b, x, w, 'encoder.layer_norm', cfg.layerNormEps, p('final_norm'));
  taps.set('last_hidden_state', x);
  return taps;
}

/** Feature extractor, projection, positional conv: waveform → hidden.0. */
function addFrontEnd(
  b: GraphBuilder,
  cfg: EncoderConfig,
  w: W,
  audio: string,
  p: (hint: string) => string,
  taps: TapValues,
  front: FrontEndOptions,
): string {
  // The checkpoint's feature extractor normalises each waveform (do_normalize): (x − mean) / √(var + 1e-7).
  let wave = audio;
  if (cfg.normalizeInput) {
    const centred = b.op('Sub', [audio, b.op('ReduceMean', [audio], { axes: [1], keepdims: 1 })], {}, p('audio_centred'));
    const variance = b.op('ReduceMean', [b.op('Mul', [centred, centred])], { axes: [1], keepdims: 1 });
    wave = b.op('Div', [centred, b.op('Sqrt', [b.op('Add', [variance, b.scalar(1e-7)])])], {}, p('audio_normalised'));
  }
  let x: string;
  if (front.cpuConvStack) {
    const act = (v: string, hint: string) => activation(b, v, cfg.featExtractActivation, hint);
    const blocks = addConvStackForCpu(b, cfg, wave, { w, tensor: w.tensor, p, act, ...front });
    blocks.forEach((v, i) => taps.set(tapName.conv(i), v));
    x = b.op('Transpose', [blocks.at(-1)!], { perm: [0, 2, 1] }, p('features'));
  } else x = addConvStack(b, cfg, w, wave, p, taps, front);

  // Feature projection: [B, T, C] → LayerNorm → Linear → [B, T, D].
  if (cfg.featProjLayerNorm) {
    x = layerNorm(b, x, w, 'feature_projection.layer_norm', cfg.layerNormEps, p('proj_norm'));
  }
  x = linear(b, x, w, 'feature_projection.projection', p('proj'));
  taps.set(tapName.proj(), x);

  // Positional conv embedding (weight-normed grouped conv, "same" padding, drop the extra frame for even kernels).
  const K = cfg.posConvKernel;
  let pos = b.op('Transpose', [x], { perm: [0, 2, 1] });
  pos = b.op(
    'Conv',
    [pos, w(`${POS_CONV}.weight`), w(`${POS_CONV}.bias`)],
    { kernel_shape: [K], pads: [K >> 1, K >> 1], group: cfg.posConvGroups },
    p('pos_conv'),
  );
  if (K % 2 === 0) pos = b.op('Slice', [pos, b.int64s([0]), b.int64s([-1]), b.int64s([2])], {}, p('pos_same_pad'));
  pos = activation(b, pos, cfg.featExtractActivation, p('pos_act'));
  pos = b.op('Transpose', [pos], { perm: [0, 2, 1] });
  x = b.op('Add', [x, pos], {}, p('embed'));

  if (!cfg.preLayerNorm) x = layerNorm(b, x, w, 'encoder.layer_norm', cfg.layerNormEps, p('embed_norm'));
  taps.set(tapName.hidden(0), x);
  return x;
}

/** Conv blocks as onnxruntime Convs, channels-first: waveform [B, S] → [B, 1, S] → … → [B, C, T] → [B, T, C]. */
function addConvStack(
  b: GraphBuilder,
  cfg: EncoderConfig,
  w: W,
  wave: string,
  p: (hint: string) => string,
  taps: TapValues,
  front: FrontEndOptions,
): string {
  let x = b.op('Unsqueeze', [wave, b.int64s([1])], {}, p('audio_channels'));
  cfg.convDims.forEach((_, i) => {
    const base = `feature_extractor.conv_layers.${i}`;
    const inputs = [x, w(`${base}.conv.weight`)];
    if (cfg.convBias) inputs.push(w(`${base}.conv.bias`));
    x = b.op('Conv', inputs, { kernel_shape: [cfg.convKernels[i]!], strides: [cfg.convStrides[i]!], pads: [0, 0] }, p(`conv${i}`));
    if (cfg.featExtractNorm === 'group' && i === 0 && front.conv0Stats) {
      // The same GroupNorm with statistics given from outside (a whole clip's, while this graph sees a window of it).
      const { mean, invStd } = front.conv0Stats;
      const channel = (t: string) => b.op('Unsqueeze', [w(t), b.int64s([1])]); // [C] → [C, 1]
      const normed = b.op('Mul', [b.op('Sub', [x, mean]), invStd]);
      x = b.op(
        'Add',
        [b.op('Mul', [normed, channel(`${base}.layer_norm.weight`)]), channel(`${base}.layer_norm.bias`)],
        {},
        p(`conv${i}_norm`),
      );
    } else if (cfg.featExtractNorm === 'group' && i === 0) {
      // GroupNorm(C, C) normalises each channel over time: exactly InstanceNormalization.
      x = b.op(
        'InstanceNormalization',
        [x, w(`${base}.layer_norm.weight`), w(`${base}.layer_norm.bias`)],
        { epsilon: { f: 1e-5 } },
        p(`conv${i}_norm`),
      );
    } else if (cfg.featExtractNorm === 'layer') {
      const t = b.op('Transpose', [x], { perm: [0, 2, 1] });
      const n = b.op(
        'LayerNormalization',
        [t, w(`${base}.layer_norm.weight`), w(`${base}.layer_norm.bias`)],
        { axis: -1, epsilon: { f: 1e-5 } },
        p(`conv${i}_norm`),
      );
      x = b.op('Transpose', [n], { perm: [0, 2, 1] });
    }
    x = activation(b, x, cfg.featExtractActivation, p(`conv${i}_act`));
    taps.set(tapName.conv(i), x);
  });
  return b.op('Transpose', [x], { perm: [0, 2, 1] }, p('features'));
}

/** Weights by canonical name as graph initializers; `transposed` for torch Linear weights feeding a MatMul. */
type W = ((name: string) => string) & { transposed: (name: string) => string; tensor: (name: string) => Tensor };

function linear(b: GraphBuilder, x: string, w: W, base: string, hint: string): string {
  return b.op('Add', [b.op('MatMul', [x, w.transposed(`${base}.weight`)], {}, `${hint}_mm`), w(`${base}.bias`)], {}, hint);
}

function layerNorm(b: GraphBuilder, x: string, w: W, base: string, eps: number, hint: string): string {
  return b.op('LayerNormalization', [x, w(`${base}.weight`), w(`${base}.bias`)], { axis: -1, epsilon: { f: eps } }, hint);
}

function activation(b: GraphBuilder, x: string, act: Activation, hint: string): string {
  switch (act) {
    case 'relu':
      return b.op('Relu', [x], {}, hint);
    case 'gelu': {
      // Exact GELU, 0.5·x·(1 + erf(x/√2)), as torch's default; onnxruntime fuses the pattern into one kernel (with
      // x/√2 as a Div: a Mul by 1/√2 is not matched, and the four unfused passes cost ~20 % of a CPU forward).
      const e = b.op('Erf', [b.op('Div', [x, b.scalar(Math.SQRT2)])]);
      return b.op('Mul', [b.op('Mul', [x, b.op('Add', [e, b.scalar(1)])]), b.scalar(0.5)], {}, hint);
    }
    case 'gelu_new': {
      // tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
      const x3 = b.op('Mul', [b.op('Mul', [x, x]), x]);
      const inner = b.op('Mul', [b.op('Add', [x, b.op('Mul', [x3, b.scalar(0.044715)])]), b.scalar(Math.sqrt(2 / Math.PI))]);
      return b.op('Mul', [b.op('Mul', [x, b.op('Add', [b.op('Tanh', [inner]), b.scalar(1)])]), b.scalar(0.5)], {}, hint);
    }
  }
}

function attention(
  b: GraphBuilder,
  cfg: EncoderConfig,
  w: W,
  x: string,
  base: string,
  lp: (h: string) => string,
  taps: TapValues,
  l: number,
): string {
  const H = cfg.heads;
  const dh = cfg.headDim;
  taps.set(tapName.attnIn(l), x);
  const split = b.int64s([0, 0, H, dh]); // 0 keeps batch and frames from the input
  const heads = (v: string, perm: number[], hint: string) => b.op('Transpose', [b.op('Reshape', [v, split])], { perm }, hint);
  const q = heads(linear(b, x, w, `${base}.attention.q_proj`, lp('q')), [0, 2, 1, 3], lp('q_heads')); // [B, H, T, dh]
  const k = heads(linear(b, x, w, `${base}.attention.k_proj`, lp('k')), [0, 2, 3, 1], lp('k_heads')); // [B, H, dh, T]
  const v = heads(linear(b, x, w, `${base}.attention.v_proj`, lp('v')), [0, 2, 1, 3], lp('v_heads')); // [B, H, T, dh]
  const scores = b.op('Mul', [b.op('MatMul', [q, k]), b.scalar(dh ** -0.5)], {}, lp('scores'));
  const probs = b.op('Softmax', [scores], { axis: -1 }, lp('probs'));
  const ctx = b.op('Transpose', [b.op('MatMul', [probs, v])], { perm: [0, 2, 1, 3] });
  const context = b.op('Reshape', [ctx, b.int64s([0, 0, cfg.hidden])], {}, lp('context')); // [B, T, H·dh]
  taps.set(tapName.attn(l), context);
  const out = linear(b, context, w, `${base}.attention.out_proj`, lp('attn_out'));
  taps.set(tapName.attnOut(l), out);
  return out;
}

function feedForward(
  b: GraphBuilder,
  cfg: EncoderConfig,
  w: W,
  x: string,
  base: string,
  lp: (h: string) => string,
  taps: TapValues,
  l: number,
): string {
  taps.set(tapName.ffnIn(l), x);
  const h = activation(b, linear(b, x, w, `${base}.feed_forward.intermediate_dense`, lp('ffn_in')), cfg.hiddenAct, lp('ffn_act'));
  taps.set(tapName.ffn(l), h);
  return linear(b, h, w, `${base}.feed_forward.output_dense`, lp('ffn_out'));
}
