/**
 * A job's output folder appears whole or not at all: everything is written into a hidden staging folder beside the
 * target, `.<name>.staging-<pid>-<random>`, which replaces the target only when the job succeeds. A failed or
 * cancelled job removes its staging folder, so it leaves no partial output (and an earlier run's output stays as it
 * was).
 *
 * Publishing is three steps: the earlier output is renamed to `<staging>.previous`, the staging folder is renamed
 * to the target, the `.previous` folder is deleted. A process killed (SIGKILL, power loss) between them leaves
 * hidden folders whose names still say which output they belong to and which process made them; the next run for
 * that output, and `merge-studio clean`, put things right (recoverStagingLeftovers): a target that is missing while
 * a `.previous` exists is restored from it, every other leftover of a dead process is deleted.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EngineError } from '../errors';
import { errnoText, inspectOutputFolder } from '../io/output-folder';

const PREVIOUS = '.previous';

/** Where publish() may be stopped by a test (the states a killed process can leave). */
export type PublishStep = 'old-output-moved-aside' | 'new-output-moved-in';

export class StagedOutput {
  private constructor(
    readonly target: string,
    /** Where files are written until publish(). */
    readonly dir: string,
  ) {}

  static async create(target: string): Promise<StagedOutput> {
    const abs = path.resolve(target);
    const parent = path.dirname(abs);
    try {
      await fs.mkdir(parent, { recursive: true });
      // mkdir (not mkdtemp, which makes 0700 folders) so the published folder gets the umask's mode like any other.
      for (;;) {
        const dir = path.join(parent, `${stagingPrefix(abs)}${process.pid}-${randomBytes(4).toString('hex')}`);
        try {
          await fs.mkdir(dir, { mode: 0o777 });
          return new StagedOutput(abs, dir);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
      }
    } catch (e) {
      throw new EngineError('io-error', `cannot create the output folder next to ${abs}: ${errnoText(e)}`, abs, { cause: e });
    }
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  /**
   * Moves the staged folder into place, replacing an earlier output of Merge Studio; anything else found at the
   * target (it may have changed since the run started) is left alone and the run fails. `pause` lets a test
   * stop the process between the steps.
   */
  async publish(pause?: (step: PublishStep) => Promise<void>): Promise<void> {
    const state = await inspectOutputFolder(this.target);
    if (state.kind === 'refused') {
      await this.discard();
      throw new EngineError('io-error', `output ${this.target} ${state.reason}; nothing was written`, this.target);
    }
    const previous = state.kind === 'missing' ? undefined : `${this.dir}${PREVIOUS}`;
    try {
      if (previous) {
        await fs.rename(this.target, previous);
        await pause?.('old-output-moved-aside');
      }
      await fs.rename(this.dir, this.target);
    } catch (e) {
      if (previous) await fs.rename(previous, this.target).catch(() => undefined);
      await this.discard();
      throw new EngineError('io-error', `cannot move the finished output into ${this.target}: ${errnoText(e)}`, this.target, { cause: e });
    }
    if (previous) {
      await pause?.('new-output-moved-in');
      await fs.rm(previous, { recursive: true, force: true });
    }
  }

  async discard(): Promise<void> {
    await fs.rm(this.dir, { recursive: true, force: true });
  }

  /**
   * A failure while writing into the staging folder, as an EngineError that names the output and the file
   * (ENOSPC, EACCES, EROFS…); any other error unchanged.
   */
  explain(e: unknown): unknown {
    if (e instanceof EngineError && e.code !== 'io-error') return e;
    const cause = e instanceof EngineError && e.cause !== undefined ? e.cause : e;
    const err = cause as NodeJS.ErrnoException & { dest?: string };
    const written = [err?.dest, err?.path, e instanceof EngineError ? e.file : undefined].find(
      (p) => typeof p === 'string' && isWithin(p, this.dir),
    );
    if (!written) return e;
    const name = path.relative(this.dir, written);
    return new EngineError(
      'io-error',
      `cannot write the output ${this.target}${name ? ` (${name})` : ''}: ${errnoText(cause)}`,
      this.target,
      { cause: e },
    );
  }
}

function stagingPrefix(target: string): string {
  return `.${path.basename(target)}.staging-`;
}

function isWithin(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** A hidden folder a stopped run left beside its output. */
export interface StagingLeftover {
  path: string;
  /** `unfinished`: a staging folder (possibly complete); `previous`: the earlier output, moved aside to be replaced. */
  kind: 'unfinished' | 'previous';
}

/**
 * The leftovers of runs for `target` whose process is gone. Folders of a process that still runs (another job
 * writing the same output) are not leftovers; folders from releases before the name carried a pid are.
 */
export async function findStagingLeftovers(target: string): Promise<StagingLeftover[]> {
  const abs = path.resolve(target);
  const parent = path.dirname(abs);
  const prefix = stagingPrefix(abs);
  const names = await fs.readdir(parent).catch(() => [] as string[]);
  const found: StagingLeftover[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(?:(\d+)-)?[A-Za-z0-9]{6,}(\.previous)?$/.exec(name.slice(prefix.length));
    if (!m) continue;
    if (m[1] && isAlive(Number(m[1]))) continue;
    const full = path.join(parent, name);
    const st = await fs.lstat(full).catch(() => undefined);
    if (st?.isDirectory()) found.push({ path: full, kind: m[2] ? 'previous' : 'unfinished' });
  }
  return found.sort((a, b) => a.path.localeCompare(b.path));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface RecoveryAction {
  action: 'restore' | 'remove';
  leftover: StagingLeftover;
}

/** What recovery does for `target`: restore the newest `.previous` when the target is missing, remove the rest. */
export async function planRecovery(target: string): Promise<RecoveryAction[]> {
  const leftovers = await findStagingLeftovers(target);
  const targetExists = await fs.lstat(target).then(
    () => true,
    () => false,
  );
  let restore: StagingLeftover | undefined;
  if (!targetExists) {
    let newest = -Infinity;
    for (const l of leftovers.filter((x) => x.kind === 'previous')) {
      const mtime = (await fs.stat(l.path).catch(() => undefined))?.mtimeMs ?? -Infinity;
      if (mtime > newest) [newest, restore] = [mtime, l];
    }
  }
  // Restoring comes first: the earlier output is back under its name before anything is deleted.
  return [
    ...(restore ? [{ action: 'restore' as const, leftover: restore }] : []),
    ...leftovers.filter((l) => l !== restore).map((leftover) => ({ action: 'remove' as const, leftover })),
  ];
}

/** One line per action, in the past tense once done ("restored …"), else as a plan ("would restore …"). */
export function describeRecovery(target: string, a: RecoveryAction, done: boolean): string {
  const name = path.basename(a.leftover.path);
  if (a.action === 'restore') return `${done ? 'restored' : 'would restore'} ${target} from ${name}, where a stopped run had moved it`;
  const what =
    a.leftover.kind === 'previous' ? 'an earlier output that a stopped run had already replaced' : 'the unfinished output of a stopped run';
  return `${done ? 'removed' : 'would remove'} ${path.join(path.dirname(target), name)}, ${what}`;
}

/** Puts the leftovers of stopped runs for `target` right; returns one line per thing done. */
export async function recoverStagingLeftovers(target: string): Promise<string[]> {
  const abs = path.resolve(target);
  const lines: string[] = [];
  for (const a of await planRecovery(abs)) {
    try {
      if (a.action === 'restore') await fs.rename(a.leftover.path, abs);
      else await fs.rm(a.leftover.path, { recursive: true, force: true });
    } catch (e) {
      const what = a.action === 'restore' ? `restore ${abs} from ${a.leftover.path}` : `remove ${a.leftover.path}`;
      throw new EngineError('io-error', `cannot ${what}, left by a stopped run: ${errnoText(e)}`, abs, { cause: e });
    }
    lines.push(describeRecovery(abs, a, true));
  }
  return lines;
}
