import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../server/src/engine/errors';
import { evaluateModel, loadEvalTasks, spreadOf, type EmbedFn } from '../../server/src/engine/eval/evaluate';
import { fitStandardiser, runProbes, trainLogistic, predictLinear, accuracyOf } from '../../server/src/engine/eval/probe-classifier';
import type { Tensor } from '../../server/src/engine/model/tensor';
import type { JobEvent } from '../../server/src/engine/progress';

/** Seeded normal samples (mulberry32 + Box–Muller). */
function normals(seed: number): () => number {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(Math.max(u(), 1e-12))) * Math.cos(2 * Math.PI * u());
}

/**
 * n rows of [layers, dim] Gaussian noise; on layer `informative` the class mean (a random unit-ish direction per
 * class times `separation`) is added. Labels cycle through the classes.
 */
function synthetic(
  n: number,
  layers: number,
  dim: number,
  classes: number,
  informative: number,
  separation: number,
  seed: number,
  means?: Float64Array,
) {
  const g = normals(seed);
  const mu = means ?? Float64Array.from({ length: classes * dim }, normals(1000 + classes + dim));
  const data = new Float32Array(n * layers * dim);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const y = i % classes;
    labels[i] = y;
    for (let l = 0; l < layers; l++) {
      for (let d = 0; d < dim; d++) {
        const shift = l === informative ? (separation * mu[y * dim + d]!) / Math.sqrt(dim) : 0;
        data[(i * layers + l) * dim + d] = g() + shift + 3 * l; // offsets per layer: standardisation must remove them
      }
    }
  }
  return { features: { shape: [n, layers, dim], data } as Tensor, labels, means: mu };
}

describe('linear probes', () => {
  it('separable classes → accuracy 1, on the informative layer and the weighted sum', async () => {
    const tr = synthetic(200, 4, 16, 5, 2, 12, 1);
    const te = synthetic(100, 4, 16, 5, 2, 12, 2, tr.means);
    const r = await runProbes(tr, te, 5, { perLayer: true });
    expect(r.accuracy).toBe(1);
    expect(r.trainAccuracy).toBe(1);
    expect(r.perLayer[2]).toBe(1);
    // the other layers are pure noise: near chance (0.2)
    for (const l of [0, 1, 3]) expect(r.perLayer[l]!).toBeLessThan(0.4);
    // the learned layer weights favour the informative layer
    expect(r.layerWeights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 10);
    expect(Math.max(...r.layerWeights)).toBe(r.layerWeights[2]);
    expect(r.layerWeights[2]!).toBeGreaterThan(0.4);
  });

  it('shuffled labels → near chance on test, although train is partly memorised', async () => {
    const tr = synthetic(240, 3, 24, 4, 1, 12, 3);
    const te = synthetic(400, 3, 24, 4, 1, 12, 4, tr.means);
    // break the link between features and labels: a seeded permutation of the train labels
    const g = normals(7);
    const keys = Array.from(tr.labels, () => g());
    const order = keys.map((_, i) => i).sort((a, b) => keys[a]! - keys[b]!);
    const shuffled = Int32Array.from(order, (i) => tr.labels[i]!);
    const r = await runProbes({ features: tr.features, labels: shuffled }, te, 4);
    expect(r.trainAccuracy).toBeGreaterThan(0.3); // some memorisation of the noise, above chance
    expect(Math.abs(r.accuracy - 0.25)).toBeLessThan(0.08);
    // and the same data with true labels is solved: the test above fails for the right reason
    expect((await runProbes(tr, te, 4)).accuracy).toBe(1);
  });

  it('is a pure function of data and seed', async () => {
    const tr = synthetic(60, 2, 8, 3, 0, 1.5, 5);
    const te = synthetic(60, 2, 8, 3, 0, 1.5, 6, tr.means);
    const a = await runProbes(tr, te, 3, { seed: 4 });
    const b = await runProbes(tr, te, 3, { seed: 4 });
    expect(a).toEqual(b);
  });

  it('logistic regression recovers a known linear rule; standardisation ignores constant features', async () => {
    const n = 300;
    const x = new Float64Array(n * 3);
    const y = new Int32Array(n);
    const g = normals(11);
    for (let i = 0; i < n; i++) {
      x[i * 3] = g();
      x[i * 3 + 1] = 5; // constant
      x[i * 3 + 2] = g();
      y[i] = x[i * 3]! + 0.5 * x[i * 3 + 2]! > 0 ? 1 : 0;
    }
    const std = fitStandardiser(x, n, 3);
    expect(std.invStd[1]).toBe(0);
    const xs = std.apply(x, n);
    const model = await trainLogistic(xs, n, 3, y, 2);
    expect(accuracyOf(predictLinear(model, xs, n), y)).toBeGreaterThan(0.97);
    // weight direction: class 1 − class 0 column ∝ (1, ·, 0.5)
    const dw = (d: number) => model.weights[d * 2 + 1]! - model.weights[d * 2]!;
    expect(Math.abs(dw(1))).toBeLessThan(1e-3 * Math.abs(dw(0))); // only the L2 pull acts on it
    expect(dw(2) / dw(0)).toBeGreaterThan(0.3);
    expect(dw(2) / dw(0)).toBeLessThan(0.8);
  });

  it('refuses mismatched shapes and out-of-range labels', async () => {
    const tr = synthetic(10, 2, 4, 2, 0, 1, 1);
    const te = synthetic(10, 3, 4, 2, 0, 1, 2);
    await expect(runProbes(tr, te, 2)).rejects.toThrow(/test features are \[10, 3, 4\], train features \[10, 2, 4\]/);
    await expect(runProbes({ features: tr.features, labels: new Int32Array(10).fill(2) }, tr, 2)).rejects.toThrow(
      /label 2 at row 0 is outside 0\.\.1/,
    );
  });
});

describe('evaluateModel', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'ms-eval-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  /** A task whose clip files are empty placeholders; the loader below turns a name like `c2-07.wav` into audio. */
  function makeTask(name: string, classes: number, train: number, test: number): string {
    const dir = path.join(root, name);
    for (const [split, per] of [
      ['train', train],
      ['test', test],
    ] as const) {
      mkdirSync(path.join(dir, split), { recursive: true });
      const rows = ['file,label'];
      for (let c = 0; c < classes; c++) {
        for (let i = 0; i < per; i++) {
          const f = `c${c}-${split}-${i}.wav`;
          writeFileSync(path.join(dir, split, f), '');
          rows.push(`${f},class${c}`);
        }
      }
      writeFileSync(path.join(dir, split, 'labels.csv'), rows.join('\n') + '\n');
    }
    return dir;
  }

  /** "Audio": 64 samples of noise whose mean is the class index (from the file name) on `signal` tasks. */
  const loader = (signal: boolean) => async (file: string) => {
    const base = path.basename(file);
    const c = Number(/^c(\d+)-/.exec(base)![1]);
    let h = 0;
    for (const ch of base) h = (Math.imul(h, 31) + ch.charCodeAt(0)) >>> 0;
    const g = normals(h);
    return Float32Array.from({ length: 64 }, () => (signal ? c : 0) + 0.05 * g());
  };

  /** A fake encoder: 3 "layers" × 4 dims of pooled statistics; only layer 1 sees the mean. */
  const embed: EmbedFn = async (audio) => {
    const data = new Float32Array(audio.length * 12);
    audio.forEach((a, i) => {
      const m = a.reduce((s, v) => s + v, 0) / a.length;
      const g = normals(Math.round(m * 1000) + i);
      for (let d = 0; d < 4; d++) {
        data[i * 12 + d] = g();
        data[i * 12 + 4 + d] = m * (d + 1) + 0.01 * g();
        data[i * 12 + 8 + d] = g();
      }
    });
    return { shape: [audio.length, 3, 4], data };
  };

  it('scores each task and averages them; progress reaches the total', async () => {
    makeTask('easy', 3, 8, 5);
    makeTask('easy2', 2, 6, 4);
    const events: JobEvent[] = [];
    const tasks = await loadEvalTasks(
      [
        { name: 'easy', domain: 'speech', data: 'easy' },
        { name: 'easy2', data: path.join(root, 'easy2') },
      ],
      loader(true),
      { baseDir: root },
    );
    expect(tasks.map((t) => [t.classes.length, t.train.audio.length, t.heldOut.audio.length])).toEqual([
      [3, 24, 15],
      [2, 12, 8],
    ]);
    const r = await evaluateModel(embed, tasks, {
      batchSize: 5,
      progress: (e) => events.push(e),
      label: 'fake',
      probe: { perLayer: true },
    });
    expect(r.tasks.map((t) => [t.name, t.domain, t.score])).toEqual([
      ['easy', 'speech', 1],
      ['easy2', undefined, 1],
    ]);
    expect(r.average).toBe(1);
    expect(r.tasks[0]!.perLayer[1]).toBe(1);
    expect(r.tasks[0]!.layerWeights).toHaveLength(3);
    const last = events.filter((e) => e.type === 'progress').at(-1);
    expect(last).toMatchObject({ type: 'progress', stage: 'evaluate', done: 59, total: 59 });
  });

  it('clips of many lengths keep their labels: embedded in length order, written back in the split order', async () => {
    makeTask('lengths', 4, 10, 6);
    const byHash = loader(true);
    // Lengths from the file name (not from the class), so length order scrambles the classes.
    const varied = async (file: string) => {
      const a = await byHash(file);
      let h = 7;
      for (const ch of path.basename(file)) h = (Math.imul(h, 131) + ch.charCodeAt(0)) >>> 0;
      return Float32Array.from({ length: 32 + (h % 48) }, (_, i) => a[i % a.length]!);
    };
    const tasks = await loadEvalTasks([{ name: 'lengths', data: path.join(root, 'lengths') }], varied);
    expect(new Set(tasks[0]!.train.audio.map((a) => a.length)).size).toBeGreaterThan(10);
    const r = await evaluateModel(embed, tasks, { batchSize: 4 });
    expect(r.average).toBe(1);
  });

  it('a model that carries no class information scores near chance', async () => {
    makeTask('noise', 4, 30, 25);
    const tasks = await loadEvalTasks([{ name: 'noise', data: path.join(root, 'noise') }], loader(false));
    const r = await evaluateModel(embed, tasks);
    expect(Math.abs(r.average - 0.25)).toBeLessThan(0.15);
  });

  it('says which file gave non-finite features, and refuses bad embed shapes', async () => {
    makeTask('nan', 2, 3, 2);
    const tasks = await loadEvalTasks([{ name: 'nan', data: path.join(root, 'nan') }], loader(true));
    const nanEmbed: EmbedFn = async (audio) => {
      const t = await embed(audio);
      t.data[12 + 5] = Number.NaN; // second clip of the batch
      return t;
    };
    const e = await evaluateModel(nanEmbed, tasks, { batchSize: 4 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe('non-finite');
    expect((e as EngineError).message).toBe(
      `${path.join(root, 'nan', 'train', 'c0-train-1.wav')}: the model's pooled features are not finite (task nan)`,
    );

    const flat: EmbedFn = async (audio) => ({ shape: [audio.length, 12], data: new Float32Array(audio.length * 12) });
    await expect(evaluateModel(flat, tasks)).rejects.toThrow(
      /embed returned \[10, 12\] for a batch of 10 clips; expected \[10, layers, dim\]/,
    );
  });

  it('stops when cancelled', async () => {
    makeTask('cancel', 2, 3, 2);
    const tasks = await loadEvalTasks([{ name: 'cancel', data: path.join(root, 'cancel') }], loader(true));
    const cancel = new AbortController();
    const stopping: EmbedFn = async (audio) => {
      cancel.abort();
      return embed(audio);
    };
    const e = await evaluateModel(stopping, tasks, { batchSize: 2, signal: cancel.signal }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe('cancelled');
  });

  it('validation split: a seeded quarter of each train class is held out, test/ is never read', async () => {
    makeTask('valid', 3, 12, 5);
    const read: string[] = [];
    const spying = async (file: string) => {
      read.push(path.basename(file));
      return loader(true)(file);
    };
    const load = (seed: number) =>
      loadEvalTasks([{ name: 'valid', data: path.join(root, 'valid') }], spying, { split: 'validation', seed });
    const [task] = await load(1);
    expect(read.some((f) => f.includes('-test-'))).toBe(false);
    expect(task!.heldOutSplit).toBe('validation');
    expect(task!.train.audio.length).toBe(27);
    expect(task!.heldOut.audio.length).toBe(9);
    for (let c = 0; c < 3; c++) expect(Array.from(task!.heldOut.labels).filter((y) => y === c)).toHaveLength(3);
    const held = new Set(task!.heldOut.files);
    expect(task!.train.files.some((f) => held.has(f))).toBe(false);
    expect(task!.train.files.every((f) => f.includes('-train-'))).toBe(true);
    // seeded: the same seed carves the same clips, another seed others
    expect((await load(1))[0]!.heldOut.files).toEqual(task!.heldOut.files);
    expect((await load(2))[0]!.heldOut.files).not.toEqual(task!.heldOut.files);
    const r = await evaluateModel(embed, [task!]);
    expect(r.tasks[0]).toMatchObject({ split: 'validation', score: 1, trainClips: 27, heldOutClips: 9 });
  });

  it('validation folds: every train clip is scored once, stratified and seeded; test/ is never read', async () => {
    makeTask('kfold', 3, 10, 5);
    const read: string[] = [];
    const spying = async (file: string) => {
      read.push(path.basename(file));
      return loader(true)(file);
    };
    const load = (seed: number, folds = 4) =>
      loadEvalTasks([{ name: 'kfold', data: path.join(root, 'kfold') }], spying, { split: 'validation', seed, folds });
    const [task] = await load(1);
    expect(read.some((f) => f.includes('-test-'))).toBe(false);
    expect(task!.train.audio.length).toBe(30);
    expect(task!.heldOut.audio.length).toBe(0);
    const { count, of } = task!.folds!;
    expect(count).toBe(4);
    // Each fold holds 2 or 3 clips of each class (10 dealt over 4 folds), 7 or 8 in all.
    for (let f = 0; f < 4; f++) {
      const inFold = [...of.keys()].filter((i) => of[i] === f);
      expect([7, 8]).toContain(inFold.length);
      for (let c = 0; c < 3; c++) expect([2, 3]).toContain(inFold.filter((i) => task!.train.labels[i] === c).length);
    }
    expect(Array.from((await load(1))[0]!.folds!.of)).toEqual(Array.from(of));
    expect(Array.from((await load(2))[0]!.folds!.of)).not.toEqual(Array.from(of));
    const r = await evaluateModel(embed, [task!]);
    expect(r.tasks[0]).toMatchObject({ split: 'validation', score: 1, heldOutClips: 30, trainClips: 23 });
    await expect(load(1, 31)).rejects.toThrow(/kfold[/\\]train[/\\]labels\.csv: 30 train clips cannot fill 31 folds/);
  });

  it('validation folds: the score pools the probes of every fold, as the folds run one by one would', async () => {
    makeTask('noisy', 3, 8, 2);
    // Class information only in layer 1 and drowned in noise, so the folds' probes make different mistakes.
    const noisy: EmbedFn = async (audio) => {
      const t = await embed(audio);
      const g = normals(audio.length * 7 + Math.round(audio[0]![0]! * 1e4));
      for (let i = 0; i < t.data.length; i++) t.data[i] = t.data[i]! + 2 * g();
      return t;
    };
    const [task] = await loadEvalTasks([{ name: 'noisy', data: path.join(root, 'noisy') }], loader(true), {
      split: 'validation',
      seed: 3,
      folds: 3,
    });
    const probe = { perLayer: true };
    const r = (await evaluateModel(noisy, [task!], { probe, batchSize: 1000 })).tasks[0]!;
    // The same features, folds taken one at a time through runProbes.
    const features = await noisy(task!.train.audio);
    const rows = (keep: (i: number) => boolean) => {
      const idx = [...task!.train.labels.keys()].filter(keep);
      const data = new Float32Array(idx.length * 12);
      idx.forEach((i, k) => data.set(features.data.subarray(i * 12, (i + 1) * 12), k * 12));
      return { features: { shape: [idx.length, 3, 4], data }, labels: Int32Array.from(idx, (i) => task!.train.labels[i]!) };
    };
    let correct = 0;
    const perLayer = [0, 0, 0];
    const { of } = task!.folds!;
    for (let f = 0; f < 3; f++) {
      const held = rows((i) => of[i] === f);
      const one = await runProbes(
        rows((i) => of[i] !== f),
        held,
        3,
        probe,
      );
      correct += Math.round(one.accuracy * held.labels.length);
      one.perLayer.forEach((a, l) => (perLayer[l] = perLayer[l]! + Math.round(a * held.labels.length)));
    }
    expect(r.score).toBeCloseTo(correct / 24, 12);
    expect(r.perLayer).toEqual(perLayer.map((c) => c / 24));
    expect(r.score).toBeLessThan(1);
    expect(r.layerWeights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
  });

  it('validation split: a train split too small to carve is refused with its labels.csv', async () => {
    makeTask('tiny', 2, 1, 1);
    await expect(loadEvalTasks([{ name: 'tiny', data: path.join(root, 'tiny') }], loader(true), { split: 'validation' })).rejects.toThrow(
      /tiny[/\\]train[/\\]labels\.csv: too few clips to hold out a validation part/,
    );
  });

  it('refuses a task named twice and passes dataset errors through', async () => {
    await expect(
      loadEvalTasks(
        [
          { name: 'a', data: 'x' },
          { name: 'a', data: 'y' },
        ],
        loader(true),
      ),
    ).rejects.toThrow(/task "a" is listed twice/);
    await expect(loadEvalTasks([{ name: 'gone', data: path.join(root, 'gone') }], loader(true))).rejects.toThrow(
      /gone: task folder not found/,
    );
  });
});

describe('spreadOf', () => {
  it('gives mean, sample std and range', () => {
    expect(spreadOf([0.5, 0.7, 0.9])).toEqual({ mean: expect.closeTo(0.7, 12), std: expect.closeTo(0.2, 12), min: 0.5, max: 0.9, runs: 3 });
    expect(spreadOf([0.4])).toEqual({ mean: 0.4, std: 0, min: 0.4, max: 0.4, runs: 1 });
  });
});
