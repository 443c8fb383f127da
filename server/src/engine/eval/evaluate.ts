/**
 * Evaluate a frozen encoder on a list of classification tasks, as the paper does: for each task, per-layer
 * mean-pooled features of every train and held-out clip, linear probes (eval/probe-classifier.ts), accuracy on the
 * held-out clips; then the unweighted average over tasks.
 *
 * The held-out clips are the task's test split, or, with `split: 'validation'`, a seeded stratified quarter of its
 * train split (the probes then train on the other three quarters and test/ is never read): settings chosen on those
 * scores have not seen the test split. With `folds` K ≥ 2 the validation score is a stratified K-fold
 * cross-validation over train: every train clip is scored once, by probes trained on the other folds, so a choice
 * rests on all of train instead of a quarter (5 clips per class on the example, too few to rank close systems).
 *
 * The encoder is behind `EmbedFn`: a batch of mono waveforms at the model's rate in, one [layers+1, dim] row of
 * mean-pooled hidden states per clip out (hidden_states[0..L], each averaged over frames). The runner builds it from
 * the ONNX encoder; tests use synthetic features. Audio is decoded once by `loadEvalTasks` and shared by every model
 * evaluated on it (anchor, other, and each merge of the λ sweep). Each model embeds every clip of every task once,
 * in one pass ordered by length, so that a batch holds clips of one length (model/embed.ts runs each length apart).
 */
import { EngineError } from '../errors';
import { loadTaskDataset, type TaskDataset } from '../io/dataset';
import type { Tensor } from '../model/tensor';
import type { ProgressSink } from '../progress';
import { mulberry32 } from '../random';
import { runProbes, type ProbeOptions, type ProbeResult } from './probe-classifier';

/** Mean-pooled hidden states of each clip: a [batch, layers+1, dim] tensor, rows in the order of `audio`. */
export type EmbedFn = (audio: readonly Float32Array[]) => Promise<Tensor>;

/** Decodes one audio file to mono float samples at the model's rate (io/audio.ts `loadAudio` with the rate bound). */
export type AudioLoader = (file: string) => Promise<Float32Array>;

export interface EvalTaskSpec {
  name: string;
  /** Free text carried into the report (e.g. "speech", "music"). */
  domain?: string;
  /** The task folder (train/ and test/ with labels.csv), resolved against `baseDir`. */
  data: string;
}

export interface PreparedSplit {
  audio: Float32Array[];
  files: string[];
  labels: Int32Array;
}

/** Which clips a task's probes are scored on: test/, or a held-out part of train/ (test/ untouched). */
export type HeldOutSplit = 'test' | 'validation';

export const EVALUATION_SPLITS: readonly HeldOutSplit[] = ['test', 'validation'];

/** Fraction of each class's train clips held out for validation. */
export const VALIDATION_FRACTION = 0.25;

export interface PreparedTask {
  spec: EvalTaskSpec;
  dataset: TaskDataset;
  classes: string[];
  /** The clips the probes train on. */
  train: PreparedSplit;
  /** The clips the probes are scored on: the test split, or the validation part of train. */
  heldOut: PreparedSplit;
  heldOutSplit: HeldOutSplit;
  /** K-fold cross-validation: the fold of each `train` clip (`heldOut` is then empty: every train clip is scored). */
  folds?: { count: number; of: Int32Array };
}

export interface LoadTasksOptions {
  /** Score on test/ (default) or on a validation part carved out of train/. */
  split?: HeldOutSplit;
  /** Seeds the validation carve (default 0). */
  seed?: number;
  /** With split 'validation': 1 (default) holds out a quarter; K ≥ 2 cross-validates over K folds of train. */
  folds?: number;
  baseDir?: string;
  progress?: ProgressSink;
  signal?: AbortSignal;
}

/** Loads, checks and decodes every task's audio once. */
export async function loadEvalTasks(
  specs: readonly EvalTaskSpec[],
  loadAudio: AudioLoader,
  options: LoadTasksOptions = {},
): Promise<PreparedTask[]> {
  const names = new Set<string>();
  for (const s of specs) {
    if (names.has(s.name)) throw new EngineError('bad-dataset', `task "${s.name}" is listed twice`);
    names.add(s.name);
  }
  const split = options.split ?? 'test';
  const datasets: TaskDataset[] = [];
  for (const s of specs) datasets.push(await loadTaskDataset(s.data, options.baseDir));
  const total = datasets.reduce((k, d) => k + d.train.clips.length + (split === 'test' ? d.test.clips.length : 0), 0);
  let done = 0;
  const out: PreparedTask[] = [];
  for (let t = 0; t < specs.length; t++) {
    const ds = datasets[t]!;
    const index = new Map(ds.classes.map((c, i) => [c, i]));
    const prepare = async (clips: TaskDataset['train']['clips']): Promise<PreparedSplit> => {
      const audio: Float32Array[] = [];
      for (const c of clips) {
        checkCancel(options.signal);
        const samples = await loadAudio(c.file);
        if (samples.length === 0) throw new EngineError('bad-audio', `${c.file}: no audio samples`, c.file);
        audio.push(samples);
        done++;
        if (done % 50 === 0 || done === total) {
          options.progress?.({ type: 'progress', stage: 'evaluate', done, total, message: 'decoding evaluation audio' });
        }
      }
      return { audio, files: clips.map((c) => c.file), labels: Int32Array.from(clips, (c) => index.get(c.label)!) };
    };
    const train = await prepare(ds.train.clips);
    const common = { spec: specs[t]!, dataset: ds, classes: ds.classes };
    if (split === 'test') out.push({ ...common, train, heldOut: await prepare(ds.test.clips), heldOutSplit: 'test' });
    else if ((options.folds ?? 1) >= 2) {
      const folds = options.folds!;
      if (train.audio.length < folds) {
        throw new EngineError('bad-dataset', `${ds.train.csv}: ${train.audio.length} train clips cannot fill ${folds} folds`, ds.train.csv);
      }
      const of = assignFolds(train.labels, ds.classes.length, folds, (options.seed ?? 0) * 7919 + t);
      out.push({
        ...common,
        train,
        heldOut: { audio: [], files: [], labels: new Int32Array(0) },
        heldOutSplit: 'validation',
        folds: { count: folds, of },
      });
    } else {
      const carved = carveValidation(train, ds.classes.length, (options.seed ?? 0) * 7919 + t);
      if (carved.heldOut.audio.length === 0) {
        throw new EngineError(
          'bad-dataset',
          `${ds.train.csv}: too few clips to hold out a validation part (a class needs at least 2 train clips)`,
          ds.train.csv,
        );
      }
      out.push({ ...common, ...carved, heldOutSplit: 'validation' });
    }
  }
  return out;
}

/**
 * Splits train into a probe-training part and a validation part: per class, a seeded shuffle holds out
 * round(VALIDATION_FRACTION · count) clips (at least one, and never a class's last clip); both parts keep train order.
 */
export function carveValidation(train: PreparedSplit, classes: number, seed: number): { train: PreparedSplit; heldOut: PreparedSplit } {
  const rand = mulberry32((seed ^ 0x7a11d) >>> 0);
  const held = new Uint8Array(train.labels.length);
  for (let c = 0; c < classes; c++) {
    const members: number[] = [];
    train.labels.forEach((y, i) => y === c && members.push(i));
    const take = members.length < 2 ? 0 : Math.min(members.length - 1, Math.max(1, Math.round(VALIDATION_FRACTION * members.length)));
    for (let k = members.length - 1; k > 0; k--) {
      const j = Math.floor(rand() * (k + 1));
      [members[k], members[j]] = [members[j]!, members[k]!];
    }
    for (const i of members.slice(0, take)) held[i] = 1;
  }
  const part = (keep: number): PreparedSplit => {
    const rows = [...held.keys()].filter((i) => held[i] === keep);
    return {
      audio: rows.map((i) => train.audio[i]!),
      files: rows.map((i) => train.files[i]!),
      labels: Int32Array.from(rows, (i) => train.labels[i]!),
    };
  };
  return { train: part(0), heldOut: part(1) };
}

/**
 * Stratified fold assignment: per class, a seeded shuffle deals the class's clips to folds 0, 1, …, K−1 in turn, so
 * every fold holds about 1/K of each class.
 */
export function assignFolds(labels: Int32Array, classes: number, folds: number, seed: number): Int32Array {
  const rand = mulberry32((seed ^ 0xf01d5) >>> 0);
  const of = new Int32Array(labels.length);
  let next = 0;
  for (let c = 0; c < classes; c++) {
    const members: number[] = [];
    labels.forEach((y, i) => y === c && members.push(i));
    for (let k = members.length - 1; k > 0; k--) {
      const j = Math.floor(rand() * (k + 1));
      [members[k], members[j]] = [members[j]!, members[k]!];
    }
    // Continue the deal where the previous class stopped, so small classes do not all land in the first folds.
    for (const i of members) of[i] = next++ % folds;
  }
  return of;
}

export interface EvaluateOptions {
  probe?: ProbeOptions;
  /** Clips per embed call (default 16). */
  batchSize?: number;
  /** Names the model in progress messages. */
  label?: string;
  progress?: ProgressSink;
  signal?: AbortSignal;
}

export interface TaskScore {
  name: string;
  domain?: string;
  metric: 'accuracy';
  /** Held-out accuracy of the weighted-sum-of-layers probe. */
  score: number;
  /** Which clips `score` is measured on. */
  split: HeldOutSplit;
  /** Held-out accuracy of a probe on each of hidden_states[0..L] (empty unless `probe.perLayer`). */
  perLayer: number[];
  layerWeights: number[];
  trainAccuracy: number;
  classes: number;
  trainClips: number;
  heldOutClips: number;
}

export interface ModelEvaluation {
  tasks: TaskScore[];
  /** Unweighted mean of the task scores. */
  average: number;
}

/** Embeds every clip of every task with `embed` (one pass, in length order), trains the probes, scores them. */
export async function evaluateModel(
  embed: EmbedFn,
  tasks: readonly PreparedTask[],
  options: EvaluateOptions = {},
): Promise<ModelEvaluation> {
  if (tasks.length === 0) throw new EngineError('bad-recipe', 'evaluate: no tasks');
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? 16));
  const label = options.label ? `${options.label}: ` : '';
  const splits = tasks.flatMap((task) => [
    { task, split: task.train },
    { task, split: task.heldOut },
  ]);
  // Every clip once; a stable sort by length keeps equal lengths in split order.
  const clips = splits.flatMap(({ task, split }, s) =>
    split.audio.map((audio, row) => ({ audio, task, split: s, row, file: split.files[row]! })),
  );
  const order = clips.map((_, i) => i).sort((i, j) => clips[i]!.audio.length - clips[j]!.audio.length);
  const features: (Float32Array | undefined)[] = splits.map(() => undefined);
  let shape: { layers: number; dim: number } | undefined;
  for (let start = 0; start < order.length; start += batchSize) {
    checkCancel(options.signal);
    const batch = order.slice(start, start + batchSize).map((i) => clips[i]!);
    const t = await embed(batch.map((c) => c.audio));
    if (t.shape.length !== 3 || t.shape[0] !== batch.length) {
      throw new EngineError(
        'runtime-error',
        `embed returned [${t.shape.join(', ')}] for a batch of ${batch.length} clips; expected [${batch.length}, layers, dim]`,
      );
    }
    const layers = t.shape[1]!;
    const dim = t.shape[2]!;
    if (!shape) shape = { layers, dim };
    else if (shape.layers !== layers || shape.dim !== dim) {
      throw new EngineError('runtime-error', `embed returned rows of [${layers}, ${dim}] after rows of [${shape.layers}, ${shape.dim}]`);
    }
    const row = layers * dim;
    batch.forEach((c, r) => {
      const values = t.data.subarray(r * row, (r + 1) * row);
      if (!allFinite(values)) {
        throw new EngineError('non-finite', `${c.file}: the model's pooled features are not finite (task ${c.task.spec.name})`, c.file);
      }
      const out = (features[c.split] ??= new Float32Array(splits[c.split]!.split.audio.length * row));
      out.set(values, c.row * row);
    });
    const done = Math.min(start + batchSize, order.length);
    options.progress?.({
      type: 'progress',
      stage: 'evaluate',
      done,
      total: order.length,
      message: `${label}${batch.at(-1)!.task.spec.name}`,
    });
  }

  const scores: TaskScore[] = [];
  for (const [t, task] of tasks.entries()) {
    checkCancel(options.signal);
    const tensor = (s: number): Tensor => ({ shape: [splits[s]!.split.audio.length, shape!.layers, shape!.dim], data: features[s]! });
    const r: ProbeResult & { trainClips?: number } = task.folds
      ? await crossValidate(tensor(2 * t), task.train.labels, task.folds, task.classes.length, options)
      : await runProbes(
          { features: tensor(2 * t), labels: task.train.labels },
          { features: tensor(2 * t + 1), labels: task.heldOut.labels },
          task.classes.length,
          options.probe,
        );
    scores.push({
      name: task.spec.name,
      ...(task.spec.domain !== undefined ? { domain: task.spec.domain } : {}),
      metric: 'accuracy',
      score: r.accuracy,
      split: task.heldOutSplit,
      perLayer: r.perLayer,
      layerWeights: r.layerWeights,
      trainAccuracy: r.trainAccuracy,
      classes: task.classes.length,
      trainClips: r.trainClips ?? task.train.audio.length,
      heldOutClips: task.folds ? task.train.audio.length : task.heldOut.audio.length,
    });
  }
  return { tasks: scores, average: mean(scores.map((s) => s.score)) };
}

/**
 * K-fold cross-validation of the probes on one task's train features: accuracies pooled over the folds (each clip
 * counts once), layer weights and train accuracy averaged over them; `trainClips` is the mean probe-training size.
 */
async function crossValidate(
  features: Tensor,
  labels: Int32Array,
  folds: { count: number; of: Int32Array },
  classes: number,
  options: EvaluateOptions,
): Promise<ProbeResult & { trainClips: number }> {
  const row = features.shape[1]! * features.shape[2]!;
  const rowsWhere = (keep: (i: number) => boolean): { features: Tensor; labels: Int32Array } => {
    const rows = [...labels.keys()].filter(keep);
    const data = new Float32Array(rows.length * row);
    rows.forEach((i, r) => data.set(features.data.subarray(i * row, (i + 1) * row), r * row));
    return {
      features: { shape: [rows.length, features.shape[1]!, features.shape[2]!], data },
      labels: Int32Array.from(rows, (i) => labels[i]!),
    };
  };
  let correct = 0;
  let perLayerCorrect: number[] = [];
  let layerWeights: number[] = [];
  let trainAccuracy = 0;
  let trainClips = 0;
  for (let f = 0; f < folds.count; f++) {
    checkCancel(options.signal);
    const train = rowsWhere((i) => folds.of[i] !== f);
    const held = rowsWhere((i) => folds.of[i] === f);
    const r = await runProbes(train, held, classes, options.probe);
    const n = held.labels.length;
    correct += Math.round(r.accuracy * n);
    perLayerCorrect = r.perLayer.map((a, l) => (perLayerCorrect[l] ?? 0) + Math.round(a * n));
    layerWeights = r.layerWeights.map((w, l) => (layerWeights[l] ?? 0) + w / folds.count);
    trainAccuracy += r.trainAccuracy / folds.count;
    trainClips += train.labels.length / folds.count;
  }
  const total = labels.length;
  return {
    accuracy: correct / total,
    perLayer: perLayerCorrect.map((c) => c / total),
    layerWeights,
    trainAccuracy,
    trainClips: Math.round(trainClips),
  };
}

/** Mean and spread of repeated runs (e.g. the same evaluation over several seeds). */
export interface Spread {
  mean: number;
  /** Sample standard deviation (n−1); 0 for a single run. */
  std: number;
  min: number;
  max: number;
  runs: number;
}

export function spreadOf(values: readonly number[]): Spread {
  if (values.length === 0) throw new RangeError('spreadOf: no values');
  const m = mean(values);
  const ss = values.reduce((k, v) => k + (v - m) * (v - m), 0);
  return {
    mean: m,
    std: values.length > 1 ? Math.sqrt(ss / (values.length - 1)) : 0,
    min: Math.min(...values),
    max: Math.max(...values),
    runs: values.length,
  };
}

/** Whether every value is finite (a loop: `every(Number.isFinite)` made a call per value of every clip). */
function allFinite(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function checkCancel(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new EngineError('cancelled', 'evaluation cancelled');
}
