/**
 * Hugging Face `config.json` for the encoder families the engine runs: wav2vec2, HuBERT and MERT (whose checkpoints
 * follow the HuBERT layout). Options the engine does not implement are refused by name, never silently ignored.
 */
import * as path from 'node:path';
import { EngineError } from '../errors';
import { readTextFile } from './regular-file';

export type EncoderFamily = 'wav2vec2' | 'hubert' | 'mert';
export type Activation = 'gelu' | 'gelu_new' | 'relu';

export interface EncoderConfig {
  family: EncoderFamily;
  /** `model_type` as written in config.json. */
  modelType: string;
  hidden: number;
  layers: number;
  heads: number;
  headDim: number;
  intermediate: number;
  convDims: number[];
  convKernels: number[];
  convStrides: number[];
  convBias: boolean;
  /** `group`: GroupNorm(C, C) after conv block 0 only; `layer`: LayerNorm over channels after every block. */
  featExtractNorm: 'group' | 'layer';
  featExtractActivation: Activation;
  /** Whether the feature projection starts with a LayerNorm (always for wav2vec2; `feat_proj_layer_norm` for HuBERT). */
  featProjLayerNorm: boolean;
  posConvKernel: number;
  posConvGroups: number;
  /** Pre-LN transformer (`do_stable_layer_norm`), as in HuBERT-large; post-LN otherwise (HuBERT-base, MERT). */
  preLayerNorm: boolean;
  layerNormEps: number;
  hiddenAct: Activation;
  sampleRate: number;
  /** Frames per second of the encoder output: sampleRate / product of conv strides. */
  frameRate: number;
  /**
   * Zero-mean, unit-variance normalisation of each waveform before the model (`do_normalize` of the checkpoint's
   * preprocessor_config.json, what its feature extractor does in transformers). Absent: false.
   */
  normalizeInput?: boolean;
}

const ACTIVATIONS: readonly Activation[] = ['gelu', 'gelu_new', 'relu'];

/** Reads `<dir>/config.json` (and `preprocessor_config.json` for the sample rate, when present). */
export async function loadEncoderConfig(dir: string): Promise<EncoderConfig> {
  const file = path.join(dir, 'config.json');
  const raw = await readJson(file, true);
  const pre = await readJson(path.join(dir, 'preprocessor_config.json'), false);
  return parseEncoderConfig(raw as Record<string, unknown>, file, pre as Record<string, unknown> | undefined);
}

/** A model's configs are a few kB; this bounds what a hostile or mistaken file (a device, a huge JSON) makes us read. */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

async function readJson(file: string, required: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await readTextFile(file, MAX_CONFIG_BYTES, 'a JSON config file', 'bad-config');
  } catch (e) {
    if (!required && e instanceof EngineError && e.code === 'file-not-found') return undefined;
    throw e;
  }
  try {
    const json: unknown = JSON.parse(text);
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('expected a JSON object');
    return json;
  } catch (e) {
    throw new EngineError('bad-json', `${file} is not valid JSON: ${(e as Error).message}`, file, { cause: e });
  }
}

export function parseEncoderConfig(c: Record<string, unknown>, file: string, preprocessor?: Record<string, unknown>): EncoderConfig {
  const bad = (msg: string) => new EngineError('bad-config', `${file}: ${msg}`, file);
  const unsupported = (msg: string) => new EngineError('unsupported-model', `${file}: ${msg}`, file);
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (!Number.isInteger(v) || (v as number) <= 0) throw bad(`"${key}" must be a positive integer, got ${JSON.stringify(c[key])}`);
    return v as number;
  };
  const ints = (key: string): number[] => {
    const v = c[key];
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => Number.isInteger(x) && x > 0))
      throw bad(`"${key}" must be a non-empty list of positive integers`);
    return v as number[];
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const v = c[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw bad(`"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const activation = (key: string): Activation => {
    const v = c[key] ?? 'gelu';
    if (!ACTIVATIONS.includes(v as Activation))
      throw unsupported(`${key} "${String(v)}" is not supported (supported: ${ACTIVATIONS.join(', ')})`);
    return v as Activation;
  };

  const modelType = c.model_type;
  if (typeof modelType !== 'string') throw bad('missing "model_type"');
  const family = familyOf(modelType);
  if (!family) {
    throw unsupported(`model_type "${modelType}" is not supported (supported: wav2vec2, hubert, MERT (mert_model))`);
  }

  // Options that change the computation and that this engine does not implement.
  if (family === 'mert') {
    if (c.feature_extractor_cqt === true)
      throw unsupported('MERT with the CQT feature branch (feature_extractor_cqt: true) is not supported');
    if (c.deepnorm === true) throw unsupported('MERT with DeepNorm (deepnorm: true) is not supported');
    if (typeof c.attention_relax === 'number' && c.attention_relax > 0)
      throw unsupported(`MERT attention_relax ${c.attention_relax} is not supported (only the default, no relaxation)`);
  }
  if (c.conv_pos_batch_norm === true) throw unsupported('a batch-normed positional conv (conv_pos_batch_norm: true) is not supported');
  if (c.add_adapter === true) throw unsupported('an output adapter (add_adapter: true) is not supported');
  if (c.position_embeddings_type !== undefined && c.position_embeddings_type !== null)
    throw unsupported(`position_embeddings_type "${String(c.position_embeddings_type)}" is not supported (conformer models)`);

  const hidden = int('hidden_size');
  const heads = int('num_attention_heads');
  if (hidden % heads !== 0) throw bad(`hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`);
  const convDims = ints('conv_dim');
  const convKernels = ints('conv_kernel');
  const convStrides = ints('conv_stride');
  if (convKernels.length !== convDims.length || convStrides.length !== convDims.length) {
    throw bad(
      `conv_dim, conv_kernel and conv_stride must have the same length (${convDims.length}, ${convKernels.length}, ${convStrides.length})`,
    );
  }
  const nFeat = c.num_feat_extract_layers;
  if (nFeat !== undefined && nFeat !== convDims.length)
    throw bad(`num_feat_extract_layers is ${String(nFeat)} but conv_dim has ${convDims.length} entries`);
  const norm = c.feat_extract_norm ?? 'group';
  if (norm !== 'group' && norm !== 'layer') throw unsupported(`feat_extract_norm "${String(norm)}" is not supported (group, layer)`);
  const posConvKernel = int('num_conv_pos_embeddings', 128);
  const posConvGroups = int('num_conv_pos_embedding_groups', 16);
  if (hidden % posConvGroups !== 0) throw bad(`hidden_size ${hidden} is not divisible by num_conv_pos_embedding_groups ${posConvGroups}`);
  const eps = c.layer_norm_eps ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) throw bad('"layer_norm_eps" must be a positive number');

  const sampleRate = sampleRateOf(c, preprocessor, family, bad);
  const hop = convStrides.reduce((a, b) => a * b, 1);
  return {
    family,
    modelType,
    hidden,
    layers: int('num_hidden_layers'),
    heads,
    headDim: hidden / heads,
    intermediate: int('intermediate_size'),
    convDims,
    convKernels,
    convStrides,
    convBias: bool('conv_bias', false),
    featExtractNorm: norm,
    featExtractActivation: activation('feat_extract_activation'),
    featProjLayerNorm: family === 'wav2vec2' ? true : bool('feat_proj_layer_norm', true),
    posConvKernel,
    posConvGroups,
    preLayerNorm: bool('do_stable_layer_norm', false),
    layerNormEps: eps,
    hiddenAct: activation('hidden_act'),
    sampleRate,
    frameRate: sampleRate / hop,
    normalizeInput: preprocessor?.do_normalize === true,
  };
}

function familyOf(modelType: string): EncoderFamily | undefined {
  if (modelType === 'wav2vec2') return 'wav2vec2';
  if (modelType === 'hubert') return 'hubert';
  if (modelType === 'mert_model' || modelType === 'mert') return 'mert';
  return undefined;
}

function sampleRateOf(
  c: Record<string, unknown>,
  pre: Record<string, unknown> | undefined,
  family: EncoderFamily,
  bad: (m: string) => EngineError,
): number {
  // MERT writes `sample_rate` into config.json; the others keep it in preprocessor_config.json (default 16 kHz).
  const v = c.sample_rate ?? c.sampling_rate ?? pre?.sampling_rate ?? (family === 'mert' ? undefined : 16000);
  if (v === undefined) throw bad('MERT config has no "sample_rate" (MERT-v0 runs at 16000, MERT-v1 at 24000); add it to config.json');
  if (!Number.isInteger(v) || (v as number) <= 0) throw bad(`sample rate must be a positive integer, got ${JSON.stringify(v)}`);
  return v as number;
}

/** A one-line human description, for hover, doctor and logs. */
export function describeConfig(cfg: EncoderConfig): string {
  const ln = cfg.preLayerNorm ? 'pre-LN' : 'post-LN';
  return `${cfg.family} (${cfg.modelType}), ${cfg.layers} layers × ${cfg.hidden} hidden, ${cfg.heads} heads, FFN ${cfg.intermediate}, ${ln}, ${cfg.featExtractNorm}-norm conv ×${cfg.convDims.length}, ${cfg.sampleRate} Hz → ${cfg.frameRate} frames/s`;
}
