/**
 * `merge-studio stats <recipe> --emit slurm`: one bash file that is both the sbatch script of the shard job array
 * (task I runs `stats --shard $SLURM_ARRAY_TASK_ID/N`) and, run with bash outside a job, its own submitter: it submits
 * the array, then the reduce (`run --stats shard-0 … shard-(N−1)`) with --dependency=afterok on the array.
 */
import { ENGINE_MALLOC_ENV } from '../process-env';
import { shardDir, shardDirs, type ShardedJob } from './job';

/** Single-quotes a word for bash. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export function slurmScript(job: ShardedJob): string {
  const q = shellQuote;
  const cmd = job.command.map(q).join(' ');
  const reduce = [...job.command, 'run', job.recipe, '--stats', ...shardDirs(job), '--progress', 'plain'].map(q).join(' ');
  return [
    '#!/bin/bash',
    `# merge-studio statistics of ${job.recipe} in ${job.shards} shards on Slurm (written by merge-studio stats --emit slurm).`,
    '# Submit everything:  bash <this file>   (the shard array, then the reduce job once every shard succeeded)',
    '# Shards only:        sbatch <this file>',
    `#SBATCH --job-name=${job.name}-stats`,
    `#SBATCH --array=0-${job.shards - 1}`,
    `#SBATCH --cpus-per-task=${job.cpus}`,
    `#SBATCH --mem=${job.memoryMiB}M`,
    `#SBATCH --chdir=${job.workDir}`,
    `#SBATCH --output=${job.statsDir}/logs/stats-%A_%a.out`,
    'set -euo pipefail',
    // malloc settings the engine runs faster with (engine/process-env.ts), unless already set; exported before the
    // submitter's sbatch calls, so the reduce job (which inherits the submitting environment) gets them too.
    ...Object.entries(ENGINE_MALLOC_ENV).map(([k, v]) => `export ${k}="\${${k}:-${v}}"`),
    'if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then',
    `  mkdir -p ${q(`${job.statsDir}/logs`)}`,
    '  array=$(sbatch --parsable "$0")',
    '  array=${array%%;*}',
    `  reduce=$(sbatch --parsable --dependency=afterok:"$array" --job-name=${job.name}-reduce --cpus-per-task=${job.cpus} --mem=${job.memoryMiB}M --chdir=${q(job.workDir)} --output=${q(`${job.statsDir}/logs/reduce-%j.out`)} --wrap=${q(reduce)})`,
    '  echo "shards: job array $array; reduce: job $reduce (runs after every shard succeeded)"',
    '  exit 0',
    'fi',
    `exec ${cmd} stats ${q(job.recipe)} --shard "$SLURM_ARRAY_TASK_ID/${job.shards}" --out ${q(shardDir(job, ''))}"$SLURM_ARRAY_TASK_ID" --threads "\${SLURM_CPUS_PER_TASK:-${job.cpus}}" --progress plain`,
    '',
  ].join('\n');
}
