/**
 * The output, checked at the start of a run before any compute: everything the recipe check says about `output:`
 * (no overlap with an input, only Merge Studio's own folder replaced, a usable path) is asked again, leftovers of a
 * stopped run are put right, and what only a run may do is tried: a file is created and removed
 * where the output goes (read-only mounts, root-squashed shares), and the free space must hold the merged model.
 * A run that would fail at the write stage fails here instead, minutes of statistics earlier.
 */
import { EngineError } from '../errors';
import { loadEncoderConfig } from '../io/hfconfig';
import { estimateOutputBytes, freeBytes, nearestExisting, outputPathProblem, probeWrite } from '../io/output-folder';
import { parameterCount } from '../model/weights';
import type { LoadedRecipe } from '../recipe/load';
import { outputProblems } from '../recipe/output-check';
import { modelLocation, resolveRecipePath } from '../recipe/semantic';
import { formatBytes } from './plan';
import { describeRecovery, planRecovery, recoverStagingLeftovers } from './staging';

export interface OutputGuardOptions {
  /** Report what recovery would do and skip the write test: nothing on disk changes. */
  dryRun?: boolean;
}

/** Throws an EngineError naming the output when it cannot or must not be written; returns what recovery did. */
export async function guardOutput(loaded: Pick<LoadedRecipe, 'file' | 'recipe'>, opts: OutputGuardOptions = {}): Promise<string[]> {
  const { file, recipe } = loaded;
  const output = recipe.output;
  const fail = (code: 'bad-recipe' | 'io-error', message: string) => new EngineError(code, `${file}: ${message}`, file);
  const bad = outputPathProblem(output);
  if (bad) throw fail('bad-recipe', `output ${JSON.stringify(output)} ${bad}`);
  const target = resolveRecipePath(file, output);

  const refuseProblems = async () => {
    const [problem] = await outputProblems(output, recipe, file);
    if (problem) throw fail(problem.code === 'output-not-writable' ? 'io-error' : 'bad-recipe', problem.message);
  };
  // A refused output is refused before anything on disk changes; a restored earlier output is looked at again.
  await refuseProblems();
  const recovery = opts.dryRun
    ? (await planRecovery(target)).map((a) => describeRecovery(target, a, false))
    : await recoverStagingLeftovers(target);
  if (recovery.length && !opts.dryRun) await refuseProblems();

  const parent = await nearestExisting(target);
  if (!opts.dryRun) {
    const reason = await probeWrite(parent.dir);
    if (reason) throw fail('io-error', `output ${output} cannot be created: cannot write in ${parent.dir} (${reason})`);
  }
  const needed = await estimatedOutputBytes(loaded);
  const free = needed === undefined ? undefined : await freeBytes(parent.dir);
  if (needed !== undefined && free !== undefined && free < needed) {
    throw fail(
      'io-error',
      `output ${output}: ${formatBytes(free)} free on the file system of ${parent.dir}; the merged model needs about ${formatBytes(needed)}`,
    );
  }
  return recovery;
}

/** Size of the output from the anchor's config (read again by the run; a config that cannot be read fails there). */
async function estimatedOutputBytes({ file, recipe }: Pick<LoadedRecipe, 'file' | 'recipe'>): Promise<number | undefined> {
  const dir = modelLocation(file, recipe.models.anchor);
  if (!dir) return undefined;
  try {
    // output_variants writes one more model per variant, in sub-folders; output_onnx the merged one again as ONNX.
    const models = 1 + (recipe.output_onnx ? 1 : 0) + (recipe.output_variants ? (recipe.variants?.length ?? 0) : 0);
    return models * estimateOutputBytes(parameterCount(await loadEncoderConfig(dir)));
  } catch {
    return undefined;
  }
}
