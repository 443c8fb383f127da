// `run` and `stats` start the engine in a child with glibc's malloc settings (server/src/cli/relaunch.ts): the decision,
// and the real bundled CLI cancelled through its launcher or orphaned by it.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { engineRelaunch, LAUNCHER_PID_ENV, NO_RELAUNCH_ENV } from '../../server/src/cli/relaunch';
import { ENGINE_MALLOC_ENV } from '../../server/src/engine/process-env';
import { ROOT } from '../helpers/cli';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();
const NODE = { execPath: '/usr/bin/node', execArgv: ['--enable-source-maps'], pid: 4242 };
const ARGV = ['/usr/bin/node', '/opt/ms/bin/merge-studio.js'];
const PLAIN = { PATH: '/bin', HOME: '/home/u' };

describe('engineRelaunch', () => {
  it.each(['run', 'stats'])('relaunches `%s` on Linux with the malloc settings and the launcher pid', (command) => {
    const launch = engineRelaunch([...ARGV, command, 'r.merge.yaml', '--threads', '2'], PLAIN, 'linux', NODE);
    expect(launch).toEqual({
      command: '/usr/bin/node',
      args: ['--enable-source-maps', '/opt/ms/bin/merge-studio.js', command, 'r.merge.yaml', '--threads', '2'],
      env: { ...PLAIN, ...ENGINE_MALLOC_ENV, [LAUNCHER_PID_ENV]: '4242' },
    });
  });

  it('keeps a setting the user made and adds the missing one', () => {
    const env = { ...PLAIN, MALLOC_TRIM_THRESHOLD_: '0' };
    expect(engineRelaunch([...ARGV, 'run', 'r.merge.yaml'], env, 'linux', NODE)?.env).toMatchObject({
      MALLOC_TRIM_THRESHOLD_: '0',
      MALLOC_MMAP_THRESHOLD_: ENGINE_MALLOC_ENV.MALLOC_MMAP_THRESHOLD_,
    });
  });

  it.each([
    ['another command', ['forward', 'm', 'a.wav'], PLAIN, 'linux'],
    ['no command', ['--version'], PLAIN, 'linux'],
    ['macOS', ['run', 'r.merge.yaml'], PLAIN, 'darwin'],
    ['Windows', ['run', 'r.merge.yaml'], PLAIN, 'win32'],
    ['both settings already made', ['run', 'r.merge.yaml'], { ...PLAIN, ...ENGINE_MALLOC_ENV }, 'linux'],
    ['a relaunched child', ['run', 'r.merge.yaml'], { ...PLAIN, [LAUNCHER_PID_ENV]: '1' }, 'linux'],
    ['the opt-out', ['stats', 'r.merge.yaml'], { ...PLAIN, [NO_RELAUNCH_ENV]: '1' }, 'linux'],
  ] as const)('runs in place for %s', (_, args, env, platform) => {
    expect(engineRelaunch([...ARGV, ...args], env, platform, NODE)).toBeUndefined();
  });

  it('runs in place under a debugger', () => {
    const args = [...ARGV, 'run', 'r.merge.yaml'];
    expect(engineRelaunch(args, PLAIN, 'linux', { ...NODE, execArgv: ['--inspect-brk=9229'] })).toBeUndefined();
    expect(engineRelaunch(args, { ...PLAIN, NODE_OPTIONS: '--max-old-space-size=8192 --inspect' }, 'linux', NODE)).toBeUndefined();
    expect(engineRelaunch(args, { ...PLAIN, NODE_OPTIONS: '--max-old-space-size=8192' }, 'linux', NODE)).toBeDefined();
  });
});

/** The example's models, probe and tasks, written to a temp dir so the run's output lands there. */
async function exampleRecipe(dir: string): Promise<string> {
  const ex = path.join(ROOT, 'examples');
  const file = path.join(dir, 'r.merge.yaml');
  const tasks = [
    ['keywords', 'speech'],
    ['pitch', 'music'],
  ].map(([t, domain]) => `    - { name: ${t}, domain: ${domain}, data: ${path.join(ex, 'eval', t!)} }`);
  await fs.writeFile(
    file,
    [
      'version: 1',
      'models:',
      `  anchor: ${path.join(ex, 'models', 'speech-encoder')}`,
      `  other: ${path.join(ex, 'models', 'music-encoder')}`,
      `probe: { audio: [${path.join(ex, 'probe', 'speech')}, ${path.join(ex, 'probe', 'music')}], segment_seconds: 1 }`,
      'merge: { lambda: 0.5, sweep: [0.3, 0.5, 0.7, 0.9] }',
      'evaluate:',
      '  tasks:',
      ...tasks,
      `output: ${path.join(dir, 'out')}`,
      '',
    ].join('\n'),
  );
  return file;
}

/** The CLI started as a user would, without the malloc settings; resolves once the engine reports progress. */
async function startRun(recipe: string): Promise<ChildProcessWithoutNullStreams> {
  const env = { ...process.env };
  for (const k of [...Object.keys(ENGINE_MALLOC_ENV), LAUNCHER_PID_ENV, NO_RELAUNCH_ENV]) delete env[k];
  const launcher = spawn(process.execPath, [path.join(ROOT, 'bin', 'merge-studio.js'), 'run', recipe, '--progress', 'json'], {
    cwd: ROOT,
    env,
  });
  await new Promise<void>((resolve, reject) => {
    launcher.stdout.on('data', (b: Buffer) => b.toString().includes('"progress"') && resolve());
    launcher.on('exit', (code) => reject(new Error(`the run ended (${code}) before reporting progress`)));
  });
  return launcher;
}

/** Pids whose parent is `ppid`, from /proc. */
function childrenOf(ppid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return (
          Number(
            readFileSync(`/proc/${d}/stat`, 'utf8')
              .replace(/^.*\) /s, '')
              .split(' ')[1],
          ) === ppid
        );
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Whether `pid` still runs (a zombie nobody reaped has ended). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return false;
  }
}

function environ(pid: number): Record<string, string> {
  return Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
}

/** Hidden staging folders a run left beside its output. */
const staging = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('.'));

describe.runIf(process.platform === 'linux')('the CLI in front of its engine', () => {
  it('the engine gets the malloc settings, and Ctrl-C to the launcher cancels it cleanly', async () => {
    const dir = tempDir();
    const launcher = await startRun(await exampleRecipe(dir));
    const [engine] = childrenOf(launcher.pid!);
    expect(engine).toBeDefined();
    expect(environ(engine!)).toMatchObject({ ...ENGINE_MALLOC_ENV, [LAUNCHER_PID_ENV]: String(launcher.pid) });
    let stderr = '';
    launcher.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    launcher.kill('SIGINT');
    const code = await new Promise((resolve) => launcher.on('exit', resolve));
    expect(code).toBe(130);
    expect(stderr).toMatch(/cancel/i);
    expect(running(engine!)).toBe(false);
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
    expect(staging(dir)).toEqual([]);
  }, 120_000);

  it('an engine whose launcher was killed cancels itself', async () => {
    const dir = tempDir();
    const launcher = await startRun(await exampleRecipe(dir));
    const [engine] = childrenOf(launcher.pid!);
    expect(engine).toBeDefined();
    launcher.kill('SIGKILL');
    await new Promise((resolve) => launcher.on('exit', resolve));
    const deadline = Date.now() + 60_000;
    while (running(engine!) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(running(engine!)).toBe(false);
    expect(existsSync(path.join(dir, 'out'))).toBe(false);
    expect(staging(dir)).toEqual([]);
  }, 120_000);
});
