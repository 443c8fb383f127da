/**
 * `forward` on long audio in bounded memory. Self-attention costs memory quadratic in the frame count (a 3-layer
 * model took 7 GB at 5 minutes), so audio longer than one window runs as overlapping windows whose centres are
 * stitched:
 *
 * - Windows are FORWARD_WINDOW_SECONDS of frames; each keeps FORWARD_CONTEXT_SECONDS of context on both sides
 *   (at least half the positional conv), and only its centre frames are kept. Windows start on frame boundaries, so
 *   every sample a frame's convolutions read is inside its window.
 * - The two whole-clip normalisations are computed over the whole clip, not per window: the waveform normalisation
 *   (do_normalize) here in float64, and the first conv's GroupNorm statistics (HuBERT/wav2vec2-base) in a first pass
 *   of that conv over the clip in pieces. So the conv features equal the unchunked model's at every frame (up to
 *   float32 rounding of the statistics), and hidden_states[0] wherever the positional conv's reach lies inside the
 *   window — which the context guarantees for every kept frame.
 * - What differs: attention sees only its window (30 s), not the whole clip, so the transformer layers' hidden
 *   states of a clip longer than a window differ from full-context attention. Audio that fits one window runs
 *   exactly as before (the same graph, bit for bit).
 */
import * as ort from 'onnxruntime-node';
import { EngineError } from '../errors';
import type { EncoderConfig } from '../io/hfconfig';
import {
  createWeightFedSession,
  encoderGraphBuilder,
  forward,
  framesFor,
  hiddenStateOutputs,
  receptiveField,
  type EncoderModel,
  type ForwardResult,
} from './encoder';
import { addEncoder } from './encoder-graph';
import { GraphBuilder } from './graph-builder';
import { DataType } from './onnx-proto';
import { createSession, type SessionOptions } from './runtime';
import { tapName } from './taps';

export const FORWARD_WINDOW_SECONDS = 30;
export const FORWARD_CONTEXT_SECONDS = 5;
/** Pieces of the GroupNorm statistics pass: the first conv's output of 10 s is ~60 MB at 512 channels. */
const STATS_PIECE_SECONDS = 10;
const GROUP_NORM_EPS = 1e-5;
const WAVE_NORM_EPS = 1e-7;

export interface WindowOptions {
  windowSeconds?: number;
  contextSeconds?: number;
}

export interface FrameWindow {
  /** Frames the window computes, [start, end). */
  start: number;
  end: number;
  /** Frames kept from it, [keepStart, keepEnd): the windows' kept ranges tile [0, frames). */
  keepStart: number;
  keepEnd: number;
}

/** How `frames` frames are covered by windows; a single window when they fit in one. */
export function planWindows(cfg: EncoderConfig, frames: number, opts: WindowOptions = {}): FrameWindow[] {
  const window = Math.max(1, Math.round((opts.windowSeconds ?? FORWARD_WINDOW_SECONDS) * cfg.frameRate));
  if (frames <= window) return [{ start: 0, end: frames, keepStart: 0, keepEnd: frames }];
  const context = Math.max(Math.ceil(cfg.posConvKernel / 2), Math.round((opts.contextSeconds ?? FORWARD_CONTEXT_SECONDS) * cfg.frameRate));
  const keep = window - 2 * context;
  if (keep < 1) throw new EngineError('runtime-error', `a ${window}-frame window cannot keep ${context} frames of context on each side`);
  const out: FrameWindow[] = [];
  for (let a = 0; a < frames; a += keep) {
    const b = Math.min(frames, a + keep);
    const start = Math.max(0, Math.min(a - context, frames - window));
    out.push({ start, end: Math.min(frames, start + window), keepStart: a, keepEnd: b });
  }
  return out;
}

/** One waveform through the encoder, windowed when it is longer than one window (see the module comment). */
export async function forwardLong(
  model: Pick<EncoderModel, 'config' | 'weights'>,
  samples: Float32Array,
  opts: SessionOptions & WindowOptions = {},
): Promise<ForwardResult & { windows: number }> {
  const cfg = model.config;
  const frames = framesFor(cfg, samples.length);
  const windows = planWindows(cfg, frames, opts);
  if (windows.length === 1) return { ...(await forward(model, samples, opts)), windows: 1 };

  const wave = cfg.normalizeInput ? normaliseWave(samples) : samples;
  const windowCfg: EncoderConfig = { ...cfg, normalizeInput: false };
  const stats = cfg.featExtractNorm === 'group' ? await conv0Statistics(model, wave, opts) : undefined;

  const b = await encoderGraphBuilder(opts);
  const audio = b.input('audio', [1, 'samples']);
  const channels = cfg.convDims[0]!;
  const conv0Stats = stats && { mean: b.input('conv0_mean', [1, channels, 1]), invStd: b.input('conv0_inv_std', [1, channels, 1]) };
  const taps = addEncoder(b, windowCfg, model.weights, audio, '', {}, conv0Stats ? { conv0Stats } : {});
  const outputs = hiddenStateOutputs(cfg);
  for (const name of outputs) b.output(taps.get(name)!, name);
  const session = await createWeightFedSession(b, 'merge_studio_forward_window', opts);

  const hop = cfg.convStrides.reduce((x, y) => x * y, 1);
  const field = receptiveField(cfg);
  const convChannels = cfg.convDims[cfg.convDims.length - 1]!;
  const convFeatures = new Float32Array(frames * convChannels);
  const hiddenStates = Array.from({ length: cfg.layers + 1 }, () => new Float32Array(frames * cfg.hidden));
  const lastHiddenState = new Float32Array(frames * cfg.hidden);
  try {
    for (const w of windows) {
      const n = w.end - w.start;
      const piece = wave.subarray(w.start * hop, (w.end - 1) * hop + field);
      const feeds: Record<string, ort.Tensor> = { audio: new ort.Tensor('float32', piece, [1, piece.length]) };
      if (stats) {
        feeds.conv0_mean = new ort.Tensor('float32', stats.mean, [1, channels, 1]);
        feeds.conv0_inv_std = new ort.Tensor('float32', stats.invStd, [1, channels, 1]);
      }
      const out = await session.run(feeds, outputs);
      const conv = out[outputs[0]!]!;
      if (conv.dims[2] !== n) throw new EngineError('runtime-error', `internal: a ${n}-frame window produced ${conv.dims[2]} frames`);
      const convData = conv.data as Float32Array; // [1, C, n]
      for (let t = w.keepStart; t < w.keepEnd; t++) {
        const local = t - w.start;
        for (let c = 0; c < convChannels; c++) convFeatures[t * convChannels + c] = convData[c * n + local]!;
      }
      const rows = (data: Float32Array, into: Float32Array) =>
        into.set(data.subarray((w.keepStart - w.start) * cfg.hidden, (w.keepEnd - w.start) * cfg.hidden), w.keepStart * cfg.hidden);
      outputs.slice(1, -1).forEach((name, k) => rows(out[name]!.data as Float32Array, hiddenStates[k]!));
      rows(out['last_hidden_state']!.data as Float32Array, lastHiddenState);
    }
  } finally {
    await session.release();
  }
  return {
    frames,
    frameRate: cfg.frameRate,
    convFeatures,
    convChannels,
    hiddenStates,
    lastHiddenState,
    hidden: cfg.hidden,
    backend: session.backend,
    windows: windows.length,
  };
}

/**
 * Every hidden state mean-pooled over the frames of a clip longer than one window (evaluation embeddings): the same
 * windows and whole-clip statistics as forwardLong, each window's graph summing its kept frames (a Slice whose bounds
 * are inputs, then ReduceSum), the sums accumulated here in float64. Returns [layers + 1, hidden], row-major.
 */
export async function pooledLong(
  model: Pick<EncoderModel, 'config' | 'weights'>,
  samples: Float32Array,
  opts: SessionOptions & WindowOptions = {},
): Promise<Float32Array> {
  const cfg = model.config;
  const frames = framesFor(cfg, samples.length);
  const windows = planWindows(cfg, frames, opts);
  const wave = cfg.normalizeInput ? normaliseWave(samples) : samples;
  const stats = cfg.featExtractNorm === 'group' ? await conv0Statistics(model, wave, opts) : undefined;
  const b = await encoderGraphBuilder(opts);
  const audio = b.input('audio', [1, 'samples']);
  const keepStart = b.input('keep_start', [1], DataType.INT64);
  const keepEnd = b.input('keep_end', [1], DataType.INT64);
  const channels = cfg.convDims[0]!;
  const conv0Stats = stats && { mean: b.input('conv0_mean', [1, channels, 1]), invStd: b.input('conv0_inv_std', [1, channels, 1]) };
  const taps = addEncoder(b, { ...cfg, normalizeInput: false }, model.weights, audio, '', {}, conv0Stats ? { conv0Stats } : {});
  const sums = Array.from({ length: cfg.layers + 1 }, (_, k) => {
    const kept = b.op('Slice', [taps.get(tapName.hidden(k))!, keepStart, keepEnd, b.int64s([1])]);
    return b.op('ReduceSum', [kept, b.int64s([1])], { keepdims: 1 });
  });
  b.output(b.op('Concat', sums, { axis: 1 }), 'sums'); // [1, layers + 1, hidden]
  const session = await createWeightFedSession(b, 'merge_studio_pooled_window', opts);
  const hop = cfg.convStrides.reduce((x, y) => x * y, 1);
  const field = receptiveField(cfg);
  const total = new Float64Array((cfg.layers + 1) * cfg.hidden);
  try {
    for (const w of windows) {
      const piece = wave.subarray(w.start * hop, (w.end - 1) * hop + field);
      const feeds: Record<string, ort.Tensor> = {
        audio: new ort.Tensor('float32', piece, [1, piece.length]),
        keep_start: new ort.Tensor('int64', BigInt64Array.of(BigInt(w.keepStart - w.start)), [1]),
        keep_end: new ort.Tensor('int64', BigInt64Array.of(BigInt(w.keepEnd - w.start)), [1]),
      };
      if (stats) {
        feeds.conv0_mean = new ort.Tensor('float32', stats.mean, [1, channels, 1]);
        feeds.conv0_inv_std = new ort.Tensor('float32', stats.invStd, [1, channels, 1]);
      }
      const sum = (await session.run(feeds)).sums!.data as Float32Array;
      for (let i = 0; i < total.length; i++) total[i]! += sum[i]!;
    }
  } finally {
    await session.release();
  }
  return Float32Array.from(total, (v) => v / frames);
}

/** do_normalize over the whole clip: (x − mean) / √(var + 1e-7), statistics in float64. */
function normaliseWave(x: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i]!;
  const mean = sum / x.length;
  let sq = 0;
  for (let i = 0; i < x.length; i++) sq += (x[i]! - mean) ** 2;
  const scale = 1 / Math.sqrt(sq / x.length + WAVE_NORM_EPS);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (x[i]! - mean) * scale;
  return out;
}

/**
 * Per-channel mean and 1/√(var + eps) of the first conv's output over the whole clip, as GroupNorm(C, C) computes
 * them: the conv runs in onnxruntime on pieces whose frames tile the clip, each returning per-channel sums (of x,
 * then of (x − mean)², for a variance without cancellation), accumulated here in float64.
 */
async function conv0Statistics(
  model: Pick<EncoderModel, 'config' | 'weights'>,
  wave: Float32Array,
  opts: SessionOptions,
): Promise<{ mean: Float32Array; invStd: Float32Array }> {
  const cfg = model.config;
  const C = cfg.convDims[0]!;
  const k = cfg.convKernels[0]!;
  const s = cfg.convStrides[0]!;
  const b = new GraphBuilder();
  const audio = b.input('audio', [1, 'samples']);
  const shift = b.input('shift', [1, C, 1]);
  const weight = (name: string) => {
    const t = model.weights.get(name);
    if (!t) throw new EngineError('runtime-error', `internal: weight ${name} missing after validation`);
    return b.weight(name, t);
  };
  const inputs = [b.op('Unsqueeze', [audio, b.int64s([1])]), weight('feature_extractor.conv_layers.0.conv.weight')];
  if (cfg.convBias) inputs.push(weight('feature_extractor.conv_layers.0.conv.bias'));
  const x = b.op('Conv', inputs, { kernel_shape: [k], strides: [s], pads: [0, 0] });
  const d = b.op('Sub', [x, shift]);
  b.output(b.op('ReduceSum', [d, b.int64s([2])], { keepdims: 0 }), 'sum');
  b.output(b.op('ReduceSum', [b.op('Mul', [d, d]), b.int64s([2])], { keepdims: 0 }), 'sum_sq');
  const session = await createSession(b.encode('merge_studio_conv0_stats'), opts);
  const total = Math.floor((wave.length - k) / s) + 1;
  const piece = Math.max(1, Math.round((STATS_PIECE_SECONDS * cfg.sampleRate) / s));
  const pass = async (center: Float32Array): Promise<{ sum: Float64Array; sumSq: Float64Array }> => {
    const sum = new Float64Array(C);
    const sumSq = new Float64Array(C);
    for (let f = 0; f < total; f += piece) {
      const f1 = Math.min(total, f + piece);
      const x = wave.subarray(f * s, (f1 - 1) * s + k);
      const out = await session.run({
        audio: new ort.Tensor('float32', x, [1, x.length]),
        shift: new ort.Tensor('float32', center, [1, C, 1]),
      });
      const a = out.sum!.data as Float32Array;
      const q = out.sum_sq!.data as Float32Array;
      for (let c = 0; c < C; c++) {
        sum[c]! += a[c]!;
        sumSq[c]! += q[c]!;
      }
    }
    return { sum, sumSq };
  };
  try {
    const first = await pass(new Float32Array(C));
    const mean = Float32Array.from(first.sum, (v) => v / total);
    const second = await pass(mean);
    // Σ(x − m')² around the float32 mean m'; the exact mean differs from m' by the residual Σ(x − m')/T.
    const invStd = new Float32Array(C);
    for (let c = 0; c < C; c++) {
      const residual = second.sum[c]! / total;
      const variance = Math.max(0, second.sumSq[c]! / total - residual * residual);
      mean[c] = mean[c]! + residual;
      invStd[c] = 1 / Math.sqrt(variance + GROUP_NORM_EPS);
    }
    return { mean, invStd };
  } finally {
    await session.release();
  }
}
