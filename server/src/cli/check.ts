/**
 * `merge-studio check <recipe> [--format human|json]`: the diagnostics the editor shows, from the same
 * checker. Human: `file:line:col: severity code: message` (1-based). JSON: LSP-shaped (0-based ranges).
 * Diagnostics and the result line go to stdout; exit code 1 (and the count as the reason on stderr) on errors.
 */
import type { Command } from 'commander';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { EngineError } from '../engine/errors';
import { checkRecipeText, countBySeverity, formatDiagnostic, readRecipeFile, type RecipeDiagnostic } from '../engine/recipe';
import { consoleOutput, type Output } from './common';

export interface CheckJson {
  file: string;
  uri: string;
  diagnostics: RecipeDiagnostic[];
  errorCount: number;
  warningCount: number;
}

/** Checks a recipe and prints the diagnostics; returns them. */
export async function printCheck(
  recipe: string,
  file: string,
  format: 'human' | 'json',
  out: Output = consoleOutput,
): Promise<RecipeDiagnostic[]> {
  const diagnostics = await checkRecipeText(await readRecipeFile(file), file);
  const { errors, warnings } = countBySeverity(diagnostics);
  if (format === 'json') {
    const json: CheckJson = { file, uri: pathToFileURL(file).href, diagnostics, errorCount: errors, warningCount: warnings };
    out.info(JSON.stringify(json, null, 2));
  } else {
    for (const d of diagnostics) out.info(formatDiagnostic(recipe, d));
    // The result line is output like the diagnostics (stdout); with errors the dispatcher also gives the reason on stderr.
    if (errors === 0) out.info(diagnostics.length === 0 ? `${recipe}: no problems` : `${recipe}: ${summary(errors, warnings)}`);
  }
  return diagnostics;
}

function summary(errors: number, warnings: number): string {
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  return `${plural(errors, 'error')}, ${plural(warnings, 'warning')}`;
}

export function registerCheckCommand(program: Command, out: Output = consoleOutput): void {
  program
    .command('check')
    .description('check a recipe: the same diagnostics the editor shows; exit code 1 on errors')
    .argument('<recipe>', 'the recipe (*.merge.yaml)')
    .option('--format <format>', 'human or json (LSP-shaped, 0-based ranges)', 'human')
    .action(async (recipe: string, opts: { format: string }) => {
      if (opts.format !== 'human' && opts.format !== 'json')
        throw new EngineError('bad-recipe', `--format must be human or json, got "${opts.format}"`);
      const file = path.resolve(recipe);
      const diagnostics = await printCheck(recipe, file, opts.format, out);
      const { errors, warnings } = countBySeverity(diagnostics);
      // The dispatcher turns a thrown EngineError into its one-line reason on stderr and exit code 1.
      if (errors > 0) throw new EngineError('bad-recipe', `${recipe}: ${summary(errors, warnings)}`, file);
    });
}
