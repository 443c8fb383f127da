/**
 * Evaluate a frozen encoder on a list of classification tasks, as the paper does: for each task, per-layer
 * mean-pooled features of every train and test clip, linear probes (eval/probe-classifier.ts), accuracy on the test
 * split; then the unweighted average over tasks.
 *
 * The encoder is behind `EmbedFn`: a batch of mono waveforms at the model's rate in, one [layers+1, dim] row of
 * mean-pooled hidden states per clip out (hidden_states[0..L], each averaged over frames). The runner builds it from
 * the ONNX encoder; tests use synthetic features. Audio is decoded once by `loadEvalTasks` and shared by every model
 * evaluated on it (anchor, other, and each merge of the λ sweep).
 */
import { EngineError } from '../errors';
import { loadTaskDataset, type TaskDataset } from '../io/dataset';
import type { Tensor } from '../model/tensor';
import type { CancelToken, ProgressSink } from '../progress';
import { runProbes, type ProbeOptions } from './probe-classifier';

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

export interface PreparedTask {
  spec: EvalTaskSpec;
  dataset: TaskDataset;
  classes: string[];
  train: PreparedSplit;
  test: PreparedSplit;
}

export interface LoadTasksOptions {
  baseDir?: string;
  progress?: ProgressSink;
  cancel?: CancelToken;
}

/** Loads, checks and decodes every task's audio once. */
export async function loadEvalTasks(specs: readonly EvalTaskSpec[], loadAudio: AudioLoader, options: LoadTasksOptions = {}): Promise<PreparedTask[]> {
  const names = new Set<string>();
  for (const s of specs) {
    if (names.has(s.name)) throw new EngineError('bad-dataset', `task "${s.name}" is listed twice`);
    names.add(s.name);
  }
  const datasets: TaskDataset[] = [];
  for (const s of specs) datasets.push(await loadTaskDataset(s.data, options.baseDir));
  const total = datasets.reduce((k, d) => k + d.train.clips.length + d.test.clips.length, 0);
  let done = 0;
  const out: PreparedTask[] = [];
  for (let t = 0; t < specs.length; t++) {
    const ds = datasets[t]!;
    const index = new Map(ds.classes.map((c, i) => [c, i]));
    const prepare = async (clips: TaskDataset['train']['clips']): Promise<PreparedSplit> => {
      const audio: Float32Array[] = [];
      for (const c of clips) {
        checkCancel(options.cancel);
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
    const test = await prepare(ds.test.clips);
    out.push({ spec: specs[t]!, dataset: ds, classes: ds.classes, train, test });
  }
  return out;
}

export interface EvaluateOptions {
  probe?: ProbeOptions;
  /** Clips per embed call (default 16). */
  batchSize?: number;
  /** Names the model in progress messages. */
  label?: string;
  progress?: ProgressSink;
  cancel?: CancelToken;
}

export interface TaskScore {
  name: string;
  domain?: string;
  metric: 'accuracy';
  /** Test accuracy of the weighted-sum-of-layers probe. */
  score: number;
  /** Test accuracy of a probe on each of hidden_states[0..L] (empty unless `probe.perLayer`). */
  perLayer: number[];
  layerWeights: number[];
  trainAccuracy: number;
  classes: number;
  trainClips: number;
  testClips: number;
}

export interface ModelEvaluation {
  tasks: TaskScore[];
  /** Unweighted mean of the task scores. */
  average: number;
}

/** Embeds every clip of every task with `embed`, trains the probes, scores them. */
export async function evaluateModel(embed: EmbedFn, tasks: readonly PreparedTask[], options: EvaluateOptions = {}): Promise<ModelEvaluation> {
  if (tasks.length === 0) throw new EngineError('bad-recipe', 'evaluate: no tasks');
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? 16));
  const total = tasks.reduce((k, t) => k + t.train.audio.length + t.test.audio.length, 0);
  let done = 0;
  const label = options.label ? `${options.label}: ` : '';
  let shape: { layers: number; dim: number } | undefined;
  const features = async (task: PreparedTask, split: PreparedSplit): Promise<Tensor> => {
    const n = split.audio.length;
    let out: Float32Array | undefined;
    for (let start = 0; start < n; start += batchSize) {
      checkCancel(options.cancel);
      const batch = split.audio.slice(start, start + batchSize);
      const t = await embed(batch);
      if (t.shape.length !== 3 || t.shape[0] !== batch.length) {
        throw new EngineError('runtime-error', `embed returned [${t.shape.join(', ')}] for a batch of ${batch.length} clips; expected [${batch.length}, layers, dim]`);
      }
      const layers = t.shape[1]!;
      const dim = t.shape[2]!;
      if (!shape) shape = { layers, dim };
      else if (shape.layers !== layers || shape.dim !== dim) {
        throw new EngineError('runtime-error', `embed returned rows of [${layers}, ${dim}] after rows of [${shape.layers}, ${shape.dim}]`);
      }
      const row = layers * dim;
      for (let k = 0; k < t.data.length; k++) {
        if (!Number.isFinite(t.data[k]!)) {
          const file = split.files[start + Math.floor(k / row)]!;
          throw new EngineError('non-finite', `${file}: the model's pooled features are not finite (task ${task.spec.name})`, file);
        }
      }
      out ??= new Float32Array(n * row);
      out.set(t.data, start * row);
      done += batch.length;
      options.progress?.({ type: 'progress', stage: 'evaluate', done, total, message: `${label}${task.spec.name}` });
    }
    return { shape: [n, shape!.layers, shape!.dim], data: out! };
  };

  const scores: TaskScore[] = [];
  for (const task of tasks) {
    const train = await features(task, task.train);
    const test = await features(task, task.test);
    checkCancel(options.cancel);
    const r = runProbes({ features: train, labels: task.train.labels }, { features: test, labels: task.test.labels }, task.classes.length, options.probe);
    scores.push({
      name: task.spec.name,
      ...(task.spec.domain !== undefined ? { domain: task.spec.domain } : {}),
      metric: 'accuracy',
      score: r.accuracy,
      perLayer: r.perLayer,
      layerWeights: r.layerWeights,
      trainAccuracy: r.trainAccuracy,
      classes: task.classes.length,
      trainClips: task.train.audio.length,
      testClips: task.test.audio.length,
    });
  }
  return { tasks: scores, average: mean(scores.map((s) => s.score)) };
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
  return { mean: m, std: values.length > 1 ? Math.sqrt(ss / (values.length - 1)) : 0, min: Math.min(...values), max: Math.max(...values), runs: values.length };
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function checkCancel(cancel: CancelToken | undefined): void {
  if (cancel?.cancelled) throw new EngineError('cancelled', 'evaluation cancelled');
}
