// The CLI's output streams and its output-folder commands, through the bundled CLI (dist/, built by `npm test`).
import { spawn } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli } from '../helpers/cli';
import { FIXTURES, HF_REFERENCE } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();
const MINIMAL = path.join('test', 'fixtures', 'recipes', 'good', 'minimal.merge.yaml');
const MODEL = path.join(HF_REFERENCE, 'hubert-postln-a');

/** Runs the CLI with a stdout whose reader has already gone away (`… | head -0`): every write fails with EPIPE. */
function runWithClosedStdout(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'merge-studio.js'), ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** Stderr without what the WebGPU backend's native Vulkan probe prints on a machine without a GPU driver. */
function withoutGpuProbeNoise(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => !/^Warning: vk|VulkanError\.cpp/.test(l))
    .join('\n')
    .trim();
}

async function recipeIn(dir: string, output: string): Promise<string> {
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
      `output: ${output}`,
      '',
    ].join('\n'),
  );
  return file;
}

/** An earlier output moved aside by a killed run, and its staging folder: the target itself is missing. */
async function killedMidPublish(dir: string): Promise<void> {
  const previous = path.join(dir, '.out.staging-Zz99Yy.previous');
  await fs.mkdir(previous);
  await fs.writeFile(
    path.join(previous, 'report.json'),
    JSON.stringify({ version: 1, tool: { mergeStudio: '0.1.0' }, output: { files: ['report.json'] } }),
  );
  await fs.mkdir(path.join(dir, '.out.staging-Zz99Yy'));
}

describe('a closed stdout ends a command quietly', () => {
  it.each([
    ['doctor', ['doctor']],
    ['run --dry-run', ['run', MINIMAL, '--dry-run']],
    ['check', ['check', MINIMAL]],
    [
      'forward --summary',
      ['forward', '--model', path.join(HF_REFERENCE, 'hubert-preln'), '--audio', path.join(FIXTURES, 'audio', 'tone-16k.wav'), '--summary'],
    ],
  ])('%s: exit code 0, nothing on stderr', async (_, args) => {
    const r = await runWithClosedStdout(args);
    expect(withoutGpuProbeNoise(r.stderr)).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('merge-studio check', () => {
  it('prints its result line on stdout', () => {
    const r = runCli(['check', MINIMAL]);
    expect(r.stdout).toBe(`${MINIMAL}: no problems\n`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('run --dry-run and the output folder', () => {
  it('refuses the recipe folder as output, in one line, before printing a plan', async () => {
    const dir = tempDir();
    const r = runCli(['run', await recipeIn(dir, '.'), '--dry-run']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/error output-overwrites-input: output \. overlaps the recipe \(r\.merge\.yaml\)/);
  });

  it('says what recovery of a stopped run would do, and does nothing', async () => {
    const dir = tempDir();
    await killedMidPublish(dir);
    const r = runCli(['run', await recipeIn(dir, './out'), '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `would restore ${path.join(dir, 'out')} from .out.staging-Zz99Yy.previous, where a stopped run had moved it`,
    );
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
  });
});

describe('merge-studio clean and doctor', () => {
  it('clean restores an output left under its hidden name and removes the staging folder, saying so', async () => {
    const dir = tempDir();
    await killedMidPublish(dir);
    const recipe = await recipeIn(dir, './out');
    const dry = runCli(['clean', recipe, '--dry-run']);
    expect(dry.stdout).toContain('would restore');
    expect(readdirSync(dir).sort()).toEqual(['.out.staging-Zz99Yy', '.out.staging-Zz99Yy.previous', 'r.merge.yaml']);
    const r = runCli(['clean', recipe]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        `${recipe}: restored ${path.join(dir, 'out')} from .out.staging-Zz99Yy.previous, where a stopped run had moved it`,
        `${recipe}: removed ${path.join(dir, '.out.staging-Zz99Yy')}, the unfinished output of a stopped run`,
        '',
      ].join('\n'),
    );
    expect(readdirSync(dir).sort()).toEqual(['out', 'r.merge.yaml']);
    expect(JSON.parse(readFileSync(path.join(dir, 'out', 'report.json'), 'utf8'))).toMatchObject({ tool: { mergeStudio: '0.1.0' } });
    expect(runCli(['clean', recipe]).stdout).toBe(`${recipe}: nothing left behind beside ${path.join(dir, 'out')}\n`);
  });

  it('doctor finds leftovers beside the outputs of the recipes in the current folder; --fix puts them right', async () => {
    const dir = tempDir();
    await killedMidPublish(dir);
    await recipeIn(dir, './out');
    const r = runCli(['doctor'], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('r.merge.yaml: would restore');
    expect(r.stdout).toContain('run `merge-studio clean r.merge.yaml`');
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
    const json = JSON.parse(runCli(['doctor', '--json', '--fix'], { cwd: dir }).stdout) as {
      leftovers: { recipe: string; actions: string[] }[];
    };
    expect(json.leftovers).toEqual([
      { recipe: 'r.merge.yaml', actions: [expect.stringMatching(/^restored /), expect.stringMatching(/^removed /)] },
    ]);
    expect(readdirSync(dir).sort()).toEqual(['out', 'r.merge.yaml']);
  });
});
