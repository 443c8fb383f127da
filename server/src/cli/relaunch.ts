/**
 * `run` and `stats` on Linux start the engine in a child process that has glibc's malloc settings
 * (engine/process-env.ts). glibc reads them only at process start, and without them the statistics step spends a
 * sixth of its time faulting in fresh pages. Editor jobs and the emitted cluster scripts set them at launch; this
 * gives a plain `merge-studio run` the same engine.
 *
 * The launcher stays in front, so the shell sees one command: the child runs in its own session (terminal signals
 * reach only the launcher, which forwards each one exactly once: Ctrl-C cancels and cleans up as before), its exit
 * code or signal becomes the launcher's, and a child whose launcher died (SIGKILL) cancels itself, as it would on
 * SIGTERM, instead of running on unseen.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { engineProcessEnv } from '../engine/process-env';

/** Commands that run the engine long enough for the malloc settings to matter. */
const ENGINE_COMMANDS = new Set(['run', 'stats']);
/** Set in the child: the launcher's pid, which the child watches. */
export const LAUNCHER_PID_ENV = 'MERGE_STUDIO_LAUNCHER_PID';
/** Set to 1 to run the engine in the CLI's own process (the malloc settings then come from the user's environment). */
export const NO_RELAUNCH_ENV = 'MERGE_STUDIO_NO_RELAUNCH';
/** Signals a launcher passes on: cancellation (INT, TERM, HUP) and the terminal's size (WINCH) for the bar. */
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGWINCH'];

export interface Launch {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/**
 * The child to start instead of running here, or undefined to run here: on Linux, for `run` and `stats`, when the
 * environment lacks the malloc settings, this process is not already such a child and no debugger is asked for.
 */
export function engineRelaunch(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
  node: { execPath: string; execArgv: readonly string[]; pid: number } = process,
): Launch | undefined {
  if (!ENGINE_COMMANDS.has(argv[2] ?? '')) return undefined;
  if (env[LAUNCHER_PID_ENV] !== undefined || env[NO_RELAUNCH_ENV] === '1') return undefined;
  // Under a debugger the engine stays in the process the debugger is attached to.
  if ([...node.execArgv, env.NODE_OPTIONS ?? ''].some((a) => a.includes('--inspect'))) return undefined;
  const engineEnv = engineProcessEnv(env, platform);
  if (Object.keys(engineEnv).every((k) => engineEnv[k] === env[k])) return undefined;
  return {
    command: node.execPath,
    args: [...node.execArgv, ...argv.slice(1)],
    env: { ...engineEnv, [LAUNCHER_PID_ENV]: String(node.pid) },
  };
}

/** Runs `launch` in front of it; resolves with its exit code (a signal that ended it is raised here again). */
export function runInFront(launch: Launch): Promise<number> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    const forward = (signal: NodeJS.Signals) => void child.kill(signal);
    const stopForwarding = () => {
      for (const s of FORWARDED) process.off(s, forward);
    };
    try {
      child = spawn(launch.command, launch.args, { env: launch.env, stdio: 'inherit', detached: true });
    } catch (e) {
      process.stderr.write(`merge-studio: cannot start the engine: ${(e as Error).message}\n`);
      resolve(1);
      return;
    }
    for (const s of FORWARDED) process.on(s, forward);
    child.on('error', (e) => {
      stopForwarding();
      process.stderr.write(`merge-studio: cannot start the engine: ${e.message}\n`);
      resolve(1);
    });
    child.on('exit', (code, signal) => {
      stopForwarding();
      if (signal && signal !== 'SIGWINCH') process.kill(process.pid, signal);
      resolve(code ?? 1);
    });
  });
}

/**
 * In a relaunched child: SIGTERM to itself when the launcher is gone (its parent changed), so a killed launcher does
 * not leave an engine running. Polls once a second on an unref'd timer.
 */
export function watchLauncher(env: NodeJS.ProcessEnv, intervalMs = 1000): void {
  const launcher = Number(env[LAUNCHER_PID_ENV]);
  if (!Number.isInteger(launcher) || launcher <= 0) return;
  const timer = setInterval(() => {
    if (process.ppid === launcher) return;
    clearInterval(timer);
    process.kill(process.pid, 'SIGTERM');
  }, intervalMs);
  timer.unref();
}
