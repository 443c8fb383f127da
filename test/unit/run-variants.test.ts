/**
 * Variants end to end: a randomly permuted copy of the anchor is recovered by alignment, so every variant's merge
 * must compute what the anchor computes — at width 2 with twice the FFN units (a config.json that still loads), and
 * after statistics repair (the targets are the anchor's own statistics).
 */
import { promises as fs, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyPermutations, randomPermutations } from '../../server/src/engine/align/permute';
import { buildPermutationSpec } from '../../server/src/engine/align/spec';
import { writeSafetensors } from '../../server/src/engine/io/safetensors';
import { forward, loadEncoderModel } from '../../server/src/engine/model/encoder';
import { toStoredTensors } from '../../server/src/engine/model/weights';
import { runRecipe } from '../../server/src/engine/pipeline/run';
import { relativeMaxError } from '../../server/src/engine/pipeline/self-check';
import { mulberry32 } from '../../server/src/engine/random';
import { FIXTURES, HF_REFERENCE } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();
const ANCHOR = path.join(HF_REFERENCE, 'hubert-postln-a');

describe('variants in one run', () => {
  it('builds, reports and writes every variant; each computes the anchor function', async () => {
    const dir = tempDir();
    const other = path.join(dir, 'other');
    const anchor = await loadEncoderModel(ANCHOR);
    const spec = buildPermutationSpec(anchor.config);
    const perms = randomPermutations(spec, mulberry32(4), { include: (g) => g.kind !== 'residual', qkInHead: false });
    await fs.mkdir(other, { recursive: true });
    await fs.copyFile(path.join(ANCHOR, 'config.json'), path.join(other, 'config.json'));
    await writeSafetensors(
      path.join(other, 'model.safetensors'),
      toStoredTensors(applyPermutations(anchor.weights, spec, perms), anchor.layout),
    );
    const recipe = path.join(dir, 'variants.merge.yaml');
    await fs.writeFile(
      recipe,
      [
        'version: 1',
        `models: { anchor: ${ANCHOR}, other: ${other} }`,
        'probe:',
        `  audio: [${path.join(FIXTURES, 'audio', 'tone-16k.wav')}, ${path.join(FIXTURES, 'audio', 'sine440-16k-i16.wav')}]`,
        '  segment_seconds: 0.5',
        'merge: { lambda: 0.3 }',
        'variants:',
        '  - { name: zip2, merge: { width: 2 } }',
        '  - { name: repair, merge: { repair: true } }',
        '  - { name: plain, align: { method: none } }',
        'output_variants: true',
        'output: ./out',
        'runtime: { device: cpu }',
        '',
      ].join('\n'),
    );
    const result = await runRecipe(recipe);
    expect(readdirSync(result.outputDir).sort()).toEqual([
      'config.json',
      'model.safetensors',
      'permutations.json',
      'plain',
      'repair',
      'report.json',
      'zip2',
    ]);
    const systems = result.report.systems!;
    expect(systems.map((s) => s.name)).toEqual(['unaligned', 'permuted', 'zip2', 'repair', 'plain']);
    const base = result.report.models.anchor.parameters;
    const cfg = anchor.config;
    expect(systems.find((s) => s.name === 'zip2')!.parameters).toBe(base + cfg.layers * cfg.intermediate * (2 * cfg.hidden + 1));
    expect(systems.find((s) => s.name === 'plain')!.align.method).toBe('none');

    const audio = Float32Array.from({ length: 8000 }, (_, i) => 0.4 * Math.sin(i / 13) + 0.2 * Math.sin(i / 3.1));
    const want = (await forward(anchor, audio)).lastHiddenState;
    const zip2 = await loadEncoderModel(path.join(result.outputDir, 'zip2'));
    expect(zip2.config.intermediate).toBe(2 * cfg.intermediate);
    expect(relativeMaxError((await forward(zip2, audio)).lastHiddenState, want)).toBeLessThan(1e-5);
    const repaired = await loadEncoderModel(path.join(result.outputDir, 'repair'));
    expect(relativeMaxError((await forward(repaired, audio)).lastHiddenState, want)).toBeLessThan(1e-4);
    // Without alignment the interpolation of two differently ordered copies is a different function.
    const plain = await loadEncoderModel(path.join(result.outputDir, 'plain'));
    expect(relativeMaxError((await forward(plain, audio)).lastHiddenState, want)).toBeGreaterThan(1e-2);
  });
});
