/**
 * `output_onnx: true`: the merged encoder as a standalone ONNX model, `model.onnx` in the output folder, for
 * deployment with any onnxruntime. It is the graph the engine itself runs (model/encoder-graph.ts), with a
 * deployment interface:
 *
 *   input   input_values         float32 [batch, samples]: mono waveforms of equal length at the model's sample rate
 *                                (the checkpoint's `do_normalize` is applied inside the graph, as its feature extractor
 *                                would; no attention mask)
 *   outputs last_hidden_state    float32 [batch, frames, hidden] (after the final LayerNorm for pre-LN models)
 *           hidden_states.{k}    float32 [batch, frames, hidden], k = 0..layers: transformers' hidden_states[k]
 *
 * The hidden states are values the graph computes anyway; onnxruntime returns only the outputs a caller asks for.
 * Weights are stored inside the file, as float32, and a protobuf message is limited to
 * 2 GiB: HuBERT-large's size fits even at FFN width 2; a merge that would not (XLS-R 1B's size) is refused before any
 * compute (onnxExportProblem, from the config).
 */
import { promises as fs } from 'node:fs';
import { EngineError } from '../errors';
import type { EncoderConfig } from '../io/hfconfig';
import type { EncoderModel } from '../model/encoder';
import { addEncoder } from '../model/encoder-graph';
import { unmergedUnits } from '../merge/zip';
import { GraphBuilder } from '../model/graph-builder';
import { DataType } from '../model/onnx-proto';
import { tapName } from '../model/taps';
import { parameterCount } from '../model/weights';
import { formatBytes } from './plan';

export const ONNX_FILE = 'model.onnx';
export const ONNX_INPUT = 'input_values';

/** Protobuf's 2 GiB message limit, less room for the graph itself (nodes and constants: well under a MiB). */
export const ONNX_MAX_WEIGHT_BYTES = 2 ** 31 - 16 * 1024 * 1024;

/** The model's outputs, in the order the file declares them. */
export function onnxOutputNames(cfg: Pick<EncoderConfig, 'layers'>): string[] {
  return ['last_hidden_state', ...Array.from({ length: cfg.layers + 1 }, (_, k) => `hidden_states.${k}`)];
}

/** Why a merged model of this configuration and FFN width cannot be exported, or undefined when it can. */
export function onnxExportProblem(cfg: EncoderConfig, width = 1): string | undefined {
  // merge.width keeps unmerged FFN units beside the merged ones: intermediate_size grows by their number.
  const intermediate = cfg.intermediate + unmergedUnits(cfg.intermediate, width);
  const bytes = parameterCount({ ...cfg, intermediate }) * 4;
  if (bytes <= ONNX_MAX_WEIGHT_BYTES) return undefined;
  return `output_onnx: the merged encoder has ${formatBytes(bytes)} of float32 weights, more than one ONNX file holds (${formatBytes(ONNX_MAX_WEIGHT_BYTES)}, protobuf's 2 GiB limit); remove output_onnx and export model.safetensors with your own tooling`;
}

/** The merged encoder as ONNX bytes: `input_values` in, `last_hidden_state` and every hidden state out. */
export function buildDeployableOnnx(model: Pick<EncoderModel, 'config' | 'weights'>): Uint8Array {
  let bytes = 0;
  for (const t of model.weights.values()) bytes += t.data.byteLength;
  if (bytes > ONNX_MAX_WEIGHT_BYTES) {
    const problem = onnxExportProblem(model.config) ?? `output_onnx: ${formatBytes(bytes)} of weights do not fit one ONNX file`;
    throw new EngineError('bad-recipe', problem);
  }
  const b = new GraphBuilder();
  const taps = addEncoder(b, model.config, model.weights, b.input(ONNX_INPUT, ['batch', 'samples']));
  const [last, ...hidden] = onnxOutputNames(model.config);
  const dims = ['batch', 'frames', model.config.hidden];
  b.output(taps.get('last_hidden_state')!, last, DataType.FLOAT, dims);
  hidden.forEach((name, k) => b.output(taps.get(tapName.hidden(k))!, name, DataType.FLOAT, dims));
  return b.encode('merge_studio_encoder');
}

/** Writes model.onnx (see the module comment for its interface). */
export async function writeDeployableOnnx(model: Pick<EncoderModel, 'config' | 'weights'>, file: string): Promise<void> {
  await fs.writeFile(file, buildDeployableOnnx(model));
}
