// A job's report.json is also seen by the file watcher, which can look for it while the job is being attached: the
// recipe's last run must stay named by the job's id (its lenses and `getReport` use it), not by a disk report id.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkStructure } from '../../server/src/engine/recipe';
import { diskReportId, RunInsights } from '../../server/src/lsp/services/run-insights';
import { fileUri } from './harness';

let dir: string;
let recipeFile: string;
let reportPath: string;
let text: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'ms-report-race-'));
  recipeFile = path.join(dir, 'race.merge.yaml');
  text = ['version: 1', 'models: { anchor: ./a, other: ./b }', 'merge: { lambda: 0.5 }', 'output: ./out', ''].join('\n');
  writeFileSync(recipeFile, text);
  const report = JSON.parse(readFileSync(path.join(__dirname, '..', 'fixtures', 'reports', 'example.report.json'), 'utf8')) as {
    recipe: { file: string };
  };
  report.recipe.file = recipeFile;
  mkdirSync(path.join(dir, 'out'));
  reportPath = path.join(dir, 'out', 'report.json');
  writeFileSync(reportPath, JSON.stringify(report));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('a job report found by the file watcher while the job is attached', () => {
  it('keeps the job id, whichever finishes first', async () => {
    const uri = fileUri(recipeFile);
    const insights = new RunInsights();
    // The watcher's look starts first and the job is attached while it reads; then the other way round.
    const looking = insights.discover(uri, recipeFile, checkStructure(text), true);
    await insights.attachJob(uri, recipeFile, 'job-1', reportPath, text);
    await looking;
    expect(insights.record(uri)?.id).toBe('job-1');
    const attaching = insights.attachJob(uri, recipeFile, 'job-2', reportPath, text);
    await insights.discover(uri, recipeFile, checkStructure(text), true);
    await attaching;
    expect(insights.record(uri)?.id).toBe('job-2');
  });

  it('names a report no job wrote by its disk id', async () => {
    const uri = fileUri(recipeFile);
    const insights = new RunInsights();
    expect(await insights.discover(uri, recipeFile, checkStructure(text), true)).toBe(true);
    expect(insights.record(uri)?.id).toBe(diskReportId(reportPath));
  });
});
