import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { ShardedJob } from '../../server/src/engine/cluster/job';
import { kubernetesJobs, kubernetesManifest } from '../../server/src/engine/cluster/k8s';
import { shellQuote, slurmScript } from '../../server/src/engine/cluster/slurm';
import { ENGINE_MALLOC_ENV, engineProcessEnv } from '../../server/src/engine/process-env';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();

const job: ShardedJob = {
  name: 'speech-music',
  recipe: 'speech-music.merge.yaml',
  statsDir: 'stats dir',
  workDir: '/work/merge',
  shards: 4,
  command: ['merge-studio'],
  cpus: 4,
  memoryMiB: 3584,
};

describe('cluster jobs', () => {
  it('emits a Kubernetes Indexed Job and a reduce Job that validate against the Kubernetes API schema', () => {
    const docs = parseAllDocuments(kubernetesManifest(job, { image: 'registry.example/merge-studio:0.1', claim: 'work' })).map(
      (d) => d.toJSON() as Record<string, unknown>,
    );
    expect(docs).toHaveLength(2);
    for (const doc of docs) new Job(doc as never).validate(); // throws on any schema violation
    const stats = docs[0] as {
      spec: { completionMode: string; completions: number; template: { spec: { containers: { command: string[] }[] } } };
    };
    expect(stats.spec.completionMode).toBe('Indexed');
    expect(stats.spec.completions).toBe(4);
    const cmd = stats.spec.template.spec.containers[0]!.command;
    expect(cmd[2]).toContain('--shard "$JOB_COMPLETION_INDEX/4"');
    expect(cmd[2]).toContain(`--out 'stats dir/shard-'"$JOB_COMPLETION_INDEX"`);
    const reduce = docs[1] as {
      spec: { template: { spec: { initContainers: { command: string[] }[]; containers: { command: string[] }[] } } };
    };
    expect(reduce.spec.template.spec.containers[0]!.command).toEqual([
      'merge-studio',
      'run',
      'speech-music.merge.yaml',
      '--stats',
      'stats dir/shard-0',
      'stats dir/shard-1',
      'stats dir/shard-2',
      'stats dir/shard-3',
      '--threads',
      '4',
      '--progress',
      'plain',
    ]);
    expect(reduce.spec.template.spec.initContainers[0]!.command[2]).toMatch(/-ge 4 \]/);
  });

  it('the schema check catches a broken manifest (the validator is live)', () => {
    const [stats] = kubernetesJobs(job, { image: 'img', claim: 'work' }) as [{ spec: { completions: unknown } }];
    stats.spec.completions = 'four';
    expect(() => new Job(stats as never).validate()).toThrow();
  });

  it('emits an sbatch array script that submits itself and a dependent reduce job', async () => {
    const text = slurmScript(job);
    expect(text).toContain('#SBATCH --array=0-3');
    expect(text).toContain('--dependency=afterok:"$array"');
    expect(text).toContain('--shard "$SLURM_ARRAY_TASK_ID/4"');
    expect(text).toContain(`--out 'stats dir/shard-'"$SLURM_ARRAY_TASK_ID"`);
    const file = path.join(tempDir(), 'stats.sbatch');
    await fs.writeFile(file, text);
    execFileSync('bash', ['-n', file]); // syntax
    // Run as array task 2 with a fake merge-studio that prints its arguments: the shard's command line.
    const fake = path.join(path.dirname(file), 'fake.sh');
    await fs.writeFile(fake, '#!/bin/sh\nfor a in "$@"; do printf "[%s]" "$a"; done\n', { mode: 0o755 });
    const script = slurmScript({ ...job, command: [fake] });
    await fs.writeFile(file, script);
    const out = execFileSync('bash', [file], {
      env: { ...process.env, SLURM_ARRAY_TASK_ID: '2', SLURM_CPUS_PER_TASK: '3' },
      encoding: 'utf8',
    });
    expect(out).toBe('[stats][speech-music.merge.yaml][--shard][2/4][--out][stats dir/shard-2][--threads][3][--progress][plain]');
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });

  it('the shards run with the engine malloc settings, unless the environment already has its own', async () => {
    const dir = tempDir();
    const fake = path.join(dir, 'fake.sh');
    await fs.writeFile(fake, '#!/bin/sh\nprintf "%s|%s" "$MALLOC_MMAP_THRESHOLD_" "$MALLOC_TRIM_THRESHOLD_"\n', { mode: 0o755 });
    const file = path.join(dir, 'stats.sbatch');
    await fs.writeFile(file, slurmScript({ ...job, command: [fake] }));
    const { MALLOC_MMAP_THRESHOLD_: _m, MALLOC_TRIM_THRESHOLD_: _t, ...clean } = process.env;
    const run = (extra: Record<string, string>) =>
      execFileSync('bash', [file], { env: { ...clean, SLURM_ARRAY_TASK_ID: '0', ...extra }, encoding: 'utf8' });
    const { MALLOC_MMAP_THRESHOLD_: mmap, MALLOC_TRIM_THRESHOLD_: trim } = ENGINE_MALLOC_ENV;
    expect(run({})).toBe(`${mmap}|${trim}`);
    expect(run({ MALLOC_MMAP_THRESHOLD_: '65536' })).toBe(`65536|${trim}`);
    // Kubernetes: both containers carry them.
    const [stats, reduce] = kubernetesJobs(job, { image: 'img', claim: 'work' }) as {
      spec: { template: { spec: { containers: { env: { name: string; value: string }[] }[] } } };
    }[];
    for (const j of [stats!, reduce!])
      expect(Object.fromEntries(j.spec.template.spec.containers[0]!.env.map((e) => [e.name, e.value]))).toEqual(ENGINE_MALLOC_ENV);
  });

  it('an engine process gets the malloc settings on Linux only, and keeps values the user set', () => {
    expect(engineProcessEnv({ PATH: '/bin' }, 'linux')).toEqual({ PATH: '/bin', ...ENGINE_MALLOC_ENV });
    expect(engineProcessEnv({ MALLOC_TRIM_THRESHOLD_: '1' }, 'linux').MALLOC_TRIM_THRESHOLD_).toBe('1');
    expect(engineProcessEnv({ PATH: '/bin' }, 'darwin')).toEqual({ PATH: '/bin' });
    expect(engineProcessEnv({ PATH: '/bin' }, 'win32')).toEqual({ PATH: '/bin' });
  });
});
