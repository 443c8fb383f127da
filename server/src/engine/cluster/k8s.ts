/**
 * `merge-studio stats <recipe> --emit k8s`: two Kubernetes Jobs in one manifest. The first is an Indexed Job of N
 * completions; pod I runs `stats --shard $JOB_COMPLETION_INDEX/N`. The second runs the reduce (`run --stats …`) after
 * an init container has waited for all N shard manifests on the shared volume (Kubernetes has no job dependencies;
 * a shard folder gets its manifest last, so N manifests mean N finished shards). Both mount one ReadWriteMany volume
 * claim at the working directory, where the recipe, models, probe audio and outputs live.
 */
import { stringify } from 'yaml';
import { shardDir, shardDirs, type ShardedJob } from './job';
import { ENGINE_MALLOC_ENV } from '../process-env';
import { shellQuote } from './slurm';

export interface KubernetesOptions {
  image: string;
  /** PersistentVolumeClaim mounted at workDir. */
  claim: string;
}

export function kubernetesJobs(job: ShardedJob, k8s: KubernetesOptions): Record<string, unknown>[] {
  const volumeMounts = [{ name: 'work', mountPath: job.workDir }];
  const volumes = [{ name: 'work', persistentVolumeClaim: { claimName: k8s.claim } }];
  const resources = { requests: { cpu: String(job.cpus), memory: `${job.memoryMiB}Mi` }, limits: { memory: `${job.memoryMiB}Mi` } };
  // The engine's malloc settings (engine/process-env.ts) for both containers.
  const env = Object.entries(ENGINE_MALLOC_ENV).map(([name, value]) => ({ name, value }));
  const labels = { 'app.kubernetes.io/name': 'merge-studio', 'app.kubernetes.io/component': 'statistics' };
  const shardCommand = [
    ...job.command,
    'stats',
    job.recipe,
    '--shard',
    `"$JOB_COMPLETION_INDEX/${job.shards}"`,
    '--out',
    `${shellQuote(shardDir(job, ''))}"$JOB_COMPLETION_INDEX"`,
    '--threads',
    String(job.cpus),
    '--progress',
    'plain',
  ];
  const stats = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: `${job.name}-stats`, labels },
    spec: {
      completionMode: 'Indexed',
      completions: job.shards,
      parallelism: job.shards,
      backoffLimit: 2 * job.shards,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          containers: [
            {
              name: 'stats',
              image: k8s.image,
              workingDir: job.workDir,
              command: [
                'sh',
                '-c',
                shardCommand.map((w, i) => (i >= job.command.length && w.includes('$JOB_COMPLETION_INDEX') ? w : shellQuote(w))).join(' '),
              ],
              env,
              resources,
              volumeMounts,
            },
          ],
          volumes,
        },
      },
    },
  };
  const manifests = shardDirs(job).map((d) => `${d}/manifest.json`);
  const waitScript = `until [ "$(ls ${manifests.map(shellQuote).join(' ')} 2>/dev/null | wc -l)" -ge ${job.shards} ]; do sleep 20; done`;
  const reduce = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: `${job.name}-reduce`, labels: { ...labels, 'app.kubernetes.io/component': 'reduce' } },
    spec: {
      backoffLimit: 1,
      template: {
        metadata: { labels: { ...labels, 'app.kubernetes.io/component': 'reduce' } },
        spec: {
          restartPolicy: 'Never',
          initContainers: [{ name: 'wait-for-shards', image: k8s.image, command: ['sh', '-c', waitScript], volumeMounts }],
          containers: [
            {
              name: 'reduce',
              image: k8s.image,
              workingDir: job.workDir,
              command: [
                ...job.command,
                'run',
                job.recipe,
                '--stats',
                ...shardDirs(job),
                '--threads',
                String(job.cpus),
                '--progress',
                'plain',
              ],
              env,
              resources,
              volumeMounts,
            },
          ],
          volumes,
        },
      },
    },
  };
  return [stats, reduce];
}

export function kubernetesManifest(job: ShardedJob, k8s: KubernetesOptions): string {
  const header = `# merge-studio statistics of ${job.recipe} in ${job.shards} shards on Kubernetes (written by merge-studio stats --emit k8s).\n# kubectl apply -f <this file>: an Indexed Job (one pod per shard), and a Job that reduces the shards once all are written.\n`;
  return (
    header +
    kubernetesJobs(job, k8s)
      .map((doc) => `---\n${stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false })}`)
      .join('')
  );
}
