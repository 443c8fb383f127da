/**
 * The three kinds of engine job the editor starts (`run`, `stats --shard`, `run --stats`) and what differs between
 * them: the CLI command line, the share of the job each stage stands for, the progress title, and which recipes can
 * be sharded. Everything else (progress, cancel, status) is the same job machinery (jobs.ts).
 */
import * as path from 'node:path';
import type { Diagnostic } from 'vscode-languageserver-protocol';
import { checkStructure, DIAGNOSTIC_SOURCE, Severity, type Range } from '../engine/recipe';
import type { Device, JobKind, JobStage, ShardSpec } from '../../../protocol/lsp-ext';

interface JobSettings {
  device?: Device;
  threads?: number;
}

/** What a job runs; folders are absolute (the server resolves them against the recipe's folder). */
export type JobSpec =
  | ({ kind: 'run' } & JobSettings)
  | ({ kind: 'run-with-stats'; statsDirs: string[] } & JobSettings)
  | ({ kind: 'stats'; shard: ShardSpec; outDir: string } & JobSettings);

/** The CLI arguments of a job, after `cli.js`: every kind prints JobEvents (`--progress json`). */
export function cliArgs(recipeFile: string, spec: JobSpec): string[] {
  const settings = [...(spec.device ? ['--device', spec.device] : []), ...(spec.threads ? ['--threads', String(spec.threads)] : [])];
  switch (spec.kind) {
    case 'run':
      return ['run', recipeFile, '--progress', 'json', ...settings];
    case 'run-with-stats':
      // `--stats` takes every argument up to the next option; the folders are absolute, so none looks like one.
      return ['run', recipeFile, '--progress', 'json', ...settings, '--stats', ...spec.statsDirs];
    case 'stats':
      return [
        'stats',
        recipeFile,
        '--shard',
        `${spec.shard.index}/${spec.shard.count}`,
        '--out',
        spec.outDir,
        '--progress',
        'json',
        ...settings,
      ];
  }
}

/**
 * Share of the whole job each stage stands for, in pipeline order (stages a job skips are jumped over). A shard is
 * mostly its statistics; a run from shards only reduces them, so its later stages weigh more.
 */
const STAGE_WEIGHTS: Record<JobKind, Partial<Record<JobStage, number>>> = {
  run: { load: 5, probe: 10, statistics: 35, assign: 5, permute: 5, 'self-check': 5, merge: 15, evaluate: 15, write: 5 },
  stats: { load: 10, probe: 20, statistics: 60, write: 10 },
  'run-with-stats': { load: 5, probe: 10, statistics: 5, assign: 10, permute: 5, 'self-check': 10, merge: 20, evaluate: 25, write: 10 },
};

export function overallPercentage(stage: JobStage, done = 0, total = 0, kind: JobKind = 'run'): number {
  const weights = STAGE_WEIGHTS[kind];
  let before = 0;
  for (const [s, w] of Object.entries(weights)) {
    if (s === stage) break;
    before += w;
  }
  const within = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
  return Math.round(before + (weights[stage] ?? 0) * within);
}

/**
 * Why a (checked, error-free) recipe cannot use statistics shards, located in it; undefined when it can. Shards hold
 * the activation statistics of `align.method: correlation`; the other methods compute none.
 */
export function shardingProblem(text: string): (Diagnostic & { message: string }) | undefined {
  const { validation, parsed } = checkStructure(text);
  const recipe = validation.partial as { align?: { method?: string } } | undefined;
  const method = recipe?.align?.method;
  if (method === 'correlation') return undefined;
  const firstLine: Range = { start: { line: 0, character: 0 }, end: { line: 0, character: parsed.lines.lineText(0).length } };
  const range = validation.ranges.value.get('align.method') ?? validation.ranges.key.get('align') ?? firstLine;
  return {
    range,
    severity: Severity.Error,
    source: DIAGNOSTIC_SOURCE,
    code: 'not-shardable',
    message: `Statistics shards are the correlation statistics of the probe audio: they need align.method correlation, and this recipe aligns by ${method ?? 'an unknown method'}`,
  };
}

/** A folder a client named, made absolute against the recipe's folder. */
export function resolveAgainstRecipe(recipeFile: string, dir: string): string {
  return path.resolve(path.dirname(recipeFile), dir);
}
