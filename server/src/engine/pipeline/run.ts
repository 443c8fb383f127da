/**
 * A recipe, end to end: load both models → probe audio → per-tap statistics (one ONNX graph, both models) →
 * correlations → assignments → permute `other` → self-check (same function) → merge (λ and sweep) → evaluate →
 * write the output folder atomically. Every stage reports progress; cancellation is honoured between chunks of work;
 * a failed or cancelled run leaves no output behind.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { alignMethod } from '../align/methods';
import { mergeMethod } from '../merge/methods';
import { permutationsToJson, type Permutations } from '../align/permute';
import type { GroupReport } from '../align/solve';
import { buildPermutationSpec, groupName } from '../align/spec';
import { EngineError } from '../errors';
import { loadEvalTasks, type ModelEvaluation, type PreparedTask } from '../eval/evaluate';
import { openScorer } from '../eval/scoring-pool';
import { loadAudio } from '../io/audio';
import { parseHubRef, type HubProgress } from '../io/hub';
import { buildProbeSet, describeProbe, type ProbeSet } from '../io/probe';
import { openCheckpoint } from '../io/checkpoint';
import { writeSafetensorsStream } from '../io/safetensors';
import { mergeWeights, type MergeMethod } from '../merge/merge';
import type { LambdaSpec } from '../merge/lambda';
import { checkpointExtras, f32Sources } from '../model/checkpoint-extras';
import { loadEncoderModel, type EncoderModel } from '../model/encoder';
import { checkPairCompatible } from '../model/pair-graph';
import { resolveBackend, versions, type Device, type SessionOptions } from '../model/runtime';
import type { WeightMap } from '../model/tensor';
import { parameterCount, toStoredTensors } from '../model/weights';
import { partsOfStage, type JobStage, type JobSummary, type ProgressSink } from '../progress';
import { loadRecipe, type LoadedRecipe } from '../recipe/load';
import { blockHeatmap } from './heatmap';
import {
  REPORT_VERSION,
  type EvaluationRow,
  type MergeReport,
  type ModelSummary,
  type PermuteGroup,
  type SystemReport,
  type TapReport,
} from './report';
import { assertSelfCheck, selfCheck } from './self-check';
import { probeNeed } from './probe-need';
import { guardOutput } from './output-guard';
import { ONNX_FILE, onnxExportProblem, writeDeployableOnnx } from './onnx-export';
import { StagedOutput } from './staging';
import {
  alignmentFor,
  alignmentKey,
  buildSystem,
  lambdaPoints,
  scoredSystemCount,
  scoringMemory,
  systemsOf,
  type BuildContext,
  type BuiltSystem,
  type SystemSettings,
} from './systems';

declare const MERGE_STUDIO_VERSION: string;
const TOOL_VERSION = typeof MERGE_STUDIO_VERSION === 'string' ? MERGE_STUDIO_VERSION : 'dev';

export interface RunOptions {
  /** Overrides `runtime.device`. */
  device?: Device;
  threads?: number;
  /** Statistics shards (`merge-studio stats --shard`) to reduce instead of computing the statistics. */
  statsDirs?: readonly string[];
  onEvent?: ProgressSink;
  signal?: AbortSignal;
}

export interface RunResult {
  report: MergeReport;
  outputDir: string;
  reportPath: string;
}

type Variant = EvaluationRow['variant'];

/** Runs a recipe file. */
export async function runRecipe(file: string, opts: RunOptions = {}): Promise<RunResult> {
  const loaded = await loadRecipe(file);
  return runLoadedRecipe(loaded, opts);
}

export async function runLoadedRecipe(loaded: LoadedRecipe, opts: RunOptions = {}): Promise<RunResult> {
  const started = performance.now();
  const { recipe } = loaded;
  const emit = opts.onEvent ?? (() => undefined);
  const checkCancel = () => {
    if (opts.signal?.aborted) throw new EngineError('cancelled', 'the run was cancelled');
  };
  const timings: Partial<Record<JobStage, number>> = {};
  let stageStart = performance.now();
  let current: JobStage | undefined;
  const stage = (s: JobStage, message: string) => {
    checkCancel();
    if (current) timings[current] = (timings[current] ?? 0) + (performance.now() - stageStart) / 1000;
    current = s;
    stageStart = performance.now();
    emit({ type: 'stage', stage: s, message });
  };
  for (const d of loaded.diagnostics)
    emit({ type: 'log', level: 'warning', message: `${path.basename(loaded.file)}:${d.range.start.line + 1}: ${d.message}` });
  // Before any compute: a run that cannot or must not write its output fails now, not after the statistics.
  for (const message of await guardOutput(loaded)) emit({ type: 'log', level: 'info', message });

  // The loaded recipe carries the schema's defaults (recipe/validate.ts fills them in): nothing is restated here.
  const device = opts.device ?? recipe.runtime.device;
  const threads = opts.threads ?? recipe.runtime.threads;
  const session: SessionOptions = { device, ...(threads ? { threads } : {}), precision: recipe.runtime.precision };
  const seed = recipe.runtime.seed;
  const align = {
    method: recipe.align.method,
    permute: recipe.align.permute,
    heads: recipe.align.heads,
    selfCheck: recipe.align.self_check,
  };

  stage('load', 'loading models');
  const backend = await resolveBackend(device);
  const hub = {
    baseDir: path.dirname(loaded.file),
    ...(opts.signal ? { signal: opts.signal } : {}),
    onProgress: (p: HubProgress) =>
      emit({ type: 'progress', stage: 'load', done: p.received, total: p.total, message: `${p.repo}: ${p.file}` }),
  };
  const modelRef = (ref: string) => (parseHubRef(ref) ? ref : loaded.resolve(ref));
  const anchor = await loadEncoderModel(modelRef(recipe.models.anchor), hub);
  const other = await loadEncoderModel(modelRef(recipe.models.other), hub);
  checkPairCompatible(anchor.config, other.config);
  // output_onnx: a merge too big for one ONNX file fails now, not at the write stage.
  const onnxProblem = recipe.output_onnx ? onnxExportProblem(anchor.config, recipe.merge.width) : undefined;
  if (onnxProblem) throw new EngineError('bad-recipe', `${loaded.file}: ${onnxProblem}`, loaded.file);
  const cfg = anchor.config;
  const spec = buildPermutationSpec(cfg);

  // Probe audio: for the methods that need it (pipeline/probe-need.ts), and a slice of it for the self-check.
  let probe: ProbeSet | undefined;
  const need = probeNeed(recipe);
  if (need || recipe.probe) {
    if (!recipe.probe) throw new EngineError('bad-recipe', `${need!.setting} needs a probe section`, loaded.file);
    stage('probe', 'decoding and segmenting probe audio');
    probe = await buildProbeSet({
      sources: recipe.probe.audio,
      baseDir: path.dirname(loaded.file),
      sampleRate: cfg.sampleRate,
      segmentSeconds: recipe.probe.segment_seconds,
      maxSeconds: recipe.probe.max_seconds,
      seed,
      domains: recipe.probe.domains,
      progress: emit,
      signal: opts.signal,
    });
    emit({
      type: 'log',
      level: 'info',
      message: `probe: ${probe.totalSegments} segments, ${probe.totalSeconds.toFixed(0)} s of audio from ${probe.sources.length} source(s)`,
    });
  }

  // Alignment, by the method the recipe names (align/methods/); variants that align differently reuse the context.
  const alignCtx = { anchor, other, spec, probe, seed, batchSize: recipe.runtime.batch_size, session, stage, emit, signal: opts.signal };
  const aligned = await alignMethod(align.method).align({
    ...alignCtx,
    permute: align.permute,
    heads: align.heads,
    memory: recipe.runtime.memory,
    shards: opts.statsDirs
      ? { dirs: opts.statsDirs, recipe, baseDir: path.dirname(loaded.file), modelDirs: { anchor: anchor.source, other: other.source } }
      : undefined,
  });
  const { perms, permuted, dead, correlations } = aligned;
  let selfCheckReport: MergeReport['align']['selfCheck'] = null;
  if (perms.size > 0 && align.selfCheck) {
    stage('self-check', 'checking that the permuted model computes the same function');
    const { audio, batch } = selfCheckAudio(probe, cfg.sampleRate, seed);
    // Function preservation is checked to 1e-5, which only float32 arithmetic can show.
    const r = await selfCheck(other, permuted, perms, audio, batch, { ...session, precision: 'fp32' });
    // A method that departs from function preservation on purpose (paper) gets its deviation reported, not refused.
    const warning = assertSelfCheck(r, aligned.functionPreserving);
    selfCheckReport = { maxRelativeError: r.maxRelativeError, tolerance: r.tolerance, passed: r.passed, ...(warning ? { warning } : {}) };
    if (warning) emit({ type: 'log', level: 'warning', message: warning });
  }

  // Merge at the recipe's λ; the sweep adds evaluation points.
  const method = recipe.merge.method;
  const lambda: LambdaSpec = recipe.merge.lambda;
  const sweep = [...(recipe.merge.sweep ?? [])].sort((a, b) => a - b);
  const ctx = { layers: cfg.layers, preLayerNorm: cfg.preLayerNorm };
  // The main settings and each variant (pipeline/systems.ts); variants that align differently align here, once each.
  const systems = systemsOf(recipe);
  const alignments = new Map([[alignmentKey(recipe.align), Promise.resolve(aligned)]]);
  for (const s of systems.slice(1)) await alignmentFor(s, alignments, alignCtx);
  const buildCtx: BuildContext = { anchor, other, probe, batchSize: recipe.runtime.batch_size, seed, session, emit, signal: opts.signal };
  const systemReports = new Map<string, SystemReport>();
  const build = async (s: SystemSettings, spec: LambdaSpec) => {
    const built = await buildSystem(s, await alignmentFor(s, alignments, alignCtx), spec, buildCtx);
    systemReports.set(s.name, {
      name: s.name,
      align: { method: s.align.method, permute: s.align.permute, heads: s.align.heads },
      merge: { ...s.merge },
      parameters: built.parameters,
    });
    return built;
  };
  stage(
    'merge',
    `${method} merge${recipe.merge.width > 1 ? `, FFN width ×${recipe.merge.width}` : ''}${recipe.merge.repair ? ', statistics repair' : ''}`,
  );
  const main = await build(systems[0]!, lambda);
  const merged = main.weights;

  // Evaluation.
  let evaluation: MergeReport['evaluation'] = null;
  if (recipe.evaluate) {
    stage('evaluate', `${recipe.evaluate.tasks.length} task(s)`);
    const tasks = await loadEvalTasks(
      recipe.evaluate.tasks.map((t) => ({ name: t.name, domain: t.domain, data: loaded.resolve(t.data) })),
      (f) => loadAudio(f, cfg.sampleRate),
      { split: recipe.evaluate.split, folds: recipe.evaluate.folds, seed, progress: emit, signal: opts.signal },
    );
    evaluation = {
      ...(await evaluateVariants({
        anchor,
        other,
        merged: main,
        systems,
        build,
        tasks,
        method: mergeMethod(method).interpolation,
        lambda,
        sweep,
        ctx,
        session,
        seed,
        emit,
        signal: opts.signal,
        aligned: perms.size > 0,
        memory: recipe.runtime.memory,
      })),
      split: recipe.evaluate.split,
      ...(recipe.evaluate.split === 'validation' && recipe.evaluate.folds > 1 ? { folds: recipe.evaluate.folds } : {}),
    };
  }

  // Output.
  stage('write', `writing ${recipe.output}`);
  const outputDir = loaded.resolve(recipe.output);
  const staged = await StagedOutput.create(outputDir);
  try {
    await writeConfig(anchor.source, staged.file('config.json'), main.config);
    await fs.copyFile(path.join(anchor.source, 'preprocessor_config.json'), staged.file('preprocessor_config.json')).catch(() => undefined);
    // A drop-in replacement: every tensor of the anchor's checkpoint, not only the encoder's (model/checkpoint-extras.ts).
    const [anchorCkpt, otherCkpt] = await Promise.all([openCheckpoint(anchor.source), openCheckpoint(other.source)]);
    try {
      const extras = await checkpointExtras({
        anchor: anchorCkpt,
        anchorLayout: anchor.layout,
        other: otherCkpt,
        otherLayout: other.layout,
        config: cfg,
        residual: perms.get(groupName.residual()),
        merge: { method: mergeMethod(method).interpolation, lambda, ...ctx },
      });
      await writeSafetensorsStream(
        staged.file('model.safetensors'),
        [...f32Sources(toStoredTensors(merged, anchor.layout)), ...extras.tensors],
        { merged_by: `merge-studio ${TOOL_VERSION}` },
      );
      if (extras.tensors.length) {
        const copied = extras.tensors.length - extras.merged.length;
        emit({
          type: 'log',
          level: 'info',
          message: `output: ${extras.tensors.length} tensor(s) beside the encoder${extras.merged.length ? `, merged: ${extras.merged.join(', ')}` : ''}${copied ? `, ${copied} copied from the anchor` : ''}`,
        });
      }
    } finally {
      await Promise.all([anchorCkpt.close(), otherCkpt.close()]);
    }
    if (recipe.output_onnx) await writeDeployableOnnx(main, staged.file(ONNX_FILE));
    await fs.writeFile(
      staged.file('permutations.json'),
      `${JSON.stringify({ convention: 'new unit i of `other` = old unit p[i]', groups: permutationsToJson(perms) })}\n`,
    );
    // output_variants: each variant's merged encoder at the recipe's λ, in a sub-folder named after it.
    const variantFiles: string[] = [];
    if (recipe.output_variants) {
      for (const s of systems.slice(1)) {
        checkCancel();
        const built = await build(s, lambda);
        await fs.mkdir(staged.file(s.name));
        await writeConfig(anchor.source, staged.file(path.join(s.name, 'config.json')), built.config);
        await writeSafetensorsStream(
          staged.file(path.join(s.name, 'model.safetensors')),
          f32Sources(toStoredTensors(built.weights, anchor.layout)),
          { merged_by: `merge-studio ${TOOL_VERSION}`, variant: s.name },
        );
        variantFiles.push(`${s.name}/config.json`, `${s.name}/model.safetensors`);
      }
    }
    checkCancel();
    timings[current!] = (timings[current!] ?? 0) + (performance.now() - stageStart) / 1000;
    const report: MergeReport = {
      version: REPORT_VERSION,
      createdAt: new Date().toISOString(),
      recipe: {
        file: loaded.file,
        sha256: createHash('sha256')
          .update(await fs.readFile(loaded.file))
          .digest('hex'),
      },
      tool: { mergeStudio: TOOL_VERSION, onnxruntime: versions().onnxruntime!, node: process.versions.node },
      backend,
      models: { anchor: summarise(anchor), other: summarise(other) },
      probe: probe
        ? {
            seconds: probe.totalSeconds,
            segments: probe.totalSegments,
            sources: describeProbe(probe, path.dirname(loaded.file)).sources.map((s) => ({
              path: s.path,
              files: s.filesDecoded,
              seconds: s.seconds,
            })),
          }
        : null,
      align: {
        method: align.method,
        permute: align.permute,
        heads: align.heads,
        taps: tapReports(aligned.report, dead, correlations, perms),
        selfCheck: selfCheckReport,
      },
      merge: { method, lambda, sweep },
      systems: [
        {
          name: 'unaligned',
          align: { method: 'none', permute: [], heads: align.heads },
          merge: { method, repair: false, width: 1 },
          parameters: parameterCount(cfg),
        },
        ...systems.flatMap((s, i) => (i === 0 && perms.size === 0 ? [] : systemReports.has(s.name) ? [systemReports.get(s.name)!] : [])),
      ],
      evaluation,
      timings: { ...timings, total: (performance.now() - started) / 1000 },
      output: {
        dir: outputDir,
        files: [
          'config.json',
          'model.safetensors',
          ...(recipe.output_onnx ? [ONNX_FILE] : []),
          'permutations.json',
          ...variantFiles,
          'report.json',
        ],
      },
    };
    await fs.writeFile(staged.file('report.json'), `${JSON.stringify(report, null, 1)}\n`);
    checkCancel();
    await staged.publish();
    const reportPath = path.join(outputDir, 'report.json');
    emit({ type: 'result', outputDir, reportPath, summary: summaryOf(report) });
    return { report, outputDir, reportPath };
  } catch (e) {
    await staged.discard();
    throw staged.explain(e);
  }
}

function selfCheckAudio(probe: ProbeSet | undefined, rate: number, seed: number): { audio: Float32Array; batch: number } {
  if (probe && probe.segments.length > 0) {
    const n = Math.min(2, probe.segments.length);
    const len = probe.segmentSamples;
    const audio = new Float32Array(n * len);
    for (let i = 0; i < n; i++) audio.set(probe.segments[i]!.samples, i * len);
    return { audio, batch: n };
  }
  // No probe (weight matching): a deterministic chirp with noise exercises every unit well enough.
  let s = seed >>> 0;
  const noise = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.1;
  const audio = Float32Array.from({ length: 2 * rate }, (_, i) => 0.3 * Math.sin(2 * Math.PI * (100 + i / 40) * (i / rate)) + noise());
  return { audio, batch: 1 };
}

function summarise(m: EncoderModel): ModelSummary {
  const c = m.config;
  return {
    source: m.source,
    family: c.family,
    modelType: c.modelType,
    layers: c.layers,
    hidden: c.hidden,
    heads: c.heads,
    intermediate: c.intermediate,
    parameters: parameterCount(c),
    sampleRate: c.sampleRate,
    frameRate: c.frameRate,
  };
}

const GROUP_OF: Record<string, PermuteGroup> = { cnn: 'cnn', ffn: 'ffn', 'attn-v': 'attention', residual: 'residual' };

function tapReports(
  groups: readonly GroupReport[],
  dead: Map<string, { anchor: number; other: number }>,
  correlations: Map<string, Float64Array>,
  perms: Permutations,
): TapReport[] {
  return groups
    .filter((g) => GROUP_OF[g.kind])
    .map((g) => {
      const group = GROUP_OF[g.kind]!;
      const layerMatch = /^(?:conv|layer)\.(\d+)/.exec(g.group);
      const r = correlations.get(g.source);
      const report: TapReport = {
        tap: g.group,
        group,
        layer: layerMatch ? Number(layerMatch[1]) : null,
        units: g.size,
        meanCorrelationBefore: g.before,
        meanCorrelationAfter: g.after,
        moved: g.moved,
        deadUnits: dead.get(g.source) ?? { anchor: 0, other: 0 },
      };
      if (r) report.heatmap = blockHeatmap(r, g.size, perms.get(g.group));
      if (g.blockScores) report.headScores = g.blockScores.scores.map((x) => Math.round(x * 1e4) / 1e4);
      return report;
    });
}

interface VariantInputs {
  anchor: EncoderModel;
  other: EncoderModel;
  /** The main system at the recipe's λ. */
  merged: BuiltSystem;
  systems: SystemSettings[];
  build: (s: SystemSettings, lambda: LambdaSpec) => Promise<BuiltSystem>;
  tasks: PreparedTask[];
  method: MergeMethod;
  lambda: LambdaSpec;
  sweep: number[];
  ctx: { layers: number; preLayerNorm: boolean };
  session: SessionOptions;
  seed: number;
  emit: ProgressSink;
  signal: AbortSignal | undefined;
  aligned: boolean;
  /** `runtime.memory`: the budget the scoring workers must fit in. */
  memory: string | undefined;
}

/**
 * Scores the two sources once, then at the recipe's λ and every sweep λ: the unaligned merge, the main settings'
 * merge (`permuted`, when they align) and each variant.
 */
async function evaluateVariants(v: VariantInputs): Promise<NonNullable<MergeReport['evaluation']>> {
  const cfg = v.anchor.config;
  const points = lambdaPoints(v.lambda, v.sweep);
  // One progress bar for the whole stage: each system scored is one equal part of it.
  const parts = scoredSystemCount(v.systems.length, points.length, v.aligned);
  const partOf = partsOfStage(v.emit, parts);
  // Systems are scored in parallel (eval/scoring-pool.ts), as many as fit in memory, and listed in the order sent.
  const memory = scoringMemory(cfg, v.systems, v.memory);
  const scorer = await openScorer(v.tasks, { session: v.session, systems: parts, memory, ...(v.signal ? { signal: v.signal } : {}) });
  // Never rejected (the first failure is kept in `failure`): a run that stops early leaves none unhandled.
  const scored: Promise<{ variant: Variant; lambda: number | null; evaluation: ModelEvaluation } | undefined>[] = [];
  let failure: unknown;
  const score = (variant: Variant, lambda: number | null, weights: WeightMap, config = cfg) => {
    const job = scorer.score({
      label: `${variant}${lambda === null ? '' : ` λ=${lambda}`}`,
      model: { config, weights },
      probe: { seed: v.seed },
      // Systems whose front end came out identical (variants that differ after it) embed it once, within one λ.
      cacheGroup: String(lambda),
      progress: partOf(scored.length),
    });
    scored.push(
      job.then(
        (s) => ({ variant, lambda, evaluation: s.evaluation }),
        (e: unknown) => void (failure ??= e),
      ),
    );
  };
  /** Waits until the scorer has room for another system (bounded memory), and stops at the first failure. */
  const room = async () => {
    await scorer.whenRoom();
    if (failure) throw failure;
    if (v.signal?.aborted) throw new EngineError('cancelled', 'the run was cancelled');
  };
  try {
    score('anchor', null, v.anchor.weights);
    score('other', null, v.other.weights);
    for (const p of points) {
      await room();
      score('unaligned', p.lambda, mergeWeights(v.anchor.weights, v.other.weights, { method: v.method, lambda: p.spec, ...v.ctx }).weights);
      for (const [i, s] of v.systems.entries()) {
        if (i === 0 && !v.aligned) continue; // the main settings without alignment are the unaligned merge
        await room();
        const built = i === 0 && p.spec === v.lambda ? v.merged : await v.build(s, p.spec);
        score(s.name, p.lambda, built.weights, built.config);
      }
    }
    const rows: EvaluationRow[] = [];
    const averages: NonNullable<MergeReport['evaluation']>['averages'] = [];
    const systems = await Promise.all(scored);
    if (failure) throw failure;
    for (const { variant, lambda, evaluation } of systems.filter((s) => s !== undefined)) {
      for (const t of evaluation.tasks)
        rows.push({ variant, lambda, task: t.name, domain: (t.domain ?? 'speech') as EvaluationRow['domain'], score: t.score });
      averages.push({ variant, lambda, average: evaluation.average });
    }
    return { rows, averages };
  } finally {
    await scorer.close();
  }
}

/** The anchor's config.json, with the merged model's FFN width when zipping grew it. */
async function writeConfig(anchorDir: string, file: string, merged: { intermediate: number }): Promise<void> {
  const source = path.join(anchorDir, 'config.json');
  const json = JSON.parse(await fs.readFile(source, 'utf8')) as Record<string, unknown>;
  if (json.intermediate_size === merged.intermediate) return fs.copyFile(source, file);
  await fs.writeFile(file, `${JSON.stringify({ ...json, intermediate_size: merged.intermediate }, null, 2)}\n`);
}

function summaryOf(r: MergeReport): JobSummary {
  const taps = r.align.taps;
  const mean = (f: (t: TapReport) => number) => (taps.length ? taps.reduce((s, t) => s + f(t), 0) / taps.length : null);
  return {
    meanCorrelationBefore: mean((t) => t.meanCorrelationBefore),
    meanCorrelationAfter: mean((t) => t.meanCorrelationAfter),
    ...(r.evaluation ? { scores: r.evaluation.averages.map((a) => ({ variant: a.variant, lambda: a.lambda, average: a.average })) } : {}),
    seconds: r.timings.total,
  };
}
