/**
 * `merge-studio stats <recipe> --shard I/N --out DIR`: one shard of a recipe's statistics (pipeline/shards.ts), reduced
 * later by `merge-studio run <recipe> --stats DIR…`. `--emit slurm|k8s --shards N` writes the cluster job that runs
 * all N shards and the reduce (engine/cluster/).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { correlationTaps } from '../engine/align/methods/correlation';
import { jobName, type ShardedJob } from '../engine/cluster/job';
import { kubernetesManifest } from '../engine/cluster/k8s';
import { slurmScript } from '../engine/cluster/slurm';
import { EngineError } from '../engine/errors';
import { loadEncoderConfig } from '../engine/io/hfconfig';
import { parseHubRef, resolveModelRef } from '../engine/io/hub';
import { planStatistics } from '../engine/pipeline/memory-plan';
import { parseShard } from '../engine/pipeline/shards';
import { computeStatShard } from '../engine/pipeline/stats-job';
import { loadRecipe, type LoadedRecipe } from '../engine/recipe/load';
import { parseDevice, parseThreads, type Output } from './common';
import { parseProgressFormat, withJobSession } from './job-session';

interface StatsOptions {
  shard?: string;
  out?: string;
  emit?: string;
  shards?: string;
  statsDir?: string;
  cpus?: string;
  image?: string;
  claim?: string;
  command?: string;
  workdir?: string;
  device?: string;
  threads?: string;
  progress?: string;
}

export function registerStatsCommand(program: Command, out: Output): void {
  program
    .command('stats')
    .description(
      "compute one shard of a recipe's statistics (--shard I/N --out DIR), or write a Slurm / Kubernetes job that computes all shards and reduces them (--emit)",
    )
    .argument('<recipe>', 'a *.merge.yaml recipe (align.method correlation)')
    .option('--shard <I/N>', 'which part of the probe set: I from 0 to N−1')
    .option('--out <path>', 'with --shard: the shard folder to write; with --emit: the script or manifest file (default: stdout)')
    .option('--emit <engine>', 'slurm | k8s: write the job for all shards and the reduce')
    .option('--shards <N>', 'with --emit: number of shards', '4')
    .option('--stats-dir <dir>', 'with --emit: folder for the shard folders (default: <recipe folder>/stats)')
    .option('--cpus <n>', 'with --emit: CPUs per task', '4')
    .option('--workdir <dir>', "with --emit: working directory of every task (default: the recipe's folder)")
    .option('--command <cmd>', 'with --emit: how the nodes run merge-studio (default: this installation for slurm, "merge-studio" for k8s)')
    .option('--image <image>', 'with --emit k8s: container image with merge-studio on its PATH')
    .option(
      '--claim <name>',
      'with --emit k8s: PersistentVolumeClaim (ReadWriteMany) mounted at the working directory',
      'merge-studio-work',
    )
    .option('--device <device>', 'auto | cpu | webgpu | cuda (overrides runtime.device)')
    .option('--threads <n>', 'CPU threads for onnxruntime')
    .option('--progress <format>', 'bar (default on a terminal) | plain | json (one JSON event per line on stdout)')
    .action(async (file: string, opts: StatsOptions) => {
      const loaded = await loadRecipe(file);
      if (opts.emit) return emitJob(loaded, opts, out);
      if (!opts.shard || !opts.out) throw new EngineError('bad-shard', 'stats needs --shard I/N and --out DIR (or --emit slurm|k8s)');
      const shard = parseShard(opts.shard);
      const device = opts.device ? parseDevice(opts.device) : undefined;
      const threads = parseThreads(opts.threads);
      const format = parseProgressFormat(opts.progress);
      const dir = path.resolve(opts.out);
      await withJobSession(format, async (job) => {
        const r = await computeStatShard(loaded, shard, dir, {
          ...(device ? { device } : {}),
          ...(threads ? { threads } : {}),
          onEvent: job.emit,
          signal: job.signal,
        });
        if (format === 'json')
          job.emit({
            type: 'result',
            outputDir: r.dir,
            reportPath: path.join(r.dir, 'manifest.json'),
            summary: { meanCorrelationBefore: null, meanCorrelationAfter: null, seconds: r.seconds },
          });
        else {
          job.finishLine();
          out.info(`wrote shard ${shard.index}/${shard.count} (${r.segments} probe segments) to ${r.dir} in ${r.seconds.toFixed(1)} s`);
        }
      });
    });
}

function positiveInt(value: string | undefined, what: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new EngineError('bad-config', `${what} must be a positive integer, got "${value}"`);
  return n;
}

async function emitJob(loaded: LoadedRecipe, opts: StatsOptions, out: Output): Promise<void> {
  const engine = opts.emit;
  if (engine !== 'slurm' && engine !== 'k8s') throw new EngineError('bad-config', `--emit must be slurm or k8s, got "${engine}"`);
  const r = loaded.recipe;
  if (r.align.method !== 'correlation')
    throw new EngineError(
      'bad-recipe',
      `statistics shards are for align.method correlation; this recipe uses ${r.align.method}`,
      loaded.file,
    );
  if (!r.probe) throw new EngineError('bad-recipe', 'align.method correlation needs a probe section', loaded.file);
  const shards = positiveInt(opts.shards, '--shards');
  const cpus = positiveInt(opts.cpus, '--cpus');
  const recipeDir = path.dirname(loaded.file);
  const workDir = path.resolve(opts.workdir ?? recipeDir);
  // Memory per task: runtime.memory when the recipe sets it, else the statistics estimate with a quarter of headroom.
  const anchorRef = parseHubRef(r.models.anchor)
    ? await resolveModelRef(r.models.anchor, { baseDir: recipeDir })
    : loaded.resolve(r.models.anchor);
  const cfg = await loadEncoderConfig(anchorRef);
  const taps = correlationTaps(cfg, r.align.permute, r.align.heads);
  const plan = planStatistics(cfg, taps, Math.round(r.probe.segment_seconds * cfg.sampleRate), {
    batchSize: r.runtime.batch_size,
    memory: r.runtime.memory,
  });
  const memoryMiB = Math.ceil((plan.budget ?? plan.estimate.total * 1.25) / 2 ** 20 / 256) * 256;
  const job: ShardedJob = {
    name: jobName(path.basename(loaded.file).replace(/\.merge\.ya?ml$/, '')),
    recipe: path.relative(workDir, loaded.file) || loaded.file,
    statsDir: path.relative(workDir, path.resolve(opts.statsDir ?? path.join(recipeDir, 'stats'))) || '.',
    workDir,
    shards,
    command: opts.command
      ? opts.command.split(/\s+/).filter(Boolean)
      : engine === 'slurm'
        ? [process.execPath, path.resolve(process.argv[1]!)]
        : ['merge-studio'],
    cpus,
    memoryMiB,
  };
  let text: string;
  if (engine === 'slurm') text = slurmScript(job);
  else {
    if (!opts.image) throw new EngineError('bad-config', '--emit k8s needs --image: a container image with merge-studio on its PATH');
    text = kubernetesManifest(job, { image: opts.image, claim: opts.claim ?? 'merge-studio-work' });
  }
  if (!opts.out) {
    process.stdout.write(text);
    return;
  }
  await fs.writeFile(opts.out, text, { mode: engine === 'slurm' ? 0o755 : 0o644 });
  out.info(`wrote ${opts.out}: ${shards} shards of ${taps.length} taps, ${cpus} CPUs and ${memoryMiB} MiB per task`);
}
