/**
 * The recipe's `output:` against the disk, as diagnostics on the `output:` value: the run's inputs (the recipe
 * itself, model folders, probe audio, evaluation data, the Hugging Face cache) must not be the output, lie inside
 * it or contain it; an existing folder must be one Merge Studio wrote (or empty); the folder the output goes into
 * must be writable. The same list of inputs guards the run itself (pipeline/output-guard.ts).
 */
import * as path from 'node:path';
import { hubCacheDir } from '../io/hub';
import {
  inspectOutputFolder,
  nearestExisting,
  outputPathProblem,
  overlappingInput,
  writeAccessProblem,
  type RunInput,
} from '../io/output-folder';
import type { PartialRecipe } from './crossfield';
import { diagnostic, Severity, type Range, type RecipeDiagnostic } from './diagnostics';
import { HF_PREFIX, modelLocation, resolveRecipePath } from './semantic';

/** Everything a run reads from disk, by the name a message gives it. */
export function recipeInputs(r: PartialRecipe, recipeFile: string): RunInput[] {
  const inputs: RunInput[] = [];
  for (const role of ['anchor', 'other'] as const) {
    const ref = r.models?.[role];
    if (typeof ref !== 'string') continue;
    const location = modelLocation(recipeFile, ref);
    if (location)
      inputs.push({
        name: `models.${role}`,
        shown: ref,
        path: location,
        what: ref.startsWith(HF_PREFIX) ? 'a cached Hub model' : 'an input model',
      });
  }
  (r.probe?.audio ?? []).forEach((p, i) => {
    if (typeof p === 'string')
      inputs.push({ name: `probe.audio[${i}]`, shown: p, path: resolveRecipePath(recipeFile, p), what: 'probe audio' });
  });
  (r.evaluate?.tasks ?? []).forEach((t, i) => {
    if (typeof t?.data === 'string')
      inputs.push({
        name: `evaluate.tasks[${i}].data`,
        shown: t.data,
        path: resolveRecipePath(recipeFile, t.data),
        what: 'evaluation data',
      });
  });
  inputs.push({ name: 'the recipe', shown: path.basename(recipeFile), path: path.resolve(recipeFile), what: 'the recipe' });
  inputs.push({ name: 'the Hugging Face cache', shown: '', path: hubCacheDir(), what: 'files in the Hugging Face cache' });
  return inputs;
}

/** Why the output may not be written, as "output X …" sentences with their diagnostic codes; empty when fine. */
export async function outputProblems(
  output: string,
  r: PartialRecipe,
  recipeFile: string,
): Promise<
  { code: 'output-bad-path' | 'output-overwrites-input' | 'not-a-directory' | 'output-not-ours' | 'output-not-writable'; message: string }[]
> {
  const bad = outputPathProblem(output);
  if (bad) return [{ code: 'output-bad-path', message: `output ${JSON.stringify(output)} ${bad}` }];
  const target = resolveRecipePath(recipeFile, output);
  // Asked together (the editor asks on every edit), reported in order of importance.
  const [input, state, parent] = await Promise.all([
    overlappingInput(target, recipeInputs(r, recipeFile)),
    inspectOutputFolder(target),
    nearestExisting(target),
  ]);
  if (input)
    return [
      {
        code: 'output-overwrites-input',
        message: `output ${output} overlaps ${input.name}${input.shown ? ` (${input.shown})` : ''}; the run would overwrite ${input.what}`,
      },
    ];
  if (state.kind === 'refused') {
    if (state.reason === 'exists and is not a folder')
      return [{ code: 'not-a-directory', message: `output ${output} is an existing file; expected a folder` }];
    return [{ code: 'output-not-ours', message: `output ${output} ${state.reason}` }];
  }
  const shown = shownPath(parent.dir, output, recipeFile);
  if (parent.kind === 'not-a-folder')
    return [{ code: 'output-not-writable', message: `output ${output} cannot be created: ${shown} is not a folder` }];
  const unwritable = parent.kind === 'unreachable' ? parent.reason : await writeAccessProblem(parent.dir);
  if (unwritable)
    return [{ code: 'output-not-writable', message: `output ${output} cannot be created: cannot write in ${shown} (${unwritable})` }];
  return [];
}

/** A path the way the recipe names the output: relative to the recipe's folder unless the output is absolute. */
function shownPath(p: string, output: string, recipeFile: string): string {
  return path.isAbsolute(output) ? p : path.relative(path.dirname(recipeFile), p) || '.';
}

/** The diagnostics of `output:` (at its value's range). */
export async function checkOutput(r: PartialRecipe, at: Range, recipeFile: string): Promise<RecipeDiagnostic[]> {
  if (typeof r.output !== 'string') return [];
  return (await outputProblems(r.output, r, recipeFile)).map((p) => diagnostic(at, Severity.Error, p.code, p.message));
}
