/**
 * Loading a recipe for a run: read, check (all checks, as the editor shows them) and return the typed Recipe,
 * or fail with one EngineError that points at the first error as `file:line:col`.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EngineError } from '../errors';
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

export async function readRecipeFile(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new EngineError('file-not-found', `recipe ${file} does not exist`, file, { cause: e });
    if (code === 'EISDIR') throw new EngineError('not-a-directory', `recipe ${file} is a folder; expected a .merge.yaml file`, file, { cause: e });
    throw new EngineError('io-error', `cannot read recipe ${file}: ${code ?? (e as Error).message}`, file, { cause: e });
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
