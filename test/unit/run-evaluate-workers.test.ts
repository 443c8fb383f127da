/**
 * A run's evaluation in worker threads (eval/scoring-pool.ts), end to end on the bundled example: the same report as
 * the same run scoring every system in the main thread, and a run cancelled while the workers embed leaves nothing.
 */
import { promises as fs, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runRecipe } from '../../server/src/engine/pipeline/run';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();
const EXAMPLES = path.join(__dirname, '..', '..', 'examples');

async function writeRecipe(dir: string): Promise<string> {
  const file = path.join(dir, 'eval.merge.yaml');
  await fs.writeFile(
    file,
    [
      'version: 1',
      `models: { anchor: ${path.join(EXAMPLES, 'models', 'speech-encoder')}, other: ${path.join(EXAMPLES, 'models', 'music-encoder')} }`,
      `probe: { audio: [${path.join(EXAMPLES, 'probe', 'speech')}, ${path.join(EXAMPLES, 'probe', 'music')}], max_seconds: 4, segment_seconds: 1 }`,
      'align: { method: correlation, permute: [cnn, attention, ffn] }',
      'merge: { lambda: 0.5, sweep: [0.3] }',
      'variants: [{ name: zip125, merge: { width: 1.25 } }]',
      'evaluate:',
      `  tasks: [{ name: chords, domain: music, data: ${path.join(EXAMPLES, 'eval', 'chords')} }]`,
      'output: ./out',
      'runtime: { device: cpu }',
      '',
    ].join('\n'),
  );
  return file;
}

describe('evaluation in worker threads', () => {
  it('reports exactly what the main thread reports, systems in the same order', async () => {
    const dir = tempDir();
    const recipe = await writeRecipe(dir);
    const inWorkers = await runRecipe(recipe, { threads: 2 });
    await fs.rm(path.join(dir, 'out'), { recursive: true });
    const inMain = await runRecipe(recipe, { threads: 1 });
    const evaluation = inMain.report.evaluation!;
    expect(evaluation.averages.map((a) => `${a.variant} ${a.lambda}`)).toEqual([
      'anchor null',
      'other null',
      'unaligned 0.3',
      'permuted 0.3',
      'zip125 0.3',
      'unaligned 0.5',
      'permuted 0.5',
      'zip125 0.5',
    ]);
    expect(inWorkers.report.evaluation).toEqual(evaluation);
  });

  it('a run cancelled while systems are being scored fails as cancelled and leaves no output', async () => {
    const dir = tempDir();
    const controller = new AbortController();
    const run = runRecipe(await writeRecipe(dir), {
      threads: 2,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'progress' && e.stage === 'evaluate' && /λ=0\.3/.test(e.message ?? '')) controller.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'cancelled' });
    expect(readdirSync(dir)).toEqual(['eval.merge.yaml']);
  });
});
