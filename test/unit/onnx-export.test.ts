/**
 * output_onnx: the merged encoder written as model.onnx computes what the engine's own forward computes on the
 * written checkpoint (every output, a batch of two waveforms, max abs difference ≤ 1e-5), in a plain onnxruntime
 * session loaded from the file, as a deployment would load it; `run --dry-run` says the file will be written; the
 * report lists it, so the next run still recognises the folder as its own. A pre-LN encoder's outputs are wired as transformers' are; a merge too large for
 * one ONNX file is refused with a message.
 */
import { promises as fs, readdirSync } from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { applyPermutations, randomPermutations } from '../../server/src/engine/align/permute';
import { buildPermutationSpec } from '../../server/src/engine/align/spec';
import { inspectOutputFolder } from '../../server/src/engine/io/output-folder';
import { writeSafetensors } from '../../server/src/engine/io/safetensors';
import { forward, loadEncoderModel, type ForwardResult } from '../../server/src/engine/model/encoder';
import { toStoredTensors } from '../../server/src/engine/model/weights';
import {
  ONNX_FILE,
  ONNX_INPUT,
  ONNX_MAX_WEIGHT_BYTES,
  buildDeployableOnnx,
  onnxExportProblem,
  onnxOutputNames,
} from '../../server/src/engine/pipeline/onnx-export';
import { runRecipe } from '../../server/src/engine/pipeline/run';
import { mulberry32 } from '../../server/src/engine/random';
import { runCli } from '../helpers/cli';
import { HF_REFERENCE, loadReference, relativeMaxError } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();
const ANCHOR = path.join(HF_REFERENCE, 'hubert-postln-a');
const SAMPLES = 8000;
/** Two different waveforms of 0.5 s at 16 kHz. */
const WAVES = [
  Float32Array.from({ length: SAMPLES }, (_, i) => 0.4 * Math.sin(i / 13) + 0.2 * Math.sin(i / 3.1)),
  Float32Array.from({ length: SAMPLES }, (_, i) => 0.3 * Math.sin(i / 7.7) * Math.cos(i / 151) + 0.05 * Math.sin(i / 1.9)),
];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** Runs a model file or bytes on a batch of waveforms with default session options (what a deployment does). */
async function runOnnx(
  model: string | Uint8Array,
  waves: Float32Array[],
): Promise<{ session: ort.InferenceSession; out: ort.InferenceSession.ReturnType }> {
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
  const batch = new Float32Array(waves.length * SAMPLES);
  waves.forEach((w, i) => batch.set(w, i * SAMPLES));
  const out = await session.run({ [ONNX_INPUT]: new ort.Tensor('float32', batch, [waves.length, SAMPLES]) });
  return { session, out };
}

/** Row `row` of a [batch, frames, hidden] output. */
function rowOf(t: ort.Tensor, row: number): Float32Array {
  const [, frames, hidden] = t.dims as number[];
  const size = frames! * hidden!;
  return (t.data as Float32Array).subarray(row * size, (row + 1) * size);
}

/** The largest difference between the file's outputs for each row and the engine's forward of that waveform. */
function largestDifference(out: ort.InferenceSession.ReturnType, engine: ForwardResult[], layers: number): number {
  const [last, ...hidden] = onnxOutputNames({ layers });
  let worst = 0;
  engine.forEach((f, row) => {
    worst = Math.max(worst, maxAbsDiff(rowOf(out[last!]!, row), f.lastHiddenState));
    hidden.forEach((name, k) => (worst = Math.max(worst, maxAbsDiff(rowOf(out[name]!, row), f.hiddenStates[k]!))));
  });
  return worst;
}

describe('output_onnx', () => {
  it('writes model.onnx beside the checkpoint, listed in the report; it computes what the engine computes', async () => {
    const dir = tempDir();
    // The other model: the anchor with its units reordered, merged without alignment (a real mix of two weight sets).
    const anchor = await loadEncoderModel(ANCHOR);
    const spec = buildPermutationSpec(anchor.config);
    const other = path.join(dir, 'other');
    await fs.mkdir(other);
    await fs.copyFile(path.join(ANCHOR, 'config.json'), path.join(other, 'config.json'));
    await writeSafetensors(
      path.join(other, 'model.safetensors'),
      toStoredTensors(applyPermutations(anchor.weights, spec, randomPermutations(spec, mulberry32(7))), anchor.layout),
    );
    const recipe = path.join(dir, 'onnx.merge.yaml');
    const write = (onnx: boolean) =>
      fs.writeFile(
        recipe,
        [
          'version: 1',
          `models: { anchor: ${ANCHOR}, other: ${other} }`,
          'align: { method: none }',
          'merge: { lambda: 0.3 }',
          ...(onnx ? ['output_onnx: true'] : []),
          'output: ./out',
          'runtime: { device: cpu }',
          '',
        ].join('\n'),
      );
    await write(true);
    const plan = runCli(['run', recipe, '--dry-run', '--device', 'cpu']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/^output +.*out \(with model\.onnx\)$/m);
    const result = await runRecipe(recipe);
    expect(readdirSync(result.outputDir).sort()).toEqual([
      'config.json',
      'model.onnx',
      'model.safetensors',
      'permutations.json',
      'report.json',
    ]);
    expect(result.report.output.files).toContain(ONNX_FILE);

    const merged = await loadEncoderModel(result.outputDir);
    const { session, out } = await runOnnx(path.join(result.outputDir, ONNX_FILE), WAVES);
    expect(session.inputNames).toEqual([ONNX_INPUT]);
    expect(session.outputNames).toEqual(onnxOutputNames(merged.config));
    const engine = await Promise.all(WAVES.map((w) => forward(merged, w, { device: 'cpu' })));
    expect(out.last_hidden_state!.dims).toEqual([2, engine[0]!.frames, merged.config.hidden]);
    expect(largestDifference(out, engine, merged.config.layers)).toBeLessThanOrEqual(1e-5);
    // The merge is a model of its own: not the anchor.
    const anchorOut = await forward(anchor, WAVES[0]!, { device: 'cpu' });
    expect(maxAbsDiff(rowOf(out.last_hidden_state!, 0), anchorOut.lastHiddenState)).toBeGreaterThan(1e-2);
    await session.release();

    // The folder is still the tool's own: a run without output_onnx replaces it, and the ONNX file goes with it.
    expect(await inspectOutputFolder(result.outputDir)).toEqual({ kind: 'tool-output' });
    await write(false);
    const again = await runRecipe(recipe);
    expect(readdirSync(again.outputDir)).not.toContain(ONNX_FILE);
    expect(again.report.output.files).not.toContain(ONNX_FILE);
  });

  it('a pre-LN encoder: last_hidden_state after the final LayerNorm, hidden_states before it, as transformers', async () => {
    const model = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-preln'));
    const { session, out } = await runOnnx(buildDeployableOnnx(model), WAVES);
    const engine = await Promise.all(WAVES.map((w) => forward(model, w, { device: 'cpu' })));
    expect(largestDifference(out, engine, model.config.layers)).toBeLessThanOrEqual(1e-5);
    const layers = model.config.layers;
    expect(maxAbsDiff(rowOf(out.last_hidden_state!, 0), rowOf(out[`hidden_states.${layers}`]!, 0))).toBeGreaterThan(1e-2);
    await session.release();

    // And on transformers' own reference input, transformers' outputs (the parity tests' tolerance).
    const ref = loadReference('hubert-preln');
    const refSession = await ort.InferenceSession.create(buildDeployableOnnx(model));
    const input = Float32Array.from(ref.input);
    const refOut = await refSession.run({ [ONNX_INPUT]: new ort.Tensor('float32', input, [1, input.length]) });
    expect(relativeMaxError(refOut.last_hidden_state!.data as Float32Array, ref.last_hidden_state)).toBeLessThan(1e-4);
    expect(relativeMaxError(refOut[`hidden_states.${layers}`]!.data as Float32Array, ref.hidden_states[layers]!)).toBeLessThan(1e-4);
    await refSession.release();
  });

  it('refuses a merge too large for one ONNX file, naming the sizes; a base-sized merge fits', async () => {
    const cfg = (await loadEncoderModel(ANCHOR)).config;
    expect(onnxExportProblem(cfg)).toBeUndefined();
    // HuBERT-base (95 M parameters, 0.35 GiB) fits, even at FFN width 2.
    const base = { ...cfg, hidden: 768, layers: 12, heads: 12, headDim: 64, intermediate: 3072, convDims: Array(7).fill(512) };
    expect(onnxExportProblem(base, 2)).toBeUndefined();
    // A 48-layer, 1280-wide encoder (the size of XLS-R 1B) does not.
    const xl = { ...base, hidden: 1280, layers: 48, heads: 16, headDim: 80, intermediate: 5120 };
    expect(onnxExportProblem(xl)).toMatch(
      /^output_onnx: the merged encoder has 3\.\d\d GiB of float32 weights, more than one ONNX file holds \(1\.98 GiB, protobuf's 2 GiB limit\)/,
    );
    // HuBERT-large's size (24 layers, 1024 wide) fits even at FFN width 2 (1.91 GiB). At 40 layers it fits at width 1
    // (1.91 GiB), not once partial zipping widens the FFN (3.16 GiB).
    const large = { ...base, hidden: 1024, heads: 16, headDim: 64, intermediate: 4096, layers: 24 };
    expect(onnxExportProblem(large, 2)).toBeUndefined();
    const deep = { ...large, layers: 40 };
    expect(onnxExportProblem(deep)).toBeUndefined();
    expect(onnxExportProblem(deep, 2)).toMatch(/^output_onnx: the merged encoder has 3\.16 GiB of float32 weights/);
    expect(ONNX_MAX_WEIGHT_BYTES).toBeLessThan(2 ** 31);
  });
});
