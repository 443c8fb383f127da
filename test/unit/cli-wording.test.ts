// What the CLI says about the methods that read no probe: the plan (`run --dry-run`) and the summary after a run.
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { summaryTable } from '../../server/src/cli/run';
import type { MergeReport } from '../../server/src/engine/pipeline/report';
import { ROOT, runCli } from '../helpers/cli';
import { HF_REFERENCE } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();
const MODEL = path.join(HF_REFERENCE, 'hubert-postln-a');

async function recipe(dir: string, align: string): Promise<string> {
  const file = path.join(dir, 'r.merge.yaml');
  const probe = path.join(ROOT, 'test', 'fixtures', 'audio');
  await fs.writeFile(
    file,
    [
      'version: 1',
      'models:',
      `  anchor: ${MODEL}`,
      `  other: ${MODEL}`,
      `probe: { audio: [${probe}] }`,
      `align: ${align}`,
      'merge:',
      '  lambda: 0.5',
      'output: ./out',
      '',
    ].join('\n'),
  );
  return file;
}

describe('CLI wording for methods without probe statistics', () => {
  it('--dry-run: align.method none does not read the probe; weights reads it only for the self-check', async () => {
    const dir = await tempDir();
    const none = runCli(['run', await recipe(dir, '{ method: none }'), '--dry-run', '--device', 'cpu']);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toMatch(/^probe +not used: align\.method none/m);
    const weights = runCli(['run', await recipe(dir, '{ method: weights }'), '--dry-run', '--device', 'cpu']);
    expect(weights.code, weights.stderr).toBe(0);
    expect(weights.stdout).toMatch(/^probe +no statistics from it \(align\.method weights needs no probe\)/m);
    expect(weights.stdout).not.toMatch(/batches of/);
  });

  it('the summary of a weights run names cosine similarity of matched weights, not diagonal correlation', () => {
    const report = JSON.parse(readFileSync(path.join(ROOT, 'test/fixtures/reports/example.report.json'), 'utf8')) as MergeReport;
    const weights = summaryTable({ ...report, align: { ...report.align, method: 'weights' } }).join('\n');
    expect(weights).toContain('mean cosine similarity of matched weights before → after');
    expect(weights).not.toContain('diagonal correlation');
    expect(summaryTable(report).join('\n')).toContain('mean diagonal correlation before → after');
  });
});

describe('GPU backends on a machine without them', () => {
  it('doctor prints no native noise on stderr, and the cuda reason points at the install command', () => {
    const r = runCli(['doctor']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const cuda = r.stdout.split('\n').find((l) => /^\s+[✓✗] cuda/.test(l)) ?? '';
    if (cuda.includes('✗')) expect(cuda).toMatch(/--onnxruntime-node-install=cuda12/);
  });

  it('--device webgpu refuses with one located message and nothing from Dawn or Vulkan', async () => {
    const dir = await tempDir();
    const r = runCli(['run', await recipe(dir, '{ method: none }'), '--dry-run', '--device', 'webgpu']);
    if (r.code === 0) return; // a machine with a WebGPU adapter
    expect(r.stderr).toMatch(/backend webgpu is not available here/);
    expect(r.stderr).not.toMatch(/vkCreateInstance|VulkanError|XDG_RUNTIME_DIR/);
  });
});
