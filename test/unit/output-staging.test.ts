// Publishing an output folder: the umask's mode, a last ownership look, write errors that name the output, and
// recovery from a process killed (SIGKILL) at every step of the publish sequence.
import { spawn } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../server/src/engine/errors';
import { findStagingLeftovers, planRecovery, recoverStagingLeftovers, StagedOutput } from '../../server/src/engine/pipeline/staging';
import { ROOT } from '../helpers/cli';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();

/** A folder as Merge Studio writes it, holding `model` as its model file. */
async function toolOutput(dir: string, model: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'model.safetensors'), model);
  await fs.writeFile(
    path.join(dir, 'report.json'),
    JSON.stringify({ version: 1, tool: { mergeStudio: '0.1.0' }, output: { files: ['model.safetensors', 'report.json'] } }),
  );
}

const model = (dir: string) => readFileSync(path.join(dir, 'model.safetensors'), 'utf8');
const hidden = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('.'));

/** A pid that belongs to no running process. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  const pid = child.pid!;
  await new Promise((resolve) => child.on('exit', resolve));
  return pid;
}

describe('publishing a staged output', () => {
  it('gives the published folder the mode the umask allows, not mkdtemp 0700', async () => {
    const dir = tempDir();
    const previous = process.umask(0o022);
    try {
      for (const [umask, mode] of [
        [0o022, 0o755],
        [0o027, 0o750],
      ] as const) {
        process.umask(umask);
        const target = path.join(dir, `out-${umask.toString(8)}`);
        const staged = await StagedOutput.create(target);
        await fs.writeFile(staged.file('report.json'), '{}');
        await staged.publish();
        expect(statSync(target).mode & 0o777).toBe(mode);
      }
    } finally {
      process.umask(previous);
    }
  });

  it('replaces an earlier output and leaves nothing hidden behind', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'out');
    await toolOutput(target, 'old');
    const staged = await StagedOutput.create(target);
    await toolOutput(staged.dir, 'new');
    await staged.publish();
    expect(model(target)).toBe('new');
    expect(hidden(dir)).toEqual([]);
  });

  it('refuses to replace a folder that gained foreign files while the run computed', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'out');
    const staged = await StagedOutput.create(target);
    await toolOutput(staged.dir, 'new');
    await fs.mkdir(target);
    await fs.writeFile(path.join(target, 'thesis.tex'), 'years of work');
    await expect(staged.publish()).rejects.toThrow(/out is a folder Merge Studio did not write \(it holds thesis\.tex\)/);
    expect(readFileSync(path.join(target, 'thesis.tex'), 'utf8')).toBe('years of work');
    expect(hidden(dir)).toEqual([]);
  });

  it('names the output and the file when a write fails (ENOSPC, EROFS…)', async () => {
    const dir = tempDir();
    const staged = await StagedOutput.create(path.join(dir, 'out'));
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
      path: staged.file('model.safetensors'),
    });
    const e = staged.explain(
      new EngineError('io-error', `cannot write ${staged.file('model.safetensors')}: ENOSPC`, staged.file('model.safetensors'), {
        cause: full,
      }),
    );
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).message).toBe(
      `cannot write the output ${path.join(dir, 'out')} (model.safetensors): no space left on device, ENOSPC`,
    );
    const ro = staged.explain(Object.assign(new Error('EROFS'), { code: 'EROFS', path: staged.file('config.json') }));
    expect((ro as EngineError).message).toMatch(/cannot write the output .*out \(config\.json\): read-only file system, EROFS$/);
    // An error about an input (the anchor's config missing) is not a write error and stays as it was.
    const input = Object.assign(new Error('ENOENT'), { code: 'ENOENT', path: '/models/a/config.json' });
    expect(staged.explain(input)).toBe(input);
    await staged.discard();
  });
});

describe('leftovers of a stopped run', () => {
  it('restores the earlier output when the target is missing and only its .previous copy exists', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'out');
    const pid = await deadPid();
    await toolOutput(path.join(dir, `.out.staging-${pid}-abcd1234`), 'new');
    await toolOutput(path.join(dir, `.out.staging-${pid}-abcd1234.previous`), 'old');
    const lines = await recoverStagingLeftovers(target);
    expect(model(target)).toBe('old');
    expect(hidden(dir)).toEqual([]);
    expect(lines).toEqual([
      `restored ${target} from .out.staging-${pid}-abcd1234.previous, where a stopped run had moved it`,
      `removed ${path.join(dir, `.out.staging-${pid}-abcd1234`)}, the unfinished output of a stopped run`,
    ]);
  });

  it('removes a .previous copy the new output already replaced, and unfinished staging folders (old unnamed ones too)', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'out');
    await toolOutput(target, 'new');
    const pid = await deadPid();
    await toolOutput(path.join(dir, `.out.staging-${pid}-0000aaaa.previous`), 'old');
    await fs.mkdir(path.join(dir, '.out.staging-Xy12Zq'));
    await fs.writeFile(path.join(dir, '.out.staging-Xy12Zq', 'report.json'), '{"trunc');
    const plan = await planRecovery(target);
    expect(plan.map((a) => [a.action, path.basename(a.leftover.path)])).toEqual([
      ['remove', `.out.staging-${pid}-0000aaaa.previous`],
      ['remove', '.out.staging-Xy12Zq'],
    ]);
    await recoverStagingLeftovers(target);
    expect(model(target)).toBe('new');
    expect(hidden(dir)).toEqual([]);
  });

  it('leaves alone the staging folder of a process that still runs, and folders of other outputs', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'out');
    await fs.mkdir(path.join(dir, `.out.staging-${process.pid}-beefbeef`));
    await fs.mkdir(path.join(dir, '.outer.staging-123456'));
    await fs.mkdir(path.join(dir, '.out.staging-notes'));
    expect(await findStagingLeftovers(target)).toEqual([]);
    expect(await recoverStagingLeftovers(target)).toEqual([]);
    expect(hidden(dir).sort()).toEqual([`.out.staging-${process.pid}-beefbeef`, '.out.staging-notes', '.outer.staging-123456'].sort());
  });

  it.each([
    ['while writing the staging folder', 'staged', 'old'],
    ['after moving the old output aside', 'old-output-moved-aside', 'old'],
    ['after moving the new output in', 'new-output-moved-in', 'new model'],
  ])('SIGKILL %s: recovery leaves exactly one whole output and nothing hidden', async (_, step, expected) => {
    const dir = tempDir();
    const target = path.join(dir, 'out');
    await toolOutput(target, 'old');
    // tsx as a loader keeps the script in this one process (its CLI would run it in a grandchild).
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test', 'helpers', 'publish-child.ts'), target, step], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => b.toString().includes('paused') && resolve());
      child.on('exit', () => reject(new Error('the child ended before pausing')));
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('exit', resolve));
    expect(hidden(dir).length).toBeGreaterThan(0);
    if (step === 'old-output-moved-aside') expect(existsSync(target)).toBe(false);
    const lines = await recoverStagingLeftovers(target);
    expect(lines.length).toBeGreaterThan(0);
    expect(model(target)).toBe(expected);
    expect(hidden(dir)).toEqual([]);
  });
});
