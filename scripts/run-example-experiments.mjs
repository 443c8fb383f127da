#!/usr/bin/env node
// The example's method comparison over seeds, with settings chosen on validation and results reported on test.
//
//   node scripts/run-example-experiments.mjs [--recipe examples/methods.merge.yaml] [--seeds 0,1,2]
//        [--stage validation|test|report|all] [--jobs 1] [--results examples/results] [--only name,name]
//        [--cli bin/merge-studio.js]   (a frozen copy of the built CLI keeps long runs off a dist/ rebuilt meanwhile)
//        [--threads N]   runtime.threads of each run (1 on a machine shared with other work: no spinning thread pools)
//        [--all-candidates]   the test stage runs every candidate (still chosen on validation only; reported beside)
//        [--folds 4]   validation: K-fold cross-validation over train (`evaluate.folds`); 1 = one held-out quarter
//        [--eval-root examples/large/eval]   read each task from <root>/<task> instead of the recipe's folder: a larger
//            test split with the same train, made by `python3 scripts/make-example-data.py --test-per-class 50
//            --out examples/large` (the bundled test split has 10 clips per class, too few to resolve a few points)
//        [--probe-root examples/large/probe --probe-seconds 120]   align on more probe audio: each probe.audio (and
//            probe.domains) entry read from <root>/<name>, probe.max_seconds set (`--probe-seconds 120` of the data
//            script); another experiment, so give it its own --results
//        [--readme FILE]   where report writes its block (default examples/README.md; README.md's table only then)
//        [--validation-results DIR]   report: the validation summaries (default: --results), when the test runs with
//            --eval-root keep theirs in another --results folder
//
// validation: runs the recipe once per seed with `evaluate.split: validation` and `evaluate.folds: 4` (each task's
//   train split dealt into 4 stratified folds; every train clip scored once by probes trained on the other three;
//   test/ is never read) and `merge.sweep: [0.3, 0.5, 0.7, 0.9]`.
// test:       the same runs on the test split.
// report:     from the saved runs: chooses, on validation only, the best system of one encoder's size (mean over
//   seeds and λ), its best λ, and the best system of width ≤ 1.25 and its λ; then writes the test table (mean ± sd
//   over seeds of every system at every λ, with parameter counts) and the check of the issue's targets on test into
//   examples/README.md between the `experiments` markers.
// Every run's report.json is summarised in <results>/<split>-seed<N>.json, so `report` needs no rerun.
// --only: run just these variants/candidates (plus the main settings and the sources, which every run has) and
//   replace their rows in the saved summaries, keeping the other systems' rows; a rerun system's scores are checked
//   against the saved ones when both exist (the summaries record whether they agreed).
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (k, d) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? process.argv[i + 1] : d;
};
const recipeFile = path.resolve(root, arg('recipe', 'examples/methods.merge.yaml'));
const seeds = arg('seeds', '0,1,2').split(',').map(Number);
const stage = arg('stage', 'all');
const jobs = Number(arg('jobs', '1'));
const resultsDir = path.resolve(root, arg('results', 'examples/results'));
const readme = path.resolve(root, arg('readme', 'examples/README.md'));
const defaultReadme = readme === path.resolve(root, 'examples/README.md');
const LAMBDAS = [0.3, 0.5, 0.7, 0.9];
const folds = Number(arg('folds', '4'));
const evalRoot = arg('eval-root', '') ? path.resolve(root, arg('eval-root', '')) : undefined;
const probeRoot = arg('probe-root', '') ? path.resolve(root, arg('probe-root', '')) : undefined;
const probeSeconds = arg('probe-seconds', '') ? Number(arg('probe-seconds', '')) : undefined;
const validationDir = path.resolve(root, arg('validation-results', arg('results', 'examples/results')));
// Settings tried on validation beside the recipe's own variants; the test runs add the ones chosen there.
const RESIDUAL = ['cnn', 'attention', 'ffn', 'residual'];
const OUTPUTS = ['out_proj', 'output_dense'];
const ALL_PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'intermediate_dense', 'output_dense'];
const CANDIDATES = [
  { name: 'residual-repair', align: { permute: RESIDUAL }, merge: { repair: true } },
  { name: 'zip110', merge: { width: 1.1 } },
  { name: 'zip150', merge: { width: 1.5 } },
  { name: 'residual-zip125-repair', align: { permute: RESIDUAL }, merge: { width: 1.25, repair: true } },
  // Least-squares refit: which projections, the ridge, and on top of residual permutation / repair.
  { name: 'lsq-outputs', merge: { method: 'lsq', lsq: { refit: OUTPUTS } } },
  { name: 'lsq-all', merge: { method: 'lsq', lsq: { refit: ALL_PROJECTIONS } } },
  { name: 'lsq-ridge0.01', merge: { method: 'lsq', lsq: { ridge: 0.01 } } },
  { name: 'lsq-ridge0.1', merge: { method: 'lsq', lsq: { ridge: 0.1 } } },
  { name: 'residual-lsq', align: { permute: RESIDUAL }, merge: { method: 'lsq', lsq: { refit: OUTPUTS } } },
  { name: 'lsq-repair', merge: { method: 'lsq', repair: true, lsq: { refit: OUTPUTS } } },
  // Partial zipping first, then the refit of the output projections over merged and unmerged FFN units.
  { name: 'lsq-zip110', merge: { method: 'lsq', width: 1.1, lsq: { refit: OUTPUTS } } },
  { name: 'lsq-zip125', merge: { method: 'lsq', width: 1.25, lsq: { refit: OUTPUTS } } },
  // Routed targets: each probe domain's frames fit to that model (probe.domains), the output projections or, since a
  // single model's fc1 pre-activations are a target the GELU keeps, every projection; and after zipping.
  { name: 'lsq-routed', merge: { method: 'lsq', lsq: { refit: OUTPUTS, ridge: 0.1, targets: 'routed' } } },
  { name: 'lsq-routed-all', merge: { method: 'lsq', lsq: { refit: ALL_PROJECTIONS, ridge: 0.1, targets: 'routed' } } },
  { name: 'lsq-routed-zip110', merge: { method: 'lsq', width: 1.1, lsq: { refit: OUTPUTS, ridge: 0.1, targets: 'routed' } } },
  // Residual sums: the output projections also correct the merged residual stream's drift from the target's.
  { name: 'lsq-residual', merge: { method: 'lsq', lsq: { refit: OUTPUTS, ridge: 0.1, residual: true } } },
  { name: 'lsq-routed-residual', merge: { method: 'lsq', lsq: { refit: OUTPUTS, ridge: 0.1, targets: 'routed', residual: true } } },
  // The ridge with routed targets (they lie farther from the linear merge than the mix), and every projection with sums.
  { name: 'lsq-routed-auto', merge: { method: 'lsq', lsq: { refit: OUTPUTS, ridge: 'auto', targets: 'routed' } } },
  { name: 'lsq-routed-ridge1', merge: { method: 'lsq', lsq: { refit: OUTPUTS, ridge: 1, targets: 'routed' } } },
  { name: 'lsq-routed-ridge0.01', merge: { method: 'lsq', lsq: { refit: OUTPUTS, ridge: 0.01, targets: 'routed' } } },
  { name: 'lsq-routed-residual-all', merge: { method: 'lsq', lsq: { refit: ALL_PROJECTIONS, ridge: 0.1, targets: 'routed', residual: true } } },
];
const cli = path.resolve(root, arg('cli', 'bin/merge-studio.js'));
const threads = arg('threads', '') ? Number(arg('threads', '')) : undefined;
const allCandidates = process.argv.includes('--all-candidates');
const only = arg('only', '') ? new Set(arg('only', '').split(',')) : undefined;
const START = '<!-- experiments:start (written by scripts/run-example-experiments.mjs) -->';
const END = '<!-- experiments:end -->';
// The short table in the top-level README (methods section).
const README = path.resolve(root, 'README.md');
const SHORT_START = '<!-- methods-table:start (written by scripts/run-example-experiments.mjs) -->';
const SHORT_END = '<!-- methods-table:end -->';

function runFile(split, seed) {
  return path.join(split === 'validation' ? validationDir : resultsDir, `${split}-seed${seed}.json`);
}

/** Clips and classes per task in the split a run reads (labels.csv), so the report can say what the scores rest on. */
async function clipsPerTask(tasks, recipeDir, split) {
  const folder = split === 'test' ? 'test' : 'train';
  const out = {};
  for (const t of tasks) {
    const rows = (await fs.readFile(path.resolve(recipeDir, t.data, folder, 'labels.csv'), 'utf8')).trim().split('\n').slice(1);
    out[t.name] = { clips: rows.length, classes: new Set(rows.map((r) => r.slice(r.lastIndexOf(',') + 1))).size };
  }
  return out;
}

/** One run of the recipe (plus `extra` variants) at a seed on a split; returns the summary saved to <results>/<split>-seed<N>.json. */
async function runOne(split, seed, extra) {
  const recipe = YAML.parse(await fs.readFile(recipeFile, 'utf8'));
  const names = new Set((recipe.variants ?? []).map((v) => v.name));
  recipe.variants = [...(recipe.variants ?? []), ...extra.filter((v) => !names.has(v.name))];
  if (only) recipe.variants = recipe.variants.filter((v) => only.has(v.name));
  recipe.runtime = { ...(recipe.runtime ?? {}), seed, ...(threads ? { threads } : {}) };
  recipe.merge = { ...recipe.merge, sweep: LAMBDAS.filter((l) => l !== recipe.merge.lambda) };
  recipe.evaluate = { ...recipe.evaluate, split, ...(split === 'validation' ? { folds } : {}) };
  if (evalRoot) recipe.evaluate.tasks = recipe.evaluate.tasks.map((t) => ({ ...t, data: path.join(evalRoot, path.basename(t.data)) }));
  const clips = await clipsPerTask(recipe.evaluate.tasks, path.dirname(recipeFile), split);
  if (probeRoot) {
    const moved = (p) => path.join(probeRoot, path.basename(p));
    recipe.probe = { ...recipe.probe, audio: recipe.probe.audio.map(moved) };
    if (recipe.probe.domains)
      recipe.probe.domains = Object.fromEntries(Object.entries(recipe.probe.domains).map(([k, v]) => [k, v.map(moved)]));
  }
  if (probeSeconds) recipe.probe = { ...recipe.probe, max_seconds: probeSeconds };
  recipe.output = `./out/experiments/${path.basename(recipeFile, '.merge.yaml')}-${split}-seed${seed}`;
  // Next to the original, so that its relative paths resolve the same way.
  const tmp = path.join(path.dirname(recipeFile), `.experiment-${split}-seed${seed}.merge.yaml`);
  await fs.writeFile(tmp, YAML.stringify(recipe));
  const started = Date.now();
  try {
    await new Promise((resolve, reject) => {
      const log = [];
      const child = spawn(process.execPath, [cli, 'run', tmp], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (d) => log.push(d));
      child.stderr.on('data', (d) => log.push(d));
      child.on('error', reject);
      child.on('close', (code) =>
        code === 0 ? resolve() : reject(new Error(`${split} seed ${seed}: exit ${code}\n${Buffer.concat(log).toString().slice(-3000)}`)),
      );
    });
  } finally {
    await fs.rm(tmp, { force: true });
  }
  const report = JSON.parse(await fs.readFile(path.resolve(path.dirname(recipeFile), recipe.output, 'report.json'), 'utf8'));
  let summary = {
    recipe: path.relative(root, recipeFile),
    split,
    ...(split === 'validation' ? { folds } : {}),
    seed,
    evalRoot: evalRoot ? path.relative(root, evalRoot) : null,
    probe: { root: probeRoot ? path.relative(root, probeRoot) : null, maxSeconds: recipe.probe.max_seconds },
    clips,
    seconds: (Date.now() - started) / 1000,
    timings: report.timings,
    parameters: {
      anchor: report.models.anchor.parameters,
      other: report.models.other.parameters,
      ...Object.fromEntries((report.systems ?? []).map((s) => [s.name, s.parameters])),
    },
    systems: report.systems ?? [],
    rows: report.evaluation.rows,
    averages: report.evaluation.averages,
  };
  summary.evaluateSecondsPerSystem = report.timings.evaluate / new Set(summary.averages.map((a) => `${a.variant}@${a.lambda}`)).size;
  if (only) summary = await mergeInto(summary, split, seed);
  await fs.mkdir(resultsDir, { recursive: true });
  await fs.writeFile(runFile(split, seed), `${JSON.stringify(summary, null, 1)}\n`);
  console.log(`${split} seed ${seed}: ${summary.seconds.toFixed(0)} s (evaluate ${report.timings.evaluate?.toFixed(0)} s)`);
  return summary;
}

/**
 * A partial run (--only) merged into the saved summary: its systems' rows replace the saved ones; the saved rows of
 * the systems it did not run stay. `rerun` records, for each system both have, the largest score difference.
 */
async function mergeInto(part, split, seed) {
  let saved;
  try {
    saved = JSON.parse(await fs.readFile(runFile(split, seed), 'utf8'));
  } catch {
    return part;
  }
  // Scores of two validation protocols are not comparable: a partial run cannot join runs of another one.
  if ((saved.folds ?? 1) !== (part.folds ?? 1)) {
    throw new Error(`${runFile(split, seed)} was run with ${saved.folds ?? 1} fold(s), this run with ${part.folds ?? 1}: rerun every system`);
  }
  if (JSON.stringify(saved.probe ?? null) !== JSON.stringify(part.probe) && saved.probe) {
    throw new Error(`${runFile(split, seed)} aligned on other probe audio (${JSON.stringify(saved.probe)}): use another --results`);
  }
  if ((saved.evalRoot ?? null) !== part.evalRoot) {
    throw new Error(`${runFile(split, seed)} read the tasks from ${saved.evalRoot ?? 'the recipe'}, this run from ${part.evalRoot ?? 'the recipe'}: use another --results`);
  }
  const ran = new Set(part.rows.map((r) => r.variant));
  const key = (r) => `${r.variant}@${r.lambda}@${r.task ?? ''}`;
  const before = new Map(saved.rows.map((r) => [key(r), r.score]));
  const rerun = {};
  for (const r of part.rows) {
    if (!before.has(key(r))) continue;
    rerun[r.variant] = Math.max(rerun[r.variant] ?? 0, Math.abs(before.get(key(r)) - r.score));
  }
  return {
    ...part,
    seconds: part.seconds,
    parameters: { ...saved.parameters, ...part.parameters },
    systems: [...saved.systems.filter((s) => !ran.has(s.name)), ...part.systems],
    rows: [...saved.rows.filter((r) => !ran.has(r.variant)), ...part.rows],
    averages: [...saved.averages.filter((a) => !ran.has(a.variant)), ...part.averages],
    partial: [...(saved.partial ?? []), { ran: [...ran], maxScoreChangeOfRerunSystems: rerun }],
  };
}

async function runSplit(split, extra) {
  const queue = seeds.map((s) => () => runOne(split, s, extra));
  await Promise.all(
    Array.from({ length: Math.max(1, jobs) }, async () => {
      while (queue.length) await queue.shift()();
    }),
  );
}

async function loadRuns(split) {
  const runs = [];
  for (const s of seeds) runs.push(JSON.parse(await fs.readFile(runFile(split, s), 'utf8')));
  if (new Set(runs.map((r) => r.folds ?? 1)).size > 1) throw new Error(`${split} runs with different folds: rerun them alike`);
  if (new Set(runs.map((r) => JSON.stringify(r.probe ?? null))).size > 1) throw new Error(`${split} runs aligned on different probe audio`);
  if (new Set(runs.map((r) => r.evalRoot ?? null)).size > 1) throw new Error(`${split} runs read different task folders: rerun them alike`);
  return runs;
}

const meanOf = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sdOf = (xs) => (xs.length > 1 ? Math.sqrt(xs.reduce((k, x) => k + (x - meanOf(xs)) ** 2, 0) / (xs.length - 1)) : 0);

/** system → λ (null for the sources) → { task → [score per seed], average → [...] } */
function collect(runs) {
  const table = new Map();
  for (const run of runs) {
    for (const r of run.rows) {
      const key = `${r.variant}@${r.lambda}`;
      if (!table.has(key)) table.set(key, { system: r.variant, lambda: r.lambda, tasks: new Map(), average: [] });
      const e = table.get(key);
      if (!e.tasks.has(r.task)) e.tasks.set(r.task, []);
      e.tasks.get(r.task).push(r.score);
    }
    for (const a of run.averages) table.get(`${a.variant}@${a.lambda}`)?.average.push(a.average);
  }
  return table;
}

function widthOf(run, system) {
  return run.systems.find((s) => s.name === system)?.merge.width ?? 1;
}

/** Choices made on validation only. */
function choose(valRuns) {
  const val = collect(valRuns);
  const oneSize = valRuns[0].parameters.anchor;
  const merged = [...new Set([...val.values()].filter((e) => e.lambda !== null).map((e) => e.system))];
  // Systems added by a partial run (--only) on fewer seeds are compared with the others on the seeds they all have
  // (runs are loaded in seed order, so those are the first entries).
  const common = Math.min(...[...val.values()].filter((e) => e.lambda !== null).map((e) => e.average.length));
  const score = (system, l) => meanOf((val.get(`${system}@${l}`)?.average ?? [NaN]).slice(0, common));
  const meanOverLambdas = (system) => meanOf(LAMBDAS.map((l) => score(system, l)));
  const bestLambda = (system) => LAMBDAS.reduce((b, l) => (score(system, l) > score(system, b) ? l : b));
  const pick = (candidates) => candidates.reduce((b, s) => (meanOverLambdas(s) > meanOverLambdas(b) ? s : b));
  // The targets measure methods against the plain merges and the paper's (unaligned, permuted, paper): those are the
  // references, never the choice.
  const aligned = merged.filter((s) => !['unaligned', 'linear', 'permuted', 'paper'].includes(s));
  const sameSize = aligned.filter((s) => valRuns[0].parameters[s] === oneSize);
  const narrow = aligned.filter((s) => widthOf(valRuns[0], s) <= 1.25);
  const best = pick(sameSize);
  const bestNarrow = narrow.reduce((b, s) => (score(s, bestLambda(s)) > score(b, bestLambda(b)) ? s : b));
  return {
    best,
    bestLambda: bestLambda(best),
    lambdaOf: bestLambda,
    bestNarrow,
    bestNarrowLambda: bestLambda(bestNarrow),
    validation: val,
    common,
    meanOverLambdas,
  };
}

const fmt = (xs) => `${meanOf(xs).toFixed(3)} ± ${sdOf(xs).toFixed(3)}`;

async function report() {
  const valRuns = await loadRuns('validation');
  const testRuns = await loadRuns('test');
  if (valRuns[0].probe && testRuns[0].probe && JSON.stringify(valRuns[0].probe) !== JSON.stringify(testRuns[0].probe))
    throw new Error('validation and test runs aligned on different probe audio');
  const choice = choose(valRuns);
  const test = collect(testRuns);
  const params = testRuns[0].parameters;
  const first = ['unaligned', 'permuted'];
  const systems = [...new Set([...test.values()].filter((e) => e.lambda !== null).map((e) => e.system))].sort(
    (a, b) => (first.includes(b) ? 1 : 0) - (first.includes(a) ? 1 : 0) || first.indexOf(a) - first.indexOf(b),
  );
  // A system added to the recipe after the validation runs has no validation scores: it is reported, never chosen.
  const validated = (s) => LAMBDAS.every((l) => choice.validation.has(`${s}@${l}`));
  const tasks = [...test.get('anchor@null').tasks.keys()];
  const lines = [START, ''];
  lines.push(
    `Recipe \`${testRuns[0].recipe}\`, seeds ${seeds.join(', ')} (\`runtime.seed\`), λ = ${LAMBDAS.join(', ')} (weight on the speech encoder). Written by`,
  );
  const valFolds = valRuns[0].folds ?? 1;
  lines.push(
    valFolds > 1
      ? `\`node scripts/run-example-experiments.mjs\`: settings were chosen on validation (a seeded, stratified ${valFolds}-fold cross-validation`
      : '`node scripts/run-example-experiments.mjs`: settings were chosen on a validation split (a seeded quarter of each',
  );
  lines.push(
    valFolds > 1
      ? `over each task's train clips, \`evaluate.split: validation\`, \`evaluate.folds: ${valFolds}\`), then every system was scored on test. Five-task average test`
      : "task's train clips, `evaluate.split: validation`), then every system was scored on test. Five-task average test",
  );
  lines.push('accuracy, mean ± sd over the seeds:');
  lines.push('');
  const clips = testRuns[0].clips;
  if (clips) {
    // The seeds share the test clips, so their spread leaves out the test split's own sampling error: say how large it is.
    const n = tasks.map((t) => clips[t].clips);
    const p = tasks.map((t) => meanOf(test.get('anchor@null').tasks.get(t)));
    const se = Math.sqrt(p.reduce((k, pt, i) => k + (pt * (1 - pt)) / n[i], 0)) / tasks.length;
    lines.push(
      `Test split: ${n.reduce((a, b) => a + b, 0)} clips (${tasks.map((t, i) => `${t} ${n[i]}`).join(', ')}), ${
        testRuns[0].evalRoot
          ? `\`${testRuns[0].evalRoot}\`, a larger test split with the bundled train split (\`python3 scripts/make-example-data.py --test-per-class ${Math.round(clips[tasks[0]].clips / clips[tasks[0]].classes)} --out ${path.dirname(testRuns[0].evalRoot)}\`, then \`--eval-root ${testRuns[0].evalRoot}\`)`
          : 'the bundled one'
      }. The seeds share these clips, so the ± leaves out the split's own sampling error: about ${(100 * se).toFixed(1)} points (binomial standard error of the speech encoder's five-task average; less for the difference of two systems on the same clips).`,
    );
    lines.push('');
  }
  lines.push(`| system | parameters | ${LAMBDAS.map((l) => `λ = ${l}`).join(' | ')} | validation (mean over λ) |`);
  lines.push(`|---|---|${LAMBDAS.map(() => '---').join('|')}|---|`);
  for (const s of ['anchor', 'other'])
    lines.push(
      `| ${s} (${s === 'anchor' ? 'speech' : 'music'}) | ${params[s].toLocaleString('en')} | ${LAMBDAS.map(() => fmt(test.get(`${s}@null`).average)).join(' | ')} | ${meanOf(choice.validation.get(`${s}@null`).average).toFixed(3)} |`,
    );
  for (const s of systems) {
    const val = validated(s) ? choice.meanOverLambdas(s).toFixed(3) : 'not run';
    lines.push(
      `| ${s} | ${(params[s] ?? params.anchor).toLocaleString('en')} | ${LAMBDAS.map((l) => (test.has(`${s}@${l}`) ? fmt(test.get(`${s}@${l}`).average) : '-')).join(' | ')} | ${val} |`,
    );
  }
  const valSystems = [...new Set([...choice.validation.values()].filter((e) => e.lambda !== null).map((e) => e.system))];
  const valMean = choice.meanOverLambdas;
  lines.push('');
  lines.push(
    `Validation, five-task average, mean over λ and over ${choice.common === seeds.length ? 'the seeds' : `seed${choice.common > 1 ? 's' : ''} ${seeds.slice(0, choice.common).join(', ')}, the seeds every candidate was run on`}; every candidate, the choice is made here: ${valSystems
      .sort((a, b) => valMean(b) - valMean(a))
      .map((s) => `${s} ${valMean(s).toFixed(3)}`)
      .join(', ')}.`,
  );
  lines.push('');
  lines.push("Per task (test, mean over seeds), at each system's λ chosen on validation:");
  lines.push('');
  lines.push(`| system | λ | ${tasks.join(' | ')} |`);
  lines.push(`|---|---|${tasks.map(() => '---').join('|')}|`);
  const valBest = choice.lambdaOf;
  for (const s of ['anchor', 'other', ...systems.filter(validated)]) {
    const l = s === 'anchor' || s === 'other' ? null : valBest(s);
    lines.push(`| ${s} | ${l ?? '-'} | ${tasks.map((t) => meanOf(test.get(`${s}@${l}`).tasks.get(t)).toFixed(3)).join(' | ')} |`);
  }
  const unvalidated = systems.filter((s) => !validated(s));
  if (unvalidated.length) {
    lines.push('');
    lines.push(
      `${unvalidated.map((s) => `\`${s}\``).join(', ')}: added to the recipe after the validation runs, so reported on test but never a candidate of the choices below.`,
    );
  }
  // Targets (issue: same parameter count as one encoder, compared with the paper's permuted merge).
  const avg = (s, l) => meanOf(test.get(`${s}@${l}`).average);
  const baselines = systems.filter((s) => ['permuted', 'paper'].includes(s));
  const better = Math.max(avg('anchor', null), avg('other', null));
  const both = Math.min(avg('anchor', null), avg('other', null));
  lines.push('');
  lines.push(
    `Targets, on test, for the systems chosen on validation: **${choice.best}** (best of one encoder's size, mean over λ) and **${choice.bestNarrow}** at λ = ${choice.bestNarrowLambda} (best with width ≤ 1.25).`,
  );
  lines.push('');
  const margins = LAMBDAS.map((l) => avg(choice.best, l) - Math.max(...baselines.map((b) => avg(b, l))));
  lines.push(
    `- Beats the paper's permuted merge (${baselines.join(' / ')}, the better of them at each λ) by ≥ 3 points at every λ: ${margins.every((m) => m >= 0.03) ? '**met**' : '**not met**'} (margins ${margins.map((m) => `${m >= 0 ? '+' : ''}${(100 * m).toFixed(1)}`).join(', ')} points at λ = ${LAMBDAS.join(', ')}).`,
  );
  const atBest = avg(choice.best, choice.bestLambda);
  lines.push(
    `- Reaches the better source model's average (${better.toFixed(3)}) at one λ (λ = ${choice.bestLambda}, chosen on validation): ${atBest >= better ? '**met**' : '**not met**'} (${atBest.toFixed(3)}, ${atBest >= better ? '+' : ''}${(100 * (atBest - better)).toFixed(1)} points; best λ on test: ${Math.max(...LAMBDAS.map((l) => avg(choice.best, l))).toFixed(3)}).`,
  );
  const narrow = avg(choice.bestNarrow, choice.bestNarrowLambda);
  lines.push(
    `- With width ≤ 1.25 beats both source models (${avg('anchor', null).toFixed(3)} and ${avg('other', null).toFixed(3)}): ${narrow > better ? '**met**' : '**not met**'} (${choice.bestNarrow} λ = ${choice.bestNarrowLambda}: ${narrow.toFixed(3)}, ${narrow > better ? '+' : ''}${(100 * (narrow - better)).toFixed(1)} points against the better one${narrow > both ? `, +${(100 * (narrow - both)).toFixed(1)} against the other` : ''}).`,
  );
  // Partial runs (--only) kept the other systems' rows from earlier runs: say so, with how far the systems that both
  // runs scored (sources, unaligned, permuted) moved, so the mix of code versions is visible.
  const partials = [...valRuns, ...testRuns].flatMap((r) => (r.partial ?? []).map((p) => ({ split: r.split, seed: r.seed, ...p })));
  if (partials.length) {
    const ranIn = (split) => {
      const ps = partials.filter((p) => p.split === split);
      const names = [...new Set(ps.flatMap((p) => p.ran))].filter((s) => !['anchor', 'other', 'unaligned', 'permuted'].includes(s));
      return ps.length ? `${split} (seed ${[...new Set(ps.map((p) => p.seed))].join(', ')}): ${names.map((s) => `\`${s}\``).join(', ')}` : undefined;
    };
    // Only systems whose settings and code did not change between the runs (the sources and the main settings).
    const unchanged = ['anchor', 'other', 'unaligned', 'permuted'];
    const moved = Math.max(...partials.flatMap((p) => unchanged.map((s) => p.maxScoreChangeOfRerunSystems[s] ?? 0)));
    lines.push('');
    lines.push(
      `Partial reruns with the current code, beside the sources, \`unaligned\` and \`permuted\`: ${['validation', 'test'].map(ranIn).filter(Boolean).join('; ')}. The other systems' rows come from the earlier full runs. ${
        moved === 0
          ? 'The sources, `unaligned` and `permuted`, scored by both, came out identical (same code and seeds).'
          : `The sources, \`unaligned\` and \`permuted\`, scored by both, moved by up to ${moved.toFixed(3)} on a single task's accuracy (the evaluation code changed in between; one clip is ${(1 / Math.min(...Object.values(testRuns[0].clips ?? { any: { clips: 40 } }).map((c) => c.clips))).toFixed(3)} of the smallest task's accuracy).`
      }`,
    );
  }
  const seconds = testRuns.map(
    (r) => r.evaluateSecondsPerSystem ?? r.timings.evaluate / new Set(r.averages.map((a) => `${a.variant}@${a.lambda}`)).size,
  );
  lines.push('');
  lines.push(
    `Evaluate stage on the shared 2-core machine: ${meanOf(seconds).toFixed(1)} s per system and λ (mean over the test runs; wall time whatever else was running; it includes building each merge, so lsq's refit too).`,
  );
  lines.push('', END);
  const text = await fs.readFile(readme, 'utf8');
  const block = lines.join('\n');
  const next = text.includes(START)
    ? text.slice(0, text.indexOf(START)) + block + text.slice(text.indexOf(END) + END.length)
    : `${text.trimEnd()}\n\n## Methods compared (3 seeds, settings chosen on validation)\n\n${block}\n`;
  await fs.writeFile(readme, next);
  console.log(block);
  const testClips = testRuns[0].clips ? Object.values(testRuns[0].clips).reduce((k, c) => k + c.clips, 0) : undefined;
  const testSplit =
    testClips && testRuns[0].evalRoot ? `a ${testClips}-clip test split (\`--eval-root ${testRuns[0].evalRoot}\`, see examples/README.md)` : undefined;
  if (defaultReadme) await writeShortTable({ test, systems, params, choice, margins, avg, folds: valFolds, testSplit });
}

/** README.md's methods table: test averages of every system, and the targets in one sentence. */
async function writeShortTable({ test, systems, params, choice, margins, avg, folds, testSplit }) {
  const text = await fs.readFile(README, 'utf8');
  if (!text.includes(SHORT_START)) return;
  const lines = [SHORT_START, ''];
  lines.push(
    `\`examples/methods.merge.yaml\` runs them all on the example encoders. Five-task test average over ${seeds.length} seeds (\`runtime.seed\` ${seeds.join(', ')}, mean ± sd), settings chosen on \`evaluate.split: validation\`${folds > 1 ? ` with \`evaluate.folds: ${folds}\` (a ${folds}-fold cross-validation over train)` : ''}${testSplit ? `, scored on ${testSplit}` : ''}; the anchor averages ${fmt(test.get('anchor@null').average)}, the other ${fmt(test.get('other@null').average)}:`,
  );
  lines.push('');
  lines.push(`| system | parameters | ${LAMBDAS.map((l) => `λ = ${l}`).join(' | ')} |`);
  lines.push(`|---|---|${LAMBDAS.map(() => '---').join('|')}|`);
  for (const s of systems)
    lines.push(
      `| ${s} | ${(params[s] ?? params.anchor).toLocaleString('en')} | ${LAMBDAS.map((l) => (test.has(`${s}@${l}`) ? fmt(test.get(`${s}@${l}`).average) : '-')).join(' | ')} |`,
    );
  lines.push('');
  const better = Math.max(avg('anchor', null), avg('other', null));
  const bestAt = Math.max(...LAMBDAS.map((l) => avg(choice.best, l)));
  lines.push(
    `Chosen on validation: \`${choice.best}\` (one encoder's size). Against the better of \`permuted\` and \`paper\` at each λ it gains ${margins.map((m) => `${m >= 0 ? '+' : ''}${(100 * m).toFixed(1)}`).join(' / ')} points at λ = ${LAMBDAS.join(' / ')} (target: ≥ +3 at every λ); its best λ on test reaches ${bestAt.toFixed(3)} against the better source model's ${better.toFixed(3)}. examples/README.md has the validation scores, the per-task results and the targets.`,
  );
  lines.push('', SHORT_END);
  const block = lines.join('\n');
  await fs.writeFile(README, text.slice(0, text.indexOf(SHORT_START)) + block + text.slice(text.indexOf(SHORT_END) + SHORT_END.length));
}

if (stage === 'validation' || stage === 'all') await runSplit('validation', CANDIDATES);
if (stage === 'test' || stage === 'all') {
  const choice = choose(await loadRuns('validation'));
  console.log(
    `chosen on validation: ${choice.best} (λ ${choice.bestLambda}), width ≤ 1.25: ${choice.bestNarrow} (λ ${choice.bestNarrowLambda})`,
  );
  await runSplit(
    'test',
    CANDIDATES.filter((c) => allCandidates || c.name === choice.best || c.name === choice.bestNarrow),
  );
}
if (stage === 'report' || stage === 'all') await report();
