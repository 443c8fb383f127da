/**
 * `merge-studio clean <recipe…>`: puts right what a stopped run (killed, power loss) left beside a recipe's output:
 * the earlier output is restored if it exists only under its hidden name, every other hidden staging folder is
 * removed. The same recovery runs at the start of every run; this command is for outputs that will not be run again.
 */
import type { Command } from 'commander';
import { EngineError } from '../engine/errors';
import { outputPathProblem } from '../engine/io/output-folder';
import { describeRecovery, planRecovery, recoverStagingLeftovers } from '../engine/pipeline/staging';
import { checkStructure, readRecipeFile, resolveRecipePath } from '../engine/recipe';
import * as path from 'node:path';
import type { Output } from './common';

/** The output folder a recipe names, read from its text alone (the rest of the recipe may be broken). */
export async function recipeOutputFolder(recipe: string): Promise<string> {
  const file = path.resolve(recipe);
  const partial = checkStructure(await readRecipeFile(file)).validation.partial as { output?: unknown } | undefined;
  const output = partial?.output;
  if (typeof output !== 'string') throw new EngineError('bad-recipe', `${recipe}: has no usable output: value`, file);
  const bad = outputPathProblem(output);
  if (bad) throw new EngineError('bad-recipe', `${recipe}: output ${JSON.stringify(output)} ${bad}`, file);
  return resolveRecipePath(file, output);
}

/** Lines saying what recovery did (or, with `dryRun`, would do) beside a recipe's output. */
export async function cleanOutput(recipe: string, dryRun: boolean): Promise<string[]> {
  const target = await recipeOutputFolder(recipe);
  if (dryRun) return (await planRecovery(target)).map((a) => describeRecovery(target, a, false));
  return recoverStagingLeftovers(target);
}

export function registerCleanCommand(program: Command, out: Output): void {
  program
    .command('clean')
    .description("restore or remove the hidden folders a stopped run left beside each recipe's output")
    .argument('<recipes...>', 'recipes (*.merge.yaml) whose outputs to clean up')
    .option('--dry-run', 'say what would be done, change nothing')
    .action(async (recipes: string[], opts: { dryRun?: boolean }) => {
      for (const recipe of recipes) {
        const lines = await cleanOutput(recipe, !!opts.dryRun);
        if (lines.length === 0) out.info(`${recipe}: nothing left behind beside ${await recipeOutputFolder(recipe)}`);
        for (const line of lines) out.info(`${recipe}: ${line}`);
      }
    });
}
