import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CancellationTokenSource,
  LSPErrorCodes,
  ResponseError,
  WorkDoneProgressCancelNotification,
  type CancellationToken,
} from 'vscode-languageserver-protocol';
import * as lsp from '../../protocol/lsp-ext';
import { overallPercentage, type JobLauncher } from '../../server/src/lsp';
import { fileUri, startTestServer, type TestClient } from './harness';

const fixtures = path.join(__dirname, '..', 'fixtures', 'recipes');
const fakeEngine = path.join(fixtures, 'jobs', 'fake-engine.mjs');
const launcher: JobLauncher = (recipeFile) => ({ command: process.execPath, args: [fakeEngine, recipeFile] });

let dir: string;
let client: TestClient;

/** A valid recipe (so the pre-run check passes) whose name tells the fake engine what to do. */
function recipe(mode: string): string {
  const file = path.join(dir, `${mode}.merge.yaml`);
  const models = path.join(fixtures, 'models');
  writeFileSync(
    file,
    [
      'version: 1',
      `name: fake:${mode}`,
      'models:',
      `  anchor: ${path.join(models, 'tiny-a')}`,
      `  other: ${path.join(models, 'tiny-b')}`,
      'align: { method: none }',
      'merge: { lambda: 0.5 }',
      `output: ./out-${mode}`,
      '',
    ].join('\n'),
  );
  return fileUri(file);
}

async function runError(params: lsp.RunRecipeParams): Promise<ResponseError<lsp.RunRecipeErrorData>> {
  const e = await client.connection.sendRequest(lsp.runRecipe, params).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ResponseError);
  return e as ResponseError<lsp.RunRecipeErrorData>;
}

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'ms-jobs-'));
});
afterEach(async () => {
  await client.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

describe('jobs over LSP', () => {
  beforeEach(async () => {
    client = await startTestServer({ launcher });
  });

  it('runs a recipe: work-done progress by stage, a small jobFinished, the full report by id', async () => {
    const uri = recipe('ok');
    const { jobId } = await client.connection.sendRequest(lsp.runRecipe, { uri, workDoneToken: 'run-1' });
    const finished = await client.jobFinished.next((j) => j.jobId === jobId);
    expect(finished).toMatchObject({
      jobId,
      uri,
      ok: true,
      cancelled: false,
      outputDir: path.join(dir, 'out-ok'),
      reportPath: path.join(dir, 'out-ok', 'report.json'),
    });
    expect(finished.summary).toEqual({ meanCorrelationBefore: 0.41, meanCorrelationAfter: 0.87, seconds: 0.1 });

    await client.progress.next((p) => p.token === 'run-1' && p.value.kind === 'end');
    const values = client.progress.values.filter((p) => p.token === 'run-1').map((p) => p.value);
    expect(values[0]).toMatchObject({ kind: 'begin', title: 'Merge Studio: ok.merge.yaml', cancellable: true, percentage: 0 });
    expect(values.at(-1)).toEqual({ kind: 'end' });
    const reports = values.filter((v) => v.kind === 'report');
    expect(reports.map((r) => r.message)).toEqual([
      'load: reading checkpoints',
      'statistics: 1/4',
      'statistics: 2/4',
      'statistics: 3/4',
      'statistics: 4/4',
      'merge: λ 0.5',
      `write: ${path.join(dir, 'out-ok')}`,
    ]);
    const percentages = reports.map((r) => r.percentage!);
    expect(percentages).toEqual([...percentages].sort((a, b) => a - b));
    expect(percentages.at(-1)).toBe(overallPercentage('write'));

    const report = await client.connection.sendRequest(lsp.getReport, { jobId });
    expect(report.reportPath).toBe(path.join(dir, 'out-ok', 'report.json'));
    expect(report.report).toMatchObject({ layers: [{ layer: 0, correlation: 0.9 }] });
    expect(client.logs.some((l) => l.includes('mean correlation 0.41 → 0.87'))).toBe(true);
  });

  it('reports the engine error of a failed job, and has no report for it', async () => {
    const uri = recipe('fail');
    const { jobId } = await client.connection.sendRequest(lsp.runRecipe, { uri });
    const finished = await client.jobFinished.next((j) => j.jobId === jobId);
    expect(finished).toMatchObject({
      ok: false,
      cancelled: false,
      error: { code: 'self-check-failed', message: 'permuted model differs from the original by 3e-2' },
    });
    await expect(client.connection.sendRequest(lsp.getReport, { jobId })).rejects.toThrow(`job ${jobId} failed; it has no report`);
  });

  it('turns a crash into a failure naming the exit code and the last stderr line', async () => {
    const { jobId } = await client.connection.sendRequest(lsp.runRecipe, { uri: recipe('crash') });
    const finished = await client.jobFinished.next((j) => j.jobId === jobId);
    expect(finished.error).toEqual({
      code: 'runtime-error',
      message: 'The engine exited with code 3: fatal: out of memory in the fake engine',
    });
  });

  it('logs stdout lines that are not events instead of failing', async () => {
    const { jobId } = await client.connection.sendRequest(lsp.runRecipe, { uri: recipe('noisy') });
    expect((await client.jobFinished.next((j) => j.jobId === jobId)).ok).toBe(true);
    expect(client.logs).toContain(`[${jobId}] this line is not JSON`);
  });

  it('cancels a running job with mergeStudio/cancelJob: the child is killed, nothing is written', async () => {
    const { jobId } = await client.connection.sendRequest(lsp.runRecipe, { uri: recipe('hang'), workDoneToken: 'run-hang' });
    await client.progress.next(
      (p) => p.token === 'run-hang' && p.value.kind === 'report' && p.value.message === 'statistics: segment 1/100',
    );
    const status = await client.serverStatus.next((s) => s.runningJob?.jobId === jobId && s.runningJob.stage === 'statistics');
    expect(status.runningJob!.percentage).toBe(overallPercentage('statistics', 1, 100));
    // The stage's own progress for the status bar; no ETA in the stage's first seconds.
    const staged = await client.serverStatus.next((s) => s.runningJob?.jobId === jobId && s.runningJob.stagePercentage != null);
    expect(staged.runningJob).toMatchObject({ stage: 'statistics', stagePercentage: 1, etaSeconds: null });
    const statusesBefore = client.serverStatus.values.length;
    expect(await client.connection.sendRequest(lsp.cancelJob, { jobId })).toEqual({ cancelled: true });
    const finished = await client.jobFinished.next((j) => j.jobId === jobId);
    expect(finished).toMatchObject({ ok: false, cancelled: true, error: { code: 'cancelled' } });
    await client.progress.next((p) => p.token === 'run-hang' && p.value.kind === 'end');
    expect(existsSync(path.join(dir, 'out-hang'))).toBe(false);
    expect(await client.connection.sendRequest(lsp.cancelJob, { jobId })).toEqual({ cancelled: false });
    expect((await client.serverStatus.next((s) => s.runningJob === null, statusesBefore)).runningJob).toBeNull();
  });

  it('cancels through the progress token (window/workDoneProgress/cancel)', async () => {
    const { jobId } = await client.connection.sendRequest(lsp.runRecipe, { uri: recipe('hang'), workDoneToken: 42 });
    await client.progress.next((p) => p.token === 42 && p.value.kind === 'report');
    await client.connection.sendNotification(WorkDoneProgressCancelNotification.type, { token: 42 });
    expect(await client.jobFinished.next((j) => j.jobId === jobId)).toMatchObject({ cancelled: true });
  });

  it('refuses a second job while one runs, naming the running one', async () => {
    const { jobId } = await client.connection.sendRequest(lsp.runRecipe, { uri: recipe('hang') });
    const e = await runError({ uri: recipe('ok') });
    expect(e.data).toEqual({ reason: 'job-running', runningJobId: jobId });
    await client.connection.sendRequest(lsp.cancelJob, { jobId });
    await client.jobFinished.next((j) => j.jobId === jobId);
  });

  it('refuses a recipe with errors and returns them', async () => {
    const e = await runError({ uri: fileUri(path.join(fixtures, 'bad', 'incompatible-shapes.merge.yaml')) });
    expect(e.data!.reason).toBe('recipe-has-errors');
    expect(e.data!.diagnostics!.map((d) => d.code)).toEqual(['incompatible-models']);
    expect((await runError({ uri: 'untitled:Untitled-1' })).data).toEqual({ reason: 'not-a-file' });
  });

  it('creates its own progress token for clients that give none', async () => {
    const { jobId } = await client.connection.sendRequest(lsp.runRecipe, { uri: recipe('ok') });
    await client.jobFinished.next((j) => j.jobId === jobId);
    const begin = await client.progress.next((p) => p.value.kind === 'begin');
    expect(String(begin.token)).toMatch(/^mergeStudio\/job\//);
  });
});

describe('cancelling a run before its job starts ($/cancelRequest)', () => {
  it('answers RequestCancelled and starts nothing', async () => {
    let checking!: () => void;
    const checkStarted = new Promise<void>((resolve) => (checking = resolve));
    // A pre-run check that takes until the request is cancelled, standing in for slow disk checks.
    const preflight = (_file: string, token: CancellationToken) =>
      new Promise<[]>((resolve) => {
        checking();
        token.onCancellationRequested(() => resolve([]));
      });
    client = await startTestServer({ launcher, preflight });
    const source = new CancellationTokenSource();
    const pending = client.connection.sendRequest(lsp.runRecipe, { uri: recipe('ok') }, source.token);
    await checkStarted;
    source.cancel();
    const e = await pending.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect((e as ResponseError<unknown>).code).toBe(LSPErrorCodes.RequestCancelled);
    // The server is idle: a new run is accepted at once.
    const e2 = await client.connection.sendRequest(lsp.cancelJob, { jobId: 'none' });
    expect(e2).toEqual({ cancelled: false });
    expect(client.jobFinished.values).toEqual([]);
    expect(existsSync(path.join(dir, 'out-ok'))).toBe(false);
  });
});

describe('without an engine', () => {
  it('says jobs are unavailable, in capabilities, status and refusals', async () => {
    client = await startTestServer({ launcher: null });
    expect((client.initializeResult.capabilities.experimental as { mergeStudio: lsp.MergeStudioServerCapabilities }).mergeStudio.jobs).toBe(
      false,
    );
    expect((await client.serverStatus.next()).health).toBe('warning');
    expect((await runError({ uri: recipe('ok') })).data).toEqual({ reason: 'no-engine' });
  });
});
