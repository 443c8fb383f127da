/**
 * A job's output folder appears whole or not at all: everything is written into a hidden staging folder beside the
 * target, which replaces the target only when the job succeeds. A failed or cancelled job removes its staging folder,
 * so it leaves no partial output (and an earlier run's output stays as it was).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EngineError } from '../errors';

export class StagedOutput {
  private constructor(
    readonly target: string,
    /** Where files are written until publish(). */
    readonly dir: string,
  ) {}

  static async create(target: string): Promise<StagedOutput> {
    const parent = path.dirname(path.resolve(target));
    try {
      await fs.mkdir(parent, { recursive: true });
      const dir = await fs.mkdtemp(path.join(parent, `.${path.basename(target)}.staging-`));
      return new StagedOutput(path.resolve(target), dir);
    } catch (e) {
      throw new EngineError('io-error', `cannot create the output folder next to ${target}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, target, { cause: e });
    }
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  /** Moves the staged folder into place, replacing an earlier output of the same recipe. */
  async publish(): Promise<void> {
    const stat = await fs.stat(this.target).catch(() => undefined);
    if (stat && !stat.isDirectory()) {
      await this.discard();
      throw new EngineError('io-error', `output ${this.target} exists and is not a folder; refusing to replace it`, this.target);
    }
    const previous = stat ? `${this.dir}.previous` : undefined;
    try {
      if (previous) await fs.rename(this.target, previous);
      await fs.rename(this.dir, this.target);
    } catch (e) {
      if (previous) await fs.rename(previous, this.target).catch(() => undefined);
      await this.discard();
      throw new EngineError('io-error', `cannot move the finished output into ${this.target}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, this.target, { cause: e });
    }
    if (previous) await fs.rm(previous, { recursive: true, force: true });
  }

  async discard(): Promise<void> {
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
