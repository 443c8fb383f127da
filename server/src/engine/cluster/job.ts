/**
 * A sharded statistics job as the cluster emitters see it: N `merge-studio stats --shard I/N` tasks, then one
 * `merge-studio run --stats` over their folders. Paths are as the cluster's nodes see them.
 */
export interface ShardedJob {
  /** Job name prefix (letters, digits, '-'). */
  name: string;
  /** The recipe, as the nodes see it. */
  recipe: string;
  /** Folder holding shard-0 … shard-(N−1) (and Slurm's logs). */
  statsDir: string;
  /** Working directory of every task. */
  workDir: string;
  shards: number;
  /** The merge-studio command line, e.g. ['merge-studio'] or ['node', '/opt/merge-studio/bin/merge-studio.js']. */
  command: string[];
  cpus: number;
  /** Memory per task in MiB (the statistics step's estimate with headroom, or runtime.memory). */
  memoryMiB: number;
}

export function shardDir(job: ShardedJob, index: number | string): string {
  return `${job.statsDir.replace(/\/+$/, '')}/shard-${index}`;
}

export function shardDirs(job: ShardedJob): string[] {
  return Array.from({ length: job.shards }, (_, i) => shardDir(job, i));
}

/** A job name safe for Slurm and for Kubernetes object names (RFC 1123 label). */
export function jobName(text: string): string {
  const name = text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  return name || 'merge-studio';
}
