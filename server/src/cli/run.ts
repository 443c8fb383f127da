/** `merge-studio run <recipe>`: align + merge + evaluate, with a progress bar (or JSON events) and a summary table. */
import * as path from 'node:path';
import type { Command } from 'commander';
import { EngineError } from '../engine/errors';
import { loadEncoderConfig } from '../engine/io/hfconfig';
import { parseHubRef, resolveModelRef } from '../engine/io/hub';
import { framesFor } from '../engine/model/encoder';
import { resolveBackend } from '../engine/model/runtime';
import { alignMethod } from '../engine/align/methods';
import { planStatistics } from '../engine/pipeline/memory-plan';
import { defaultBatchSize, estimateMemory, formatBytes } from '../engine/pipeline/plan';
import { lambdaPoints, scoredSystemCount, scoringMemory, systemsOf } from '../engine/pipeline/systems';
import { scoringPlan } from '../engine/eval/scoring-pool';
import { guardOutput } from '../engine/pipeline/output-guard';
import { ONNX_FILE, onnxExportProblem } from '../engine/pipeline/onnx-export';
import { probeNeed } from '../engine/pipeline/probe-need';
import type { MergeReport } from '../engine/pipeline/report';
import { runLoadedRecipe } from '../engine/pipeline/run';
import { loadRecipe } from '../engine/recipe/load';
import { recipeSchema } from '../engine/recipe/schema';
import { parseDevice, parseThreads, type Output } from './common';
import { parseProgressFormat, withJobSession } from './job-session';

export function registerRunCommand(program: Command, out: Output): void {
  program
    .command('run')
    .description('align, merge and evaluate as a recipe says; writes the output folder and report.json')
    .argument('<recipe>', 'a *.merge.yaml recipe')
    .option('--device <device>', 'auto | cpu | webgpu | cuda (overrides runtime.device)')
    .option('--threads <n>', 'CPU threads for onnxruntime, and systems evaluation scores at once')
    .option('--progress <format>', 'bar (default on a terminal) | plain | json (one JSON event per line on stdout)')
    .option('--dry-run', 'print the plan (models, taps, frames, memory) without computing')
    .option('--stats <dirs...>', 'reduce these statistics shards (merge-studio stats --shard) instead of computing the statistics')
    .action(async (file: string, opts: { device?: string; threads?: string; progress?: string; dryRun?: boolean; stats?: string[] }) => {
      const device = opts.device ? parseDevice(opts.device) : undefined;
      const threads = parseThreads(opts.threads);
      const format = parseProgressFormat(opts.progress);
      const loaded = await loadRecipe(file);
      if (opts.dryRun) {
        // The same output checks as a run, without changing anything: refusals fail the dry run too.
        const recovery = await guardOutput(loaded, { dryRun: true });
        await printPlan(loaded, out, device, threads);
        for (const line of recovery) out.info(`         ${line}`);
        return;
      }
      await withJobSession(format, async (job) => {
        const result = await runLoadedRecipe(loaded, {
          ...(device ? { device } : {}),
          ...(threads ? { threads } : {}),
          ...(opts.stats ? { statsDirs: opts.stats.map((d) => path.resolve(d)) } : {}),
          onEvent: job.emit,
          signal: job.signal,
        });
        if (format !== 'json') {
          job.finishLine();
          for (const line of summaryTable(result.report)) out.info(line);
          out.info(`wrote ${result.outputDir} (report: ${result.reportPath})`);
        }
      });
    });
}

async function printPlan(
  loaded: Awaited<ReturnType<typeof loadRecipe>>,
  out: Output,
  device: Parameters<typeof resolveBackend>[0] | undefined,
  threads: number | undefined,
): Promise<void> {
  const r = loaded.recipe;
  const anchorRef = parseHubRef(r.models.anchor)
    ? await resolveModelRef(r.models.anchor, { baseDir: path.dirname(loaded.file) })
    : loaded.resolve(r.models.anchor);
  const cfg = await loadEncoderConfig(anchorRef);
  const { align } = r;
  const { permute, method } = align;
  const taps = alignMethod(method).taps(cfg, permute, align.heads);
  // Without a probe the plan still sizes a batch of default-length segments.
  const segSeconds = r.probe?.segment_seconds ?? recipeSchema.properties.probe.properties.segment_seconds.default;
  const segSamples = Math.round(segSeconds * cfg.sampleRate);
  const backend = await resolveBackend(device ?? r.runtime.device);
  const batch = r.runtime?.batch_size ?? defaultBatchSize(cfg, segSamples, backend);
  const mem = estimateMemory(cfg, taps, batch, segSamples);
  out.info(`recipe   ${loaded.file}`);
  out.info(`anchor   ${r.models.anchor}`);
  out.info(`other    ${r.models.other}`);
  out.info(`backend  ${backend}`);
  out.info(`align    ${method}; permute ${permute.join(', ')}; heads ${align.heads}; ${taps.length} taps`);
  if (r.probe) {
    const probeText = `up to ${r.probe.max_seconds} s per source × ${r.probe.audio.length} source(s), ${segSeconds} s segments (${framesFor(cfg, segSamples)} frames each)`;
    // Only the methods that align or repair from activations read the probe for statistics (pipeline/probe-need.ts).
    if (probeNeed(r)) out.info(`probe    ${probeText}, batches of ${batch}`);
    else if (method === 'none') out.info(`probe    not used: align.method none computes no statistics and permutes nothing`);
    else
      out.info(
        `probe    no statistics from it (align.method ${method} needs no probe); decoded (${probeText}) only for the self-check's segments`,
      );
  }
  out.info(
    `merge    ${r.merge.method} λ=${JSON.stringify(r.merge.lambda)}${r.merge.sweep ? `, sweep ${r.merge.sweep.join(', ')}` : ''}${r.merge.width > 1 ? `, FFN width ×${r.merge.width}` : ''}${r.merge.repair ? ', statistics repair' : ''}`,
  );
  for (const s of systemsOf(r).slice(1)) {
    out.info(
      `variant  ${s.name}: align ${s.align.method} (${s.align.permute.join(', ')}); merge ${s.merge.method}${s.merge.width > 1 ? `, FFN width ×${s.merge.width}` : ''}${s.merge.repair ? ', statistics repair' : ''}`,
    );
  }
  if (r.evaluate) {
    const systems = systemsOf(r);
    const count = scoredSystemCount(systems.length, lambdaPoints(r.merge.lambda, r.merge.sweep ?? []).length, method !== 'none');
    const memory = scoringMemory(cfg, systems, r.runtime.memory);
    const scoring = scoringPlan({ session: { threads: threads ?? r.runtime.threads }, systems: count, memory, backend });
    const how =
      scoring.workers > 0
        ? `${scoring.workers} at a time in worker threads, ${scoring.threads} onnxruntime thread(s) each`
        : 'one at a time';
    out.info(`evaluate ${r.evaluate.tasks.map((t) => t.name).join(', ')}; ${count} systems, scored ${how}`);
  }
  out.info(
    `memory   weights ${formatBytes(mem.weightsBytes)}, statistics ${formatBytes(mem.statisticsBytes)}, batch activations ≈ ${formatBytes(mem.batchActivationBytes)}`,
  );
  if (probeNeed(r)) {
    // The statistics step's peak as pipeline/memory-plan.ts estimates it (bench:align checks it against a measurement).
    const plan = planStatistics(cfg, taps, segSamples, { batchSize: r.runtime.batch_size, memory: r.runtime.memory, backend });
    const e = plan.estimate;
    out.info(
      `         statistics step peak ≈ ${formatBytes(e.total)}${plan.budget ? ` (runtime.memory ${r.runtime.memory})` : ''}: batches of ${plan.batchSize}, front end ${plan.passes.frontBatch || plan.batchSize} segment(s) at a time, ${plan.passes.layersPerPass} layer(s) per pass; weights ${formatBytes(e.weights)} + in onnxruntime ${formatBytes(e.sessionWeights)}, statistics ${formatBytes(e.statistics)}, activations ${formatBytes(e.activations)}`,
    );
  }
  // The refusal a run would give after loading the models.
  const onnx = r.output_onnx ? onnxExportProblem(cfg, r.merge.width) : undefined;
  if (onnx) throw new EngineError('bad-recipe', `${loaded.file}: ${onnx}`, loaded.file);
  out.info(`output   ${loaded.resolve(r.output)}${r.output_onnx ? ` (with ${ONNX_FILE})` : ''}`);
}

/** The summary printed after a run: alignment per group, then the evaluation table. */
export function summaryTable(report: MergeReport): string[] {
  const lines: string[] = [];
  const taps = report.align.taps;
  if (taps.length) {
    // What before → after measures depends on the method: matched activations, or matched weights (align/solve.ts).
    const measure = report.align.method === 'weights' ? 'mean cosine similarity of matched weights' : 'mean diagonal correlation';
    lines.push('', `alignment (${report.align.method}): ${measure} before → after, units moved`);
    const byGroup = new Map<string, typeof taps>();
    for (const t of taps) byGroup.set(t.group, [...(byGroup.get(t.group) ?? []), t]);
    for (const [group, list] of byGroup) {
      const mean = (f: (t: (typeof taps)[number]) => number) => list.reduce((s, t) => s + f(t), 0) / list.length;
      lines.push(
        `  ${group.padEnd(10)} ${String(list.length).padStart(3)} tap(s)  ${mean((t) => t.meanCorrelationBefore).toFixed(3)} → ${mean((t) => t.meanCorrelationAfter).toFixed(3)}  moved ${(100 * mean((t) => t.moved)).toFixed(0)}%`,
      );
    }
  }
  if (report.align.selfCheck)
    lines.push(
      `  self-check: max relative error ${report.align.selfCheck.maxRelativeError.toExponential(1)} (tolerance ${report.align.selfCheck.tolerance})${report.align.selfCheck.warning ? `; ${report.align.method} is not function-preserving: reported, not refused` : ''}`,
    );
  const ev = report.evaluation;
  if (ev) {
    // One row per system and λ (systems × λ grow the table downwards), one column per task, then the average and size.
    const tasks = [...new Set(ev.rows.map((r) => r.task))];
    const params = new Map<string, number>([
      ['anchor', report.models.anchor.parameters],
      ['other', report.models.other.parameters],
      ...(report.systems ?? []).map((s) => [s.name, s.parameters] as const),
    ]);
    const order = [...new Set(ev.averages.map((a) => a.variant))];
    const rows = [...ev.averages].sort(
      (a, b) => order.indexOf(a.variant) - order.indexOf(b.variant) || (a.lambda ?? -1) - (b.lambda ?? -1),
    );
    const nameWidth = Math.max(6, ...order.map((v) => v.length));
    const widths = tasks.map((t) => Math.max(5, t.length));
    const cell = (task: string, a: (typeof rows)[number]) =>
      ev.rows.find((r) => r.task === task && r.variant === a.variant && r.lambda === a.lambda)?.score;
    lines.push('', `evaluation (${ev.split ?? 'test'} accuracy, linear probes)`);
    lines.push(
      `  ${'system'.padEnd(nameWidth)}  ${'λ'.padStart(4)}  ${tasks.map((t, i) => t.padStart(widths[i]!)).join('  ')}  average  parameters`,
    );
    for (const a of rows) {
      const p = params.get(a.variant);
      const scores = tasks.map((t, i) => (cell(t, a)?.toFixed(3) ?? '-').padStart(widths[i]!)).join('  ');
      lines.push(
        `  ${a.variant.padEnd(nameWidth)}  ${(a.lambda === null ? '-' : String(a.lambda)).padStart(4)}  ${scores}  ${a.average.toFixed(3).padStart(7)}  ${(p === undefined ? '-' : p.toLocaleString('en-US')).padStart(10)}`,
      );
    }
  }
  const t = report.timings;
  lines.push(
    '',
    `time ${t.total.toFixed(1)} s (${Object.entries(t)
      .filter(([k]) => k !== 'total')
      .map(([k, v]) => `${k} ${(v as number).toFixed(1)}`)
      .join(', ')}) on ${report.backend}`,
  );
  return lines;
}
