/**
 * Loading a recipe for a run: read, check (all checks, as the editor shows them) and return the typed Recipe,
 * or fail with one EngineError that points at the first error as `file:line:col`.
 */
import * as path from 'node:path';
import { EngineError, isEngineError } from '../errors';
import { openRegularFile } from '../io/regular-file';
import { countBySeverity, formatDiagnostic, Severity, sortDiagnostics, type RecipeDiagnostic } from './diagnostics';
import { checkDisk, checkStructure } from './check';
import { RecipeDisk } from './disk';
import type { Recipe } from './schema';
import { resolveRecipePath } from './semantic';

export interface LoadedRecipe {
  /** Absolute path of the recipe file. */
  file: string;
  recipe: Recipe;
  /** Warnings and infos (a loaded recipe has no errors). */
  diagnostics: RecipeDiagnostic[];
  /** Absolute path of a path written in the recipe. */
  resolve(p: string): string;
}

/** A recipe file larger than this is not read (recipes are a few kB; the text checks stop at 256 k characters). */
export const RECIPE_MAX_BYTES = 1024 * 1024;

/** The text of a recipe file: a regular file (never a pipe or a device, which would block or never end), at most RECIPE_MAX_BYTES. */
export async function readRecipeFile(file: string): Promise<string> {
  let opened: Awaited<ReturnType<typeof openRegularFile>>;
  try {
    opened = await openRegularFile(file, 'a recipe (.merge.yaml file)', 'bad-recipe');
  } catch (e) {
    if (isEngineError(e, 'file-not-found')) throw new EngineError('file-not-found', `recipe ${file} does not exist`, file, { cause: e });
    throw e;
  }
  const { handle, size } = opened;
  try {
    if (size > RECIPE_MAX_BYTES)
      throw new EngineError('bad-recipe', `recipe ${file} is ${(size / (1024 * 1024)).toFixed(1)} MB; a recipe may be at most 1 MB`, file);
    const buf = Buffer.alloc(size);
    const { bytesRead } = await handle.read(buf, 0, size, 0);
    return buf.toString('utf8', 0, bytesRead);
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw new EngineError('io-error', `cannot read recipe ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, file, {
      cause: e,
    });
  } finally {
    await handle.close();
  }
}

export async function loadRecipe(file: string, disk: RecipeDisk = new RecipeDisk()): Promise<LoadedRecipe> {
  const abs = path.resolve(file);
  const text = await readRecipeFile(abs);
  const structure = checkStructure(text);
  const diagnostics = sortDiagnostics([...structure.diagnostics, ...(await checkDisk(structure, abs, disk))]);
  const { errors } = countBySeverity(diagnostics);
  const value = structure.validation.value;
  if (errors > 0 || value === undefined) {
    const first = diagnostics.find((d) => d.severity === Severity.Error);
    const more = errors > 1 ? ` (and ${errors - 1} more error${errors === 2 ? '' : 's'}; run merge-studio check)` : '';
    throw new EngineError('bad-recipe', `${first ? formatDiagnostic(file, first) : `${file}: invalid recipe`}${more}`, abs);
  }
  return { file: abs, recipe: value as Recipe, diagnostics, resolve: (p) => resolveRecipePath(abs, p) };
}
