// Statistics jobs over real LSP traffic, with the real engine CLI (dist/cli.js) on the small reference encoder:
// `mergeStudio/computeStats` (merge-studio stats --shard) and `mergeStudio/runRecipe` with statsDirs
// (merge-studio run --stats) run to the end and cancel like a run, with work-done progress and serverStatus.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, ResponseError, type Diagnostic } from 'vscode-languageserver-protocol';
import * as lsp from '../../protocol/lsp-ext';
import { bundledCliLauncher, cliArgs, overallPercentage } from '../../server/src/lsp';
import { fileUri, startTestServer, type ProgressValue, type TestClient } from './harness';

const root = path.join(__dirname, '..', '..');
const fixtures = path.join(root, 'test', 'fixtures');

let dir: string;
let client: TestClient;

/** The tiny correlation recipe (3 probe segments of a test tone), without evaluation: a shard takes about a second. */
function recipe(name: string, method = 'correlation'): { file: string; uri: string } {
  const file = path.join(dir, `${name}.merge.yaml`);
  const model = path.join(fixtures, 'hf-reference', 'hubert-postln-a');
  writeFileSync(
    file,
    [
      'version: 1',
      `name: ${name}`,
      'models:',
      `  anchor: ${model}`,
      `  other: ${model}`,
      'probe:',
      `  audio: [${path.join(fixtures, 'audio', 'tone-16k.wav')}]`,
      '  max_seconds: 1.5',
      '  segment_seconds: 0.5',
      'align:',
      `  method: ${method}`,
      '  permute: [cnn, attention, ffn]',
      'merge: { lambda: 0.5 }',
      `output: ./out/${name}`,
      'runtime: { device: cpu, seed: 0 }',
      '',
    ].join('\n'),
  );
  return { file, uri: fileUri(file) };
}

const progressOf = (token: string): ProgressValue[] => client.progress.values.filter((p) => p.token === token).map((p) => p.value);
const reportsOf = (token: string) => progressOf(token).filter((v) => v.kind === 'report');

async function refusal(send: Promise<unknown>): Promise<ResponseError<lsp.RunRecipeErrorData>> {
  const e = await send.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ResponseError);
  return e as ResponseError<lsp.RunRecipeErrorData>;
}

beforeAll(async () => {
  if (!existsSync(path.join(root, 'dist', 'cli.js'))) {
    const build = spawnSync(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { cwd: root, encoding: 'utf8' });
    if (build.status !== 0) throw new Error(`build failed: ${build.stderr}`);
  }
  dir = mkdtempSync(path.join(tmpdir(), 'ms-stats-jobs-'));
  client = await startTestServer({ launcher: bundledCliLauncher(path.join(root, 'dist')) ?? null });
});
afterAll(async () => {
  await client?.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

describe('statistics jobs from the editor', () => {
  it('computes two shards, then runs from them: progress, status and jobFinished like a run', async () => {
    const { uri } = recipe('tiny');
    const shardDirs = [0, 1].map((i) => path.join(dir, 'stats', `shard-${i}`));
    for (const index of [0, 1]) {
      const token = `stats-${index}`;
      // The shard folder relative to the recipe, as a client may give it.
      const { jobId } = await client.connection.sendRequest(lsp.computeStats, {
        uri,
        shard: { index, count: 2 },
        outDir: `stats/shard-${index}`,
        workDoneToken: token,
      });
      const finished = await client.jobFinished.next((j) => j.jobId === jobId);
      expect(finished).toMatchObject({ jobId, uri, kind: 'stats', shard: { index, count: 2 }, ok: true, outputDir: shardDirs[index] });
      // A shard has no report: its folder is the result.
      expect(finished.reportPath).toBeUndefined();
      expect(existsSync(path.join(shardDirs[index]!, 'manifest.json'))).toBe(true);
      await client.progress.next((p) => p.token === token && p.value.kind === 'end');
      expect(progressOf(token)[0]).toMatchObject({
        kind: 'begin',
        title: `Merge Studio: tiny.merge.yaml, statistics shard ${index}/2`,
        cancellable: true,
      });
      const messages = reportsOf(token).map((r) => r.message!);
      expect(messages[0]).toBe('load: loading models');
      expect(messages).toContain(`statistics: shard ${index}/2: segments ${index === 0 ? '0–0' : '1–2'} of 3, 13 taps, batches of 64`);
      expect(messages.at(-1)).toBe(`write: writing ${shardDirs[index]}`);
      const percentages = reportsOf(token).map((r) => r.percentage!);
      expect(percentages).toEqual([...percentages].sort((a, b) => a - b));
      // A shard's write stage starts where its statistics end (90 %), not where a run's would (95 %).
      expect(percentages.at(-1)).toBe(overallPercentage('write', 0, 0, 'stats'));
      expect(percentages.at(-1)).toBe(90);
      await expect(client.connection.sendRequest(lsp.getReport, { jobId })).rejects.toThrow(
        `job ${jobId} computed a statistics shard; it has no report`,
      );
    }
    // The status bar saw a statistics job, with its shard.
    expect(client.serverStatus.values.some((s) => s.runningJob?.kind === 'stats' && s.runningJob.shard?.index === 1)).toBe(true);

    const { jobId } = await client.connection.sendRequest(lsp.runRecipe, { uri, statsDirs: shardDirs, workDoneToken: 'from-stats' });
    const finished = await client.jobFinished.next((j) => j.jobId === jobId);
    expect(finished).toMatchObject({ kind: 'run-with-stats', ok: true, outputDir: path.join(dir, 'out', 'tiny') });
    expect(finished.shard).toBeUndefined();
    await client.progress.next((p) => p.token === 'from-stats' && p.value.kind === 'end');
    expect(progressOf('from-stats')[0]).toMatchObject({ kind: 'begin', title: 'Merge Studio: tiny.merge.yaml from 2 statistics shards' });
    const messages = reportsOf('from-stats').map((r) => r.message!);
    // The statistics stage reduces the shards instead of running the probe through the models.
    expect(messages).toContain(`statistics: shard ${shardDirs[1]}`);
    expect(messages.some((m) => /taps on cpu/.test(m))).toBe(false);
    const report = await client.connection.sendRequest(lsp.getReport, { jobId });
    expect(report.reportPath).toBe(path.join(dir, 'out', 'tiny', 'report.json'));
    expect((report.report as { align: { taps: unknown[] } }).align.taps).toHaveLength(13);
    expect(client.serverStatus.values.some((s) => s.runningJob?.jobId === jobId && s.runningJob.kind === 'run-with-stats')).toBe(true);
    expect((await client.serverStatus.next((s) => s.runningJob === null, client.serverStatus.values.length - 1)).runningJob).toBeNull();
  }, 120_000);

  it('cancels a statistics shard and a run from shards: the child is killed, nothing is written', async () => {
    const { uri } = recipe('cancel');
    const shardDir = path.join(dir, 'cancel-stats', 'shard-0');
    const stats = await client.connection.sendRequest(lsp.computeStats, {
      uri,
      shard: { index: 0, count: 1 },
      outDir: shardDir,
      workDoneToken: 'cancel-stats',
    });
    await client.progress.next((p) => p.token === 'cancel-stats' && p.value.kind === 'report');
    expect(await client.connection.sendRequest(lsp.cancelJob, { jobId: stats.jobId })).toEqual({ cancelled: true });
    expect(await client.jobFinished.next((j) => j.jobId === stats.jobId)).toMatchObject({
      kind: 'stats',
      ok: false,
      cancelled: true,
      error: { code: 'cancelled' },
    });
    await client.progress.next((p) => p.token === 'cancel-stats' && p.value.kind === 'end');
    expect(existsSync(path.join(shardDir, 'manifest.json'))).toBe(false);

    // Shards of the first test's recipe fit this one (same models, probe and alignment): the run gets to its reduce.
    const shardDirs = [0, 1].map((i) => path.join(dir, 'stats', `shard-${i}`));
    const run = await client.connection.sendRequest(lsp.runRecipe, { uri, statsDirs: shardDirs, workDoneToken: 'cancel-run' });
    await client.progress.next((p) => p.token === 'cancel-run' && p.value.kind === 'report' && p.value.message!.startsWith('probe'));
    expect(await client.connection.sendRequest(lsp.cancelJob, { jobId: run.jobId })).toEqual({ cancelled: true });
    expect(await client.jobFinished.next((j) => j.jobId === run.jobId)).toMatchObject({
      kind: 'run-with-stats',
      ok: false,
      cancelled: true,
    });
    expect(existsSync(path.join(dir, 'out', 'cancel'))).toBe(false);
  }, 120_000);

  it('says which shard is wrong when a run cannot use its shards, naming the file', async () => {
    const { uri } = recipe('bad-shard');
    const notAShard = path.join(dir, 'not-a-shard');
    mkdirSync(notAShard, { recursive: true });
    const { jobId } = await client.connection.sendRequest(lsp.runRecipe, { uri, statsDirs: [notAShard] });
    const finished = await client.jobFinished.next((j) => j.jobId === jobId);
    expect(finished).toMatchObject({
      kind: 'run-with-stats',
      ok: false,
      cancelled: false,
      error: {
        code: 'bad-shard',
        message: `${notAShard} holds no manifest.json (not a statistics shard, or its job has not finished)`,
        file: path.join(notAShard, 'manifest.json'),
      },
    });
  }, 60_000);

  it('refuses shards for a recipe that does not align by correlation, at align.method', async () => {
    const { file, uri } = recipe('weights', 'weights');
    const e = await refusal(
      client.connection.sendRequest(lsp.computeStats, { uri, shard: { index: 0, count: 2 }, outDir: 'stats/shard-0' }),
    );
    expect(e.data!.reason).toBe('not-shardable');
    const [d] = e.data!.diagnostics as Diagnostic[];
    const line = 10; // `  method: weights`
    expect(d).toMatchObject({
      code: 'not-shardable',
      severity: 1,
      range: { start: { line, character: 10 }, end: { line, character: 17 } },
    });
    expect(e.message).toMatch(/need align\.method correlation, and this recipe aligns by weights/);
    expect((await refusal(client.connection.sendRequest(lsp.runRecipe, { uri, statsDirs: ['stats/shard-0'] }))).data!.reason).toBe(
      'not-shardable',
    );
    // A plain run of the same recipe is not refused for it.
    expect(cliArgs(file, { kind: 'run' })).toEqual(['run', file, '--progress', 'json']);
  });

  it('rejects malformed shard parameters as invalid, starting nothing', async () => {
    const { uri } = recipe('params');
    for (const shard of [
      { index: 2, count: 2 },
      { index: -1, count: 2 },
      { index: 0, count: 0 },
      { index: 0.5, count: 2 },
    ]) {
      const e = await refusal(client.connection.sendRequest(lsp.computeStats, { uri, shard, outDir: 'stats/x' }));
      expect(e.code).toBe(ErrorCodes.InvalidParams);
      expect(e.message).toMatch(/^mergeStudio\/computeStats: shard must be \{ index, count \}/);
    }
    const noOut = await refusal(client.connection.sendRequest(lsp.computeStats, { uri, shard: { index: 0, count: 1 }, outDir: '' }));
    expect(noOut.message).toBe('mergeStudio/computeStats: outDir must be a folder path');
    const noDirs = await refusal(client.connection.sendRequest(lsp.runRecipe, { uri, statsDirs: [] }));
    expect(noDirs.code).toBe(ErrorCodes.InvalidParams);
    expect(noDirs.message).toBe('mergeStudio/runRecipe: statsDirs must be a non-empty list of folder paths');
    expect(existsSync(path.join(dir, 'stats', 'x'))).toBe(false);
  });
});

describe('the CLI arguments of each kind of job', () => {
  it('are the commands a person would type, with folders that cannot be read as options', () => {
    const file = '/r/tiny.merge.yaml';
    expect(cliArgs(file, { kind: 'stats', shard: { index: 1, count: 4 }, outDir: '/r/stats/shard-1', threads: 2 })).toEqual([
      'stats',
      file,
      '--shard',
      '1/4',
      '--out',
      '/r/stats/shard-1',
      '--progress',
      'json',
      '--threads',
      '2',
    ]);
    expect(cliArgs(file, { kind: 'run-with-stats', statsDirs: ['/r/s0', '/r/s1'], device: 'cpu' })).toEqual([
      'run',
      file,
      '--progress',
      'json',
      '--device',
      'cpu',
      '--stats',
      '/r/s0',
      '/r/s1',
    ]);
  });
});
