import { existsSync, promises as fs, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyPermutations, randomPermutations } from '../../server/src/engine/align/permute';
import { buildPermutationSpec } from '../../server/src/engine/align/spec';
import { writeSafetensors } from '../../server/src/engine/io/safetensors';
import { loadEncoderModel } from '../../server/src/engine/model/encoder';
import { mulberry32 } from '../../server/src/engine/random';
import { toStoredTensors } from '../../server/src/engine/model/weights';
import { runRecipe } from '../../server/src/engine/pipeline/run';
import type { JobEvent } from '../../server/src/engine/progress';
import { FIXTURES, HF_REFERENCE } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();
const ANCHOR = path.join(HF_REFERENCE, 'hubert-postln-a');

/** A copy of the anchor whose units are randomly permuted: same function, different neuron order. */
async function permutedCopy(dir: string, seed: number, include: (kind: string) => boolean) {
  const anchor = await loadEncoderModel(ANCHOR);
  const spec = buildPermutationSpec(anchor.config);
  // In-head Q/K permutations are left out: the recipe's alignment re-orders q/k with their heads only.
  const perms = randomPermutations(spec, mulberry32(seed), { include: (g) => include(g.kind), qkInHead: false });
  const weights = applyPermutations(anchor.weights, spec, perms);
  await fs.mkdir(dir, { recursive: true });
  await fs.copyFile(path.join(ANCHOR, 'config.json'), path.join(dir, 'config.json'));
  await writeSafetensors(path.join(dir, 'model.safetensors'), toStoredTensors(weights, anchor.layout));
  return { anchor, perms };
}

async function writeRecipe(
  dir: string,
  other: string,
  extra: { method?: string; permute?: string; lambda?: string } = {},
): Promise<string> {
  const file = path.join(dir, 'test.merge.yaml');
  await fs.writeFile(
    file,
    [
      'version: 1',
      'models:',
      `  anchor: ${ANCHOR}`,
      `  other: ${other}`,
      'probe:',
      `  audio: [${path.join(FIXTURES, 'audio', 'tone-16k.wav')}, ${path.join(FIXTURES, 'audio', 'sine440-16k-i16.wav')}]`,
      '  segment_seconds: 0.5',
      'align:',
      `  method: ${extra.method ?? 'correlation'}`,
      `  permute: ${extra.permute ?? '[cnn, attention, ffn]'}`,
      'merge:',
      '  method: linear',
      `  lambda: ${extra.lambda ?? '0.5'}`,
      'output: ./out',
      'runtime:',
      '  device: cpu',
      '',
    ].join('\n'),
  );
  return file;
}

/** Every tensor of the model in `dir` equals `expected` within 1e-5. */
async function expectSameWeights(dir: string, expected: Map<string, { data: Float32Array }>): Promise<void> {
  const merged = await loadEncoderModel(dir);
  for (const [name, t] of expected) {
    const m = merged.weights.get(name)!;
    let err = 0;
    for (let i = 0; i < t.data.length; i++) err = Math.max(err, Math.abs(m.data[i]! - t.data[i]!));
    expect(err, name).toBeLessThan(1e-5);
  }
}

describe('run a recipe end to end', () => {
  it('recovers a randomly permuted copy exactly, so the merge gives back the anchor', async () => {
    const dir = tempDir();
    const other = path.join(dir, 'other');
    const { anchor, perms } = await permutedCopy(other, 21, (k) => k !== 'residual');
    const events: JobEvent[] = [];
    const result = await runRecipe(await writeRecipe(dir, other), { onEvent: (e) => events.push(e) });

    expect(readdirSync(result.outputDir).sort()).toEqual(['config.json', 'model.safetensors', 'permutations.json', 'report.json']);
    await expectSameWeights(result.outputDir, anchor.weights);
    // The solved permutation undoes the random one (groups that were permuted).
    const solved = JSON.parse(await fs.readFile(path.join(result.outputDir, 'permutations.json'), 'utf8')) as {
      groups: Record<string, number[]>;
    };
    expect(Object.keys(solved.groups).length).toBeGreaterThan(0);
    for (const t of result.report.align.taps) expect(t.meanCorrelationAfter, t.tap).toBeGreaterThan(0.999);
    expect(result.report.align.selfCheck?.passed).toBe(true);
    expect(perms.size).toBeGreaterThan(0);
    const stages = events.filter((e) => e.type === 'stage').map((e) => (e as { stage: string }).stage);
    expect(stages).toEqual(['load', 'probe', 'statistics', 'assign', 'permute', 'self-check', 'merge', 'write']);
    expect(events.at(-1)?.type).toBe('result');
  });

  it('recovers the residual stream too (grouped positional conv), with every other group', async () => {
    const dir = tempDir();
    const other = path.join(dir, 'other');
    const { anchor } = await permutedCopy(other, 26, () => true);
    const result = await runRecipe(await writeRecipe(dir, other, { permute: '[cnn, attention, ffn, residual]' }));
    await expectSameWeights(result.outputDir, anchor.weights);
    expect(result.report.align.taps.find((t) => t.group === 'residual')?.moved).toBeGreaterThan(0.5);
  });

  it('without alignment, the linear merge of the permuted copy is not the anchor', async () => {
    const dir = tempDir();
    const other = path.join(dir, 'other');
    const { anchor } = await permutedCopy(other, 22, (k) => k === 'ffn');
    const result = await runRecipe(await writeRecipe(dir, other, { method: 'none' }));
    const merged = await loadEncoderModel(result.outputDir);
    const name = 'encoder.layers.0.feed_forward.intermediate_dense.weight';
    const a = anchor.weights.get(name)!.data;
    const m = merged.weights.get(name)!.data;
    let err = 0;
    for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i]! - m[i]!));
    expect(err).toBeGreaterThan(1e-2);
  });

  it('the data-free weights method also recovers the permuted copy', async () => {
    const dir = tempDir();
    const other = path.join(dir, 'other');
    await permutedCopy(other, 23, (k) => k === 'ffn' || k === 'cnn');
    const result = await runRecipe(await writeRecipe(dir, other, { method: 'weights', permute: '[cnn, ffn]' }));
    for (const t of result.report.align.taps) expect(t.meanCorrelationAfter, t.tap).toBeGreaterThan(0.999);
  });

  it('a cancelled run leaves no output folder and no staging folder', async () => {
    const dir = tempDir();
    const other = path.join(dir, 'other');
    await permutedCopy(other, 24, () => true);
    const controller = new AbortController();
    const run = runRecipe(await writeRecipe(dir, other), {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'stage' && e.stage === 'assign') controller.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'cancelled' });
    expect(readdirSync(dir).sort()).toEqual(['other', 'test.merge.yaml']);
  });

  it('a failing run keeps the previous output intact', async () => {
    const dir = tempDir();
    const other = path.join(dir, 'other');
    await permutedCopy(other, 25, (k) => k === 'ffn');
    const file = await writeRecipe(dir, other);
    const first = await runRecipe(file);
    const before = await fs.readFile(path.join(first.outputDir, 'report.json'), 'utf8');
    await fs.writeFile(path.join(other, 'config.json'), '{ broken');
    await expect(runRecipe(file)).rejects.toMatchObject({ code: 'bad-recipe' });
    expect(await fs.readFile(path.join(first.outputDir, 'report.json'), 'utf8')).toBe(before);
    expect(readdirSync(dir).filter((f) => f.includes('staging'))).toEqual([]);
    expect(existsSync(path.join(dir, 'out', 'model.safetensors'))).toBe(true);
  });
});
