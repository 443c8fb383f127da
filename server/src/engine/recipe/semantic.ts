/**
 * Recipe checks that read the disk (headers only, through the cached RecipeDisk): model folders hold a
 * supported config and a checkpoint, the two models are compatible (tensor names and shapes, sample and
 * frame rates), per-layer λ matches the layer count, override globs match tensors, probe audio and task
 * datasets exist and are well formed, and the output is safe to write (output-check.ts).
 */
import * as path from 'node:path';
import { describeHubCache } from '../io/hub';
import { diagnostic, Severity, type Range, type RecipeDiagnostic } from './diagnostics';
import type { PartialRecipe } from './crossfield';
import type { ModelInfo, RecipeDisk } from './disk';
import { rateMismatch } from '../model/rates';
import { globToRegExp } from './glob';
import { checkOutput } from './output-check';
import { pathKey, type NodeRanges } from './validate';

export const HF_PREFIX = 'hf:';

/** Absolute path of a path written in the recipe (relative to the recipe's folder). */
export function resolveRecipePath(recipeFile: string, p: string): string {
  return path.resolve(path.dirname(recipeFile), p);
}

/**
 * The folder a model reference names: a path relative to the recipe, or the cached snapshot of an `hf:`
 * reference (read without any network access); undefined for an `hf:` reference not cached yet.
 */
export function modelLocation(recipeFile: string, ref: string): string | undefined {
  if (!ref.startsWith(HF_PREFIX)) return resolveRecipePath(recipeFile, ref);
  const cached = describeHubCache(ref);
  return cached.cached ? cached.path : undefined;
}

/** Shows an absolute path inside an engine message the way the recipe wrote it. */
export function replacePath(message: string, absolute: string, asWritten: string): string {
  return message.split(absolute).join(asWritten);
}

const MAX_LISTED = 3;

export async function checkOnDisk(
  r: PartialRecipe,
  ranges: NodeRanges,
  recipeFile: string,
  diskCache: RecipeDisk,
): Promise<RecipeDiagnostic[]> {
  const out: RecipeDiagnostic[] = [];
  const disk = onePassView(diskCache);
  const valueAt = (...p: (string | number)[]) => ranges.value.get(pathKey(p));
  const keyAt = (...p: (string | number)[]) => ranges.key.get(pathKey(p));

  const modelChecks = (['anchor', 'other'] as const).map(async (role) => {
    const ref = r.models?.[role];
    const at = valueAt('models', role);
    if (ref === undefined || !at) return undefined;
    const location = modelLocation(recipeFile, ref);
    if (!location) {
      out.push(
        diagnostic(
          at,
          Severity.Information,
          'not-checked',
          `models.${role}: ${ref} is not in the Hugging Face cache yet; it is downloaded and checked when the recipe runs`,
        ),
      );
      return undefined;
    }
    const dir = location;
    const inspection = await disk.inspectModel(dir);
    if (inspection.ok) return inspection.model;
    out.push(
      diagnostic(
        at,
        Severity.Error,
        inspection.problem,
        `models.${role}: ${replacePath(inspection.message, dir, ref.replace(/[\\/]+$/, ''))}`,
      ),
    );
    return undefined;
  });

  const probeChecks = (r.probe?.audio ?? []).map(async (p, i) => {
    const at = valueAt('probe', 'audio', i);
    if (p === undefined || !at) return;
    const abs = resolveRecipePath(recipeFile, p);
    const kind = await disk.pathKind(abs);
    if (kind === 'missing') out.push(diagnostic(at, Severity.Error, 'path-not-found', `probe.audio[${i}]: ${p} does not exist`));
    else if (kind === 'special') {
      out.push(
        diagnostic(
          at,
          Severity.Error,
          'not-a-file',
          `probe.audio[${i}]: ${p} is not a regular file (it is ${(await disk.describeKind(abs)) ?? 'a special file'}); expected audio files or a folder of them`,
        ),
      );
    } else {
      const problem = kind === 'file' ? await disk.audioFileProblem(abs) : await disk.audioFolderProblem(abs);
      if (problem) out.push(diagnostic(at, Severity.Error, 'no-audio', `probe.audio[${i}]: ${replacePath(problem, abs, p)}`));
    }
  });

  const taskChecks = (r.evaluate?.tasks ?? []).map(async (t, i) => {
    const at = valueAt('evaluate', 'tasks', i, 'data');
    const data = t?.data;
    if (data === undefined || !at) return;
    const abs = resolveRecipePath(recipeFile, data);
    const kind = await disk.pathKind(abs);
    const name = `evaluate.tasks[${i}].data`;
    if (kind === 'missing') out.push(diagnostic(at, Severity.Error, 'path-not-found', `${name}: ${data} does not exist`));
    else if (kind === 'file' || kind === 'special') {
      const what = kind === 'file' ? 'a file' : ((await disk.describeKind(abs)) ?? 'a special file');
      out.push(diagnostic(at, Severity.Error, 'not-a-directory', `${name}: ${data} is ${what}; expected a folder with train/ and test/`));
    } else {
      const dataset = await disk.inspectDataset(abs);
      if (!dataset.ok)
        out.push(
          diagnostic(at, Severity.Error, 'bad-dataset', `${name}: ${replacePath(dataset.message, abs, data.replace(/[\\/]+$/, ''))}`),
        );
    }
  });

  const outputCheck = (async () => {
    const at = valueAt('output');
    if (at) out.push(...(await checkOutput(r, at, recipeFile)));
  })();

  const [anchor, other] = await Promise.all(modelChecks);
  await Promise.all([...probeChecks, ...taskChecks, outputCheck]);

  const otherAt = valueAt('models', 'other');
  if (anchor && other && otherAt) out.push(...compareModels(anchor, other, otherAt));
  if (anchor) out.push(...checkLambdaAgainst(anchor, r, valueAt, keyAt));
  return out;
}

/**
 * A view of the disk that asks each question once per check: many tasks often share one dataset folder, and
 * every cached answer still costs its file stamps.
 */
function onePassView(
  disk: RecipeDisk,
): Pick<RecipeDisk, 'pathKind' | 'describeKind' | 'inspectModel' | 'inspectDataset' | 'audioFolderProblem' | 'audioFileProblem'> {
  const memo = new Map<string, Promise<unknown>>();
  const once =
    <T>(kind: string, f: (p: string) => Promise<T>) =>
    (p: string): Promise<T> => {
      const key = `${kind}:${p}`;
      let hit = memo.get(key) as Promise<T> | undefined;
      if (!hit) memo.set(key, (hit = f(p)));
      return hit;
    };
  return {
    pathKind: once('kind', (p) => disk.pathKind(p)),
    inspectModel: once('model', (p) => disk.inspectModel(p)),
    inspectDataset: once('dataset', (p) => disk.inspectDataset(p)),
    describeKind: once('what', (p) => disk.describeKind(p)),
    audioFolderProblem: once('audio', (p) => disk.audioFolderProblem(p)),
    audioFileProblem: once('sniff', (p) => disk.audioFileProblem(p)),
  };
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Compatibility of the other model with the anchor; one diagnostic per kind of problem, first ones listed. */
export function compareModels(anchor: ModelInfo, other: ModelInfo, at: Range): RecipeDiagnostic[] {
  const out: RecipeDiagnostic[] = [];
  const a = anchor.config;
  const b = other.config;
  const rates = rateMismatch(a, b);
  if (rates) {
    // The root cause, once: a different conv stack also gives every conv tensor another shape.
    out.push(diagnostic(at, Severity.Error, 'sample-rate-mismatch', rates));
    return out;
  }
  if (a.preLayerNorm !== b.preLayerNorm) {
    const ln = (pre: boolean) => (pre ? 'pre-LN' : 'post-LN');
    out.push(
      diagnostic(
        at,
        Severity.Error,
        'incompatible-models',
        `models.other is ${ln(b.preLayerNorm)}, models.anchor is ${ln(a.preLayerNorm)}; both must use the same layer-norm placement`,
      ),
    );
  }
  const missing: string[] = [];
  const extra: string[] = [];
  const shapes: string[] = [];
  for (const [name, shape] of anchor.shapes) {
    const o = other.shapes.get(name);
    if (!o) missing.push(name);
    else if (shapeText(o) !== shapeText(shape)) shapes.push(`${name} is ${shapeText(shape)} in anchor, ${shapeText(o)} in other`);
  }
  for (const name of other.shapes.keys()) if (!anchor.shapes.has(name)) extra.push(name);
  const listed = (items: string[]) =>
    items.slice(0, MAX_LISTED).join('; ') + (items.length > MAX_LISTED ? `; …and ${items.length - MAX_LISTED} more` : '');
  if (shapes.length) {
    out.push(
      diagnostic(
        at,
        Severity.Error,
        'incompatible-models',
        `models.other does not match models.anchor: ${shapes.length} tensor${plural(shapes.length)} differ in shape: ${listed(shapes)}`,
      ),
    );
  }
  if (missing.length) {
    out.push(
      diagnostic(
        at,
        Severity.Error,
        'incompatible-models',
        `models.other lacks ${missing.length} tensor${plural(missing.length)} of models.anchor: ${listed(missing)}`,
      ),
    );
  }
  if (extra.length) {
    out.push(
      diagnostic(
        at,
        Severity.Error,
        'incompatible-models',
        `models.other has ${extra.length} tensor${plural(extra.length)} models.anchor lacks: ${listed(extra)}`,
      ),
    );
  }
  return out;
}

function checkLambdaAgainst(
  anchor: ModelInfo,
  r: PartialRecipe,
  valueAt: (...p: (string | number)[]) => Range | undefined,
  keyAt: (...p: (string | number)[]) => Range | undefined,
): RecipeDiagnostic[] {
  const out: RecipeDiagnostic[] = [];
  const lambda = r.merge?.lambda;
  const at = valueAt('merge', 'lambda');
  if (lambda === undefined || !at) return out;
  const layers = anchor.config.layers;
  if (Array.isArray(lambda) && lambda.length !== layers) {
    out.push(
      diagnostic(
        at,
        Severity.Error,
        'lambda-layer-count',
        `merge.lambda has ${lambda.length} value${plural(lambda.length)}; models.anchor has ${layers} transformer layer${plural(layers)}`,
      ),
    );
  }
  if (typeof lambda === 'object' && !Array.isArray(lambda) && lambda.overrides) {
    const names = [...anchor.shapes.keys()];
    for (const glob of Object.keys(lambda.overrides)) {
      const re = globToRegExp(glob);
      const keyRange = keyAt('merge', 'lambda', 'overrides', glob);
      if (keyRange && !names.some((n) => re.test(n))) {
        out.push(
          diagnostic(
            keyRange,
            Severity.Warning,
            'glob-matches-nothing',
            `merge.lambda.overrides: "${glob}" matches no tensor of models.anchor (e.g. ${names[names.length - 1]})`,
          ),
        );
      }
    }
  }
  return out;
}

const plural = (n: number) => (n === 1 ? '' : 's');
