// The output folder is never a user's folder or an input, and everything knowable about writing it is checked
// before compute: in the recipe check (the editor's diagnostics), at run start, and in a dry run.
import { existsSync, promises as fs, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspectOutputFolder } from '../../server/src/engine/io/output-folder';
import { guardOutput } from '../../server/src/engine/pipeline/output-guard';
import { runLoadedRecipe, runRecipe } from '../../server/src/engine/pipeline/run';
import type { JobEvent } from '../../server/src/engine/progress';
import { checkRecipeText, loadRecipe, type Recipe } from '../../server/src/engine/recipe';
import { FIXTURES, HF_REFERENCE } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();
const MODEL = path.join(HF_REFERENCE, 'hubert-postln-a');
const REPORT = JSON.stringify({
  version: 1,
  tool: { mergeStudio: '0.1.0' },
  output: { files: ['config.json', 'model.safetensors', 'permutations.json', 'report.json'] },
});

/** A recipe in `dir` merging the reference model with itself (no alignment: a run takes a second). */
async function recipe(dir: string, output: string, extra: string[] = []): Promise<string> {
  const file = path.join(dir, 'r.merge.yaml');
  await fs.writeFile(
    file,
    [
      'version: 1',
      'models:',
      `  anchor: ${MODEL}`,
      `  other: ${MODEL}`,
      'align: { method: none }',
      'merge:',
      '  lambda: 0.5',
      ...extra,
      `output: ${output}`,
      '',
    ].join('\n'),
  );
  return file;
}

async function outputDiagnostics(file: string): Promise<string[]> {
  const text = readFileSync(file, 'utf8');
  const line = text.split('\n').findIndex((l) => l.startsWith('output:'));
  return (await checkRecipeText(text, file)).filter((d) => d.range.start.line === line).map((d) => `${d.code}: ${d.message}`);
}

describe('which existing folders the tool may replace', () => {
  it('missing, empty (desktop litter aside) and its own outputs only', async () => {
    const dir = tempDir();
    expect(await inspectOutputFolder(path.join(dir, 'none'))).toEqual({ kind: 'missing' });
    await fs.mkdir(path.join(dir, 'empty'));
    await fs.writeFile(path.join(dir, 'empty', '.DS_Store'), '');
    expect(await inspectOutputFolder(path.join(dir, 'empty'))).toEqual({ kind: 'empty' });
    await fs.mkdir(path.join(dir, 'ours'));
    await fs.writeFile(path.join(dir, 'ours', 'report.json'), REPORT);
    await fs.writeFile(path.join(dir, 'ours', 'model.safetensors'), '');
    expect(await inspectOutputFolder(path.join(dir, 'ours'))).toEqual({ kind: 'tool-output' });
    // Files the report lists in sub-folders (per-variant models) are the tool's too.
    await fs.mkdir(path.join(dir, 'ours', 'repair'));
    await fs.writeFile(
      path.join(dir, 'ours', 'report.json'),
      JSON.stringify({ ...JSON.parse(REPORT), output: { files: ['report.json', 'repair/model.safetensors'] } }),
    );
    expect(await inspectOutputFolder(path.join(dir, 'ours'))).toEqual({ kind: 'tool-output' });
  });

  it.each([
    [
      'a folder of photos',
      { 'thesis.pdf': '%PDF', 'IMG_0001.jpg': 'jpeg' },
      /is a folder Merge Studio did not write \(it holds IMG_0001\.jpg, thesis\.pdf\)/,
    ],
    [
      'a report.json of another tool',
      { 'report.json': '{"version": 1}', 'data.csv': '' },
      /did not write \(it holds data\.csv, report\.json\)/,
    ],
    ['a truncated report.json', { 'report.json': '{"version": 1, "tool": {"mergeSt', 'model.safetensors': '' }, /did not write/],
    [
      'its own output with a file added',
      { 'report.json': REPORT, 'notes.md': 'mine' },
      /was written by Merge Studio but now also holds notes\.md/,
    ],
  ])('refuses %s', async (_, files, reason) => {
    const dir = tempDir();
    for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(dir, name), text);
    const state = await inspectOutputFolder(dir);
    expect(state.kind).toBe('refused');
    expect(state.kind === 'refused' && state.reason).toMatch(reason);
  });
});

describe('output: in the recipe check', () => {
  it('accepts a new folder, an empty one and an earlier output of the tool', async () => {
    const dir = tempDir();
    expect(await outputDiagnostics(await recipe(dir, './out'))).toEqual([]);
    await fs.mkdir(path.join(dir, 'out'));
    expect(await outputDiagnostics(await recipe(dir, './out'))).toEqual([]);
    await fs.writeFile(path.join(dir, 'out', 'report.json'), REPORT);
    expect(await outputDiagnostics(await recipe(dir, './out'))).toEqual([]);
  });

  it('refuses a symbolic link into an input folder, and a folder holding an input through a link', async () => {
    const dir = tempDir();
    await fs.mkdir(path.join(dir, 'probe'));
    await fs.copyFile(path.join(FIXTURES, 'audio', 'tone-16k.wav'), path.join(dir, 'probe', 'a.wav'));
    symlinkSync(path.join(dir, 'probe'), path.join(dir, 'link'));
    const probe = ['probe:', '  audio: [./probe]'];
    expect(await outputDiagnostics(await recipe(dir, './link', probe))).toEqual([
      'output-overwrites-input: output ./link overlaps probe.audio[0] (./probe); the run would overwrite probe audio',
    ]);
    expect(await outputDiagnostics(await recipe(dir, './link/merged', probe))).toEqual([
      'output-overwrites-input: output ./link/merged overlaps probe.audio[0] (./probe); the run would overwrite probe audio',
    ]);
  });

  it('refuses the folder holding the recipe, and a user folder, with the reason', async () => {
    const dir = tempDir();
    expect(await outputDiagnostics(await recipe(dir, '.'))).toEqual([
      'output-overwrites-input: output . overlaps the recipe (r.merge.yaml); the run would overwrite the recipe',
    ]);
    await fs.mkdir(path.join(dir, 'thesis'));
    await fs.writeFile(path.join(dir, 'thesis', 'chapter1.tex'), '');
    expect(await outputDiagnostics(await recipe(dir, './thesis'))).toEqual([
      'output-not-ours: output ./thesis is a folder Merge Studio did not write (it holds chapter1.tex); Merge Studio only replaces its own output folders',
    ]);
  });
});

describe('at run start, before any compute', () => {
  it('a recipe whose output is a user folder fails to load, and the folder is untouched', async () => {
    const dir = tempDir();
    await fs.mkdir(path.join(dir, 'photos'));
    await fs.writeFile(path.join(dir, 'photos', 'IMG_0001.jpg'), 'jpeg');
    await expect(runRecipe(await recipe(dir, './photos'))).rejects.toThrow(
      /r\.merge\.yaml:\d+:9: error output-not-ours: output \.\/photos is a folder Merge Studio did not write/,
    );
    expect(readdirSync(path.join(dir, 'photos'))).toEqual(['IMG_0001.jpg']);
  });

  it('a folder that became foreign after the recipe was loaded stops the run before its first stage', async () => {
    const dir = tempDir();
    const loaded = await loadRecipe(await recipe(dir, './out'));
    await fs.mkdir(path.join(dir, 'out'));
    await fs.writeFile(path.join(dir, 'out', 'notes.txt'), 'mine');
    const events: JobEvent[] = [];
    await expect(runLoadedRecipe(loaded, { onEvent: (e) => events.push(e) })).rejects.toMatchObject({ code: 'bad-recipe' });
    expect(events.filter((e) => e.type === 'stage')).toEqual([]);
    expect(readdirSync(path.join(dir, 'out'))).toEqual(['notes.txt']);
  });

  it('restores an output a killed run left under its hidden name, says so, then replaces it', async () => {
    const dir = tempDir();
    const file = await recipe(dir, './out');
    const first = await runRecipe(file);
    await fs.rename(first.outputDir, path.join(dir, '.out.staging-Ab12Cd.previous'));
    await fs.mkdir(path.join(dir, '.out.staging-Ab12Cd'));
    const events: JobEvent[] = [];
    const second = await runRecipe(file, { onEvent: (e) => events.push(e) });
    const logs = events.flatMap((e) => (e.type === 'log' ? [e.message] : []));
    expect(logs).toContain(`restored ${path.join(dir, 'out')} from .out.staging-Ab12Cd.previous, where a stopped run had moved it`);
    expect(logs).toContain(`removed ${path.join(dir, '.out.staging-Ab12Cd')}, the unfinished output of a stopped run`);
    expect(existsSync(path.join(second.outputDir, 'model.safetensors'))).toBe(true);
    expect(readdirSync(dir).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('refuses when the free space cannot hold the merged model', async () => {
    const dir = tempDir();
    // A config describing a model of ~1.6e12 parameters (6 TB of float32): no test machine has that much free.
    const big = path.join(dir, 'big');
    await fs.mkdir(big);
    const config = JSON.parse(readFileSync(path.join(MODEL, 'config.json'), 'utf8')) as Record<string, unknown>;
    Object.assign(config, { hidden_size: 16384, num_attention_heads: 128, intermediate_size: 65536, num_hidden_layers: 512 });
    await fs.writeFile(path.join(big, 'config.json'), JSON.stringify(config));
    const file = await recipe(dir, './out');
    const loaded = { file, recipe: { models: { anchor: './big', other: './big' }, output: './out' } as Recipe };
    await expect(guardOutput(loaded)).rejects.toThrow(
      /output \.\/out: [\d.]+ GiB free on the file system of .*; the merged model needs about [\d.]+ GiB/,
    );
  });

  it('refuses a place where files cannot be created even though access() allows it (root on sysfs)', async (ctx) => {
    const dir = tempDir();
    const blocked = '/sys';
    const writable = await fs.writeFile(path.join(blocked, '.merge-studio-probe'), '').then(
      () => true,
      () => false,
    );
    if (writable || !existsSync(blocked)) ctx.skip();
    const file = await recipe(dir, '/sys/merged');
    const loaded = { file, recipe: { models: { anchor: MODEL, other: MODEL }, output: '/sys/merged' } as Recipe };
    await expect(guardOutput(loaded)).rejects.toThrow(/output \/sys\/merged cannot be created/);
  });

  it('a dry run reports what recovery would do and changes nothing', async () => {
    const dir = tempDir();
    await fs.mkdir(path.join(dir, '.out.staging-Ab12Cd'));
    const file = await recipe(dir, './out');
    const loaded = await loadRecipe(file);
    expect(await guardOutput(loaded, { dryRun: true })).toEqual([
      `would remove ${path.join(dir, '.out.staging-Ab12Cd')}, the unfinished output of a stopped run`,
    ]);
    expect(existsSync(path.join(dir, '.out.staging-Ab12Cd'))).toBe(true);
  });
});
