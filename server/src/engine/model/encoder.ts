/**
 * Encoders as the rest of the engine sees them: load a Hugging Face folder (config + checkpoint → canonical weights),
 * build its ONNX graph with the taps a caller wants, run it on audio batches.
 */
import { promises as fs } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { EngineError } from '../errors';
import { openCheckpoint } from '../io/checkpoint';
import { loadEncoderConfig, type EncoderConfig } from '../io/hfconfig';
import { parseHubRef, resolveModelRef, type ResolveOptions } from '../io/hub';
import { addEncoder } from './encoder-graph';
import { GraphBuilder } from './graph-builder';
import { createSession, resolveBackend, type Backend, type Session, type SessionOptions } from './runtime';
import { tapName, type TapName } from './taps';
import type { WeightMap } from './tensor';
import { loadWeights, type CheckpointLayout } from './weights';

export interface EncoderModel {
  /** Where it was loaded from (a folder), or a description for models built in memory. */
  readonly source: string;
  readonly config: EncoderConfig;
  readonly weights: WeightMap;
  /** How the checkpoint named its tensors, so that writers can name a derived model the same way. */
  readonly layout: CheckpointLayout;
}

/** `dir`: a Hugging Face folder, or a Hub reference `hf:org/name[@revision]` (downloaded into the HF cache). */
export async function loadEncoderModel(dir: string, hub: Partial<ResolveOptions> = {}): Promise<EncoderModel> {
  if (parseHubRef(dir)) dir = await resolveModelRef(dir, { baseDir: process.cwd(), ...hub });
  const stat = await fs.stat(dir).catch(() => undefined);
  if (!stat) throw new EngineError('file-not-found', `model folder ${dir} does not exist`, dir);
  if (!stat.isDirectory())
    throw new EngineError(
      'not-a-directory',
      `model path ${dir} is not a folder (expected a Hugging Face folder with config.json and model.safetensors)`,
      dir,
    );
  const config = await loadEncoderConfig(dir);
  const ckpt = await openCheckpoint(dir);
  try {
    const { weights, layout } = await loadWeights(ckpt, config);
    return { source: dir, config, weights, layout };
  } finally {
    await ckpt.close();
  }
}

export type EncoderOutput = TapName | 'last_hidden_state';

/** All hidden states (what transformers returns with output_hidden_states) and the feature extractor output. */
export function hiddenStateOutputs(cfg: EncoderConfig): EncoderOutput[] {
  return [
    tapName.conv(cfg.convDims.length - 1),
    ...Array.from({ length: cfg.layers + 1 }, (_, k) => tapName.hidden(k)),
    'last_hidden_state',
  ];
}

/** Builds a standalone ONNX model of one encoder whose graph outputs are the requested taps, named as the taps. */
export function buildEncoderOnnx(
  model: Pick<EncoderModel, 'config' | 'weights'>,
  outputs: readonly EncoderOutput[],
  opts: Pick<SessionOptions, 'precision'> = {},
): Uint8Array {
  const b = new GraphBuilder({ precision: opts.precision });
  addEncoderOutputs(b, model, outputs);
  return b.encode();
}

function addEncoderOutputs(b: GraphBuilder, model: Pick<EncoderModel, 'config' | 'weights'>, outputs: readonly EncoderOutput[]): void {
  const audio = b.input('audio', ['batch', 'samples']);
  const taps = addEncoder(b, model.config, model.weights, audio);
  for (const name of outputs) {
    const value = taps.get(name);
    if (!value) throw new EngineError('runtime-error', `unknown tap ${name} for a ${model.config.layers}-layer encoder`);
    b.output(value, name);
  }
}

/**
 * A builder for a graph that will run in a session of `createWeightFedSession`: on the CPU backend the Linear weights
 * become graph inputs (GraphBuilder feedWeights), so onnxruntime keeps no copy of them beside the model's own
 * arrays (nor the prepacked copies it would make of initializers): `forward` on HuBERT-base peaked at 1.9× torchaudio's
 * memory with them as initializers, 0.9× fed (bench:forward). GPU backends keep them as initializers: fed weights
 * would be uploaded again at every run.
 */
export async function encoderGraphBuilder(opts: SessionOptions = {}): Promise<GraphBuilder> {
  const backend = await resolveBackend(opts.device ?? 'auto');
  return new GraphBuilder({ precision: opts.precision, feedWeights: backend === 'cpu' ? 'linear' : undefined });
}

/** The builder's graph in a session whose runs are fed the weights the graph takes as inputs (encoderGraphBuilder). */
export async function createWeightFedSession(b: GraphBuilder, graphName: string, opts: SessionOptions = {}): Promise<Session> {
  const session = await createSession(b.encode(graphName), opts);
  const weights: Record<string, ort.Tensor> = {};
  for (const [input, t] of b.weightFeeds) weights[input] = new ort.Tensor('float32', t.data, [...t.shape]);
  return { ...session, run: (feeds, outputs) => session.run({ ...weights, ...feeds }, outputs) };
}

/** An encoder compiled into an onnxruntime session. */
export class EncoderSession {
  private constructor(
    readonly config: EncoderConfig,
    readonly outputs: readonly EncoderOutput[],
    private readonly session: Session,
  ) {}

  static async create(
    model: Pick<EncoderModel, 'config' | 'weights'>,
    outputs: readonly EncoderOutput[],
    opts: SessionOptions = {},
  ): Promise<EncoderSession> {
    const b = await encoderGraphBuilder(opts);
    addEncoderOutputs(b, model, outputs);
    return new EncoderSession(model.config, outputs, await createWeightFedSession(b, 'merge_studio', opts));
  }

  get backend(): Backend {
    return this.session.backend;
  }

  /** Runs a batch of equal-length waveforms ([batch × samples], flat) and returns the requested taps. */
  async run(audio: Float32Array, batch: number): Promise<Map<EncoderOutput, ort.Tensor>> {
    if (batch <= 0 || audio.length % batch !== 0)
      throw new RangeError(`audio of ${audio.length} samples cannot be split into ${batch} equal rows`);
    const samples = audio.length / batch;
    const minSamples = receptiveField(this.config);
    if (samples < minSamples) {
      throw new EngineError(
        'bad-audio',
        `audio of ${samples} samples is shorter than the encoder's ${minSamples}-sample receptive field (${((minSamples / this.config.sampleRate) * 1000).toFixed(1)} ms)`,
      );
    }
    const out = await this.session.run({ audio: new ort.Tensor('float32', audio, [batch, samples]) }, this.outputs);
    return new Map(this.outputs.map((name) => [name, out[name]!]));
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** The fewest samples that yield one output frame. */
export function receptiveField(cfg: EncoderConfig): number {
  let field = 1;
  for (let i = cfg.convKernels.length - 1; i >= 0; i--) field = (field - 1) * cfg.convStrides[i]! + cfg.convKernels[i]!;
  return field;
}

/** Output frames for an input length: floor((n - k)/s) + 1 through the conv stack. */
export function framesFor(cfg: EncoderConfig, samples: number): number {
  let n = samples;
  for (let i = 0; i < cfg.convKernels.length; i++) n = Math.floor((n - cfg.convKernels[i]!) / cfg.convStrides[i]!) + 1;
  return Math.max(0, n);
}

export interface ForwardResult {
  frames: number;
  frameRate: number;
  /** Feature extractor output, [frames][channels] flattened row-major. */
  convFeatures: Float32Array;
  convChannels: number;
  /** transformers' hidden_states: layers + 1 entries, each [frames][hidden] flattened. */
  hiddenStates: Float32Array[];
  /** [frames][hidden]: the last hidden state, after the final LayerNorm for pre-LN models. */
  lastHiddenState: Float32Array;
  hidden: number;
  backend: Backend;
}

/** One waveform through the encoder, returning every hidden state (the `forward` command and parity tests). */
export async function forward(
  model: Pick<EncoderModel, 'config' | 'weights'>,
  samples: Float32Array,
  opts: SessionOptions = {},
): Promise<ForwardResult> {
  const cfg = model.config;
  const outputs = hiddenStateOutputs(cfg);
  const session = await EncoderSession.create(model, outputs, opts);
  try {
    const out = await session.run(samples, 1);
    const conv = out.get(outputs[0]!)!;
    const [, channels, frames] = conv.dims as number[];
    return {
      frames: frames!,
      frameRate: cfg.frameRate,
      convFeatures: transpose2d(conv.data as Float32Array, channels!, frames!),
      convChannels: channels!,
      hiddenStates: outputs.slice(1, -1).map((name) => out.get(name)!.data as Float32Array),
      lastHiddenState: out.get('last_hidden_state')!.data as Float32Array,
      hidden: cfg.hidden,
      backend: session.backend,
    };
  } finally {
    await session.release();
  }
}

function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}
