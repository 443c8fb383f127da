/**
 * From a checkpoint's tensor names to the engine's canonical WeightMap (see model/tensor.ts), and back.
 * Handles the model prefix (`hubert.`, `wav2vec2.`, …), the two stored forms of the positional conv's weight norm
 * (`weight_g`/`weight_v` in Hub checkpoints, `parametrizations.weight.original0/1` in newer transformers) and
 * ignores heads that are not part of the encoder (quantizer, CTC/classifier heads, masked_spec_embed …).
 */
import { EngineError } from '../errors';
import type { Checkpoint } from '../io/checkpoint';
import type { EncoderConfig } from '../io/hfconfig';
import { numel, type Tensor, type WeightMap } from './tensor';

export const POS_CONV = 'encoder.pos_conv_embed.conv';

/** Every tensor the encoder needs, with its shape, in canonical names. */
export function expectedShapes(cfg: EncoderConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const D = cfg.hidden;
  const F = cfg.intermediate;
  let cin = 1;
  cfg.convDims.forEach((cout, i) => {
    const p = `feature_extractor.conv_layers.${i}`;
    m.set(`${p}.conv.weight`, [cout, cin, cfg.convKernels[i]!]);
    if (cfg.convBias) m.set(`${p}.conv.bias`, [cout]);
    if (cfg.featExtractNorm === 'layer' || i === 0) {
      m.set(`${p}.layer_norm.weight`, [cout]);
      m.set(`${p}.layer_norm.bias`, [cout]);
    }
    cin = cout;
  });
  if (cfg.featProjLayerNorm) {
    m.set('feature_projection.layer_norm.weight', [cin]);
    m.set('feature_projection.layer_norm.bias', [cin]);
  }
  m.set('feature_projection.projection.weight', [D, cin]);
  m.set('feature_projection.projection.bias', [D]);
  m.set(`${POS_CONV}.weight`, [D, D / cfg.posConvGroups, cfg.posConvKernel]);
  m.set(`${POS_CONV}.bias`, [D]);
  m.set('encoder.layer_norm.weight', [D]);
  m.set('encoder.layer_norm.bias', [D]);
  for (let l = 0; l < cfg.layers; l++) {
    const p = `encoder.layers.${l}`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      m.set(`${p}.attention.${proj}.weight`, [D, D]);
      m.set(`${p}.attention.${proj}.bias`, [D]);
    }
    m.set(`${p}.layer_norm.weight`, [D]);
    m.set(`${p}.layer_norm.bias`, [D]);
    m.set(`${p}.feed_forward.intermediate_dense.weight`, [F, D]);
    m.set(`${p}.feed_forward.intermediate_dense.bias`, [F]);
    m.set(`${p}.feed_forward.output_dense.weight`, [D, F]);
    m.set(`${p}.feed_forward.output_dense.bias`, [D]);
    m.set(`${p}.final_layer_norm.weight`, [D]);
    m.set(`${p}.final_layer_norm.bias`, [D]);
  }
  return m;
}

/** How the positional conv's weight norm is stored in a checkpoint. */
export type PosConvStorage = 'weight_g/weight_v' | 'parametrizations' | 'plain';

export interface CheckpointLayout {
  /** Prefix in front of the canonical names, e.g. `hubert.` or ''. */
  prefix: string;
  posConv: PosConvStorage;
}

const POS_CONV_NAMES: Record<PosConvStorage, string[]> = {
  'weight_g/weight_v': ['weight_g', 'weight_v'],
  parametrizations: ['parametrizations.weight.original0', 'parametrizations.weight.original1'],
  plain: ['weight'],
};

/** Finds the prefix and pos-conv storage by looking at names only (header-level, no weights read). */
export function detectLayout(names: readonly string[], file: string): CheckpointLayout {
  const anchor = 'feature_extractor.conv_layers.0.conv.weight';
  const hit = names.find((n) => n.endsWith(anchor));
  if (hit === undefined) {
    throw new EngineError('missing-tensor', `${file} has no ${anchor}: not a wav2vec2/HuBERT/MERT encoder checkpoint`, file);
  }
  const prefix = hit.slice(0, hit.length - anchor.length);
  const set = new Set(names);
  for (const storage of ['parametrizations', 'weight_g/weight_v', 'plain'] as PosConvStorage[]) {
    if (POS_CONV_NAMES[storage].every((s) => set.has(`${prefix}${POS_CONV}.${s}`))) return { prefix, posConv: storage };
  }
  throw new EngineError(
    'missing-tensor',
    `${file} has no positional conv weight (${prefix}${POS_CONV}.weight_g/weight_v or .parametrizations.weight.original0/1)`,
    file,
  );
}

/** Checkpoint tensor name(s) for a canonical name under a layout. */
export function storedNames(canonical: string, layout: CheckpointLayout): string[] {
  if (canonical === `${POS_CONV}.weight`) return POS_CONV_NAMES[layout.posConv].map((s) => `${layout.prefix}${POS_CONV}.${s}`);
  return [layout.prefix + canonical];
}

/**
 * Checks names and shapes against the config using the header only; returns the layout. Reports the first
 * problems precisely (tensor, expected and found shape).
 */
export function checkCheckpoint(ckpt: Checkpoint, cfg: EncoderConfig): CheckpointLayout {
  const layout = detectLayout(
    ckpt.tensors().map((t) => t.name),
    ckpt.file,
  );
  const problems: string[] = [];
  for (const [name, shape] of expectedShapes(cfg)) {
    const stored = storedNames(name, layout);
    if (name === `${POS_CONV}.weight` && layout.posConv !== 'plain') {
      const v = ckpt.info(stored[1]!);
      if (!v || !sameShape(v.shape, shape))
        problems.push(`${stored[1]} should be [${shape.join(', ')}], is ${v ? `[${v.shape.join(', ')}]` : 'missing'}`);
      continue;
    }
    const info = ckpt.info(stored[0]!);
    if (!info) problems.push(`${stored[0]} is missing`);
    else if (!sameShape(info.shape, shape))
      problems.push(`${stored[0]} should be [${shape.join(', ')}] for this config, is [${info.shape.join(', ')}]`);
  }
  if (problems.length) {
    const code = problems[0]!.endsWith('missing') ? 'missing-tensor' : 'shape-mismatch';
    const more = problems.length > 3 ? ` (and ${problems.length - 3} more)` : '';
    throw new EngineError(code, `${ckpt.file} does not match its config: ${problems.slice(0, 3).join('; ')}${more}`, ckpt.file);
  }
  return layout;
}

/** Reads every encoder tensor into canonical form. */
export async function loadWeights(ckpt: Checkpoint, cfg: EncoderConfig): Promise<{ weights: WeightMap; layout: CheckpointLayout }> {
  const layout = checkCheckpoint(ckpt, cfg);
  const weights: WeightMap = new Map();
  for (const [name, shape] of expectedShapes(cfg)) {
    const stored = storedNames(name, layout);
    let t: Tensor;
    if (name === `${POS_CONV}.weight` && layout.posConv !== 'plain') {
      const [g, v] = await Promise.all(stored.map((s) => ckpt.read(s)));
      t = composeWeightNorm(g!, v!, shape);
    } else {
      const read = await ckpt.read(stored[0]!);
      t = { shape, data: read.data };
    }
    assertFinite(t, name, ckpt.file);
    weights.set(name, t);
  }
  return { weights, layout };
}

function assertFinite(t: Tensor, name: string, file: string): void {
  for (let i = 0; i < t.data.length; i++) {
    if (!Number.isFinite(t.data[i]!))
      throw new EngineError('non-finite', `${file}: tensor ${name} holds ${t.data[i]} at flat index ${i}`, file);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * torch weight_norm with dim=2 (what wav2vec2/HuBERT use for the positional conv): w = g · v / ‖v‖, where the norm
 * is over all dims except the kernel dim; g is [1, 1, K].
 */
export function composeWeightNorm(g: Tensor, v: Tensor, shape: readonly number[]): Tensor {
  const [O, I, K] = shape as [number, number, number];
  if (numel(g.shape) !== K) throw new RangeError(`weight_g has ${numel(g.shape)} values, expected ${K}`);
  const norms = kernelNorms(v.data, O * I, K);
  const out = new Float32Array(v.data.length);
  for (let j = 0; j < O * I; j++) {
    for (let k = 0; k < K; k++) out[j * K + k] = (g.data[k]! * v.data[j * K + k]!) / norms[k]!;
  }
  return { shape: [...shape], data: out };
}

/** The inverse: g = ‖w‖ per kernel position, v = w (then g · v / ‖v‖ = w exactly). */
export function decomposeWeightNorm(w: Tensor): { g: Tensor; v: Tensor } {
  const [O, I, K] = w.shape as [number, number, number];
  const norms = kernelNorms(w.data, O * I, K);
  return { g: { shape: [1, 1, K], data: Float32Array.from(norms) }, v: { shape: [...w.shape], data: Float32Array.from(w.data) } };
}

function kernelNorms(data: Float32Array, rows: number, K: number): Float64Array {
  const sq = new Float64Array(K);
  for (let j = 0; j < rows; j++) for (let k = 0; k < K; k++) sq[k]! += data[j * K + k]! ** 2;
  for (let k = 0; k < K; k++) sq[k] = Math.sqrt(sq[k]!);
  return sq;
}

/** Canonical weights back to checkpoint names under a layout (for writing a merged model like its anchor). */
export function toStoredTensors(weights: WeightMap, layout: CheckpointLayout): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of weights) {
    if (name === `${POS_CONV}.weight` && layout.posConv !== 'plain') {
      const { g, v } = decomposeWeightNorm(t);
      const [gName, vName] = storedNames(name, layout);
      out.set(gName!, g);
      out.set(vName!, v);
    } else {
      out.set(layout.prefix + name, t);
    }
  }
  return out;
}

export function parameterCount(cfg: EncoderConfig): number {
  let n = 0;
  for (const shape of expectedShapes(cfg).values()) n += numel(shape);
  return n;
}
