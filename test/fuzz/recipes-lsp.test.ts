/**
 * Fuzz tier, recipes: seeded mutations of the fixture recipes and hostile constructs (recipe-mutations.ts), sent
 * to the real language server over stdio with every request kind (diagnostics, documentSymbol, completion, hover,
 * codeAction, codeLens, mergeStudio/checkRecipe, an edit, malformed params), checked by the engine's `check`, and
 * a few through the CLI. Each case must answer within a time bound, keep the server under a memory bound, give
 * located messages (or none), leak no stack trace anywhere, and change nothing outside its temp folder.
 *
 * Cases: MERGE_STUDIO_FUZZ_CASES (default below; `npm run fuzz -- --cases N` for a nightly corpus).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CodeActionRequest,
  CodeLensRequest,
  CompletionRequest,
  DidChangeTextDocumentNotification,
  DidCloseTextDocumentNotification,
  DocumentSymbolRequest,
  ErrorCodes,
  HoverRequest,
  ResponseError,
  type Diagnostic,
} from 'vscode-languageserver-protocol';
import * as lsp from '../../protocol/lsp-ext';
import { checkRecipeText } from '../../server/src/engine/recipe';
import { fileUri } from '../lsp/harness';
import {
  assertLocated,
  assertNoStackTrace,
  caseDir,
  caseIndices,
  caseRng,
  diffTrees,
  fileSeed,
  fuzzCases,
  FuzzTally,
  snapshotTree,
  stackTraceIn,
  within,
  type Rng,
} from './fuzz-util';
import { spawnServer, type ServerProcess } from './lsp-process';
import { makeRecipeCase, seedRecipes } from './recipe-mutations';

const ROOT = path.resolve(__dirname, '../..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures');
/** Cases per run inside `npm test` (under a second each on a 2-core machine shared with other work). */
const DEFAULT_CASES = 60;
/** Of those, how many also run through the CLI (a process each); nightly runs scale it with the case count. */
const CLI_EVERY = 30;
/** Longest a request may take before it counts as a hang. */
const ANSWER_MS = 20_000;
/** The server's peak resident memory (VmHWM, with tsx compiling the sources) may not pass this. */
const MEMORY_BOUND_BYTES = 1536 * 1024 * 1024;

const cases = fuzzCases(DEFAULT_CASES);
const seed = fileSeed('recipes-lsp');

let sandbox: { dir: string; remove(): void };
let recipesDir: string;
let server: ServerProcess;
let fixturesBefore: Map<string, string>;
let outsideBefore: Map<string, string>;

function mkfifo(p: string): void {
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo ${p}: ${r.stderr}`);
}

/** The case folder: copies of the fixture models and data, pipes and a device-backed config, an outside canary. */
function makeSandbox(): void {
  sandbox = caseDir('recipes-lsp');
  const d = sandbox.dir;
  cpSync(path.join(FIXTURES, 'recipes', 'models'), path.join(d, 'models'), { recursive: true });
  cpSync(path.join(FIXTURES, 'recipes', 'data'), path.join(d, 'data'), { recursive: true });
  recipesDir = path.join(d, 'recipes');
  mkdirSync(recipesDir);
  for (const f of ['fifo', 'fifo.wav', 'fifo-model']) mkfifo(path.join(recipesDir, f));
  cpSync(path.join(FIXTURES, 'recipes', 'models', 'tiny-a'), path.join(recipesDir, 'dev-config'), { recursive: true });
  rmSync(path.join(recipesDir, 'dev-config', 'config.json'));
  symlinkSync('/dev/zero', path.join(recipesDir, 'dev-config', 'config.json'));
  mkdirSync(path.join(recipesDir, 'fifo-task', 'train'), { recursive: true });
  mkdirSync(path.join(recipesDir, 'fifo-task', 'test'), { recursive: true });
  mkfifo(path.join(recipesDir, 'fifo-task', 'train', 'labels.csv'));
  mkdirSync(path.join(d, 'outside'));
  writeFileSync(path.join(d, 'outside', 'keep.txt'), 'a file a recipe must never touch\n');
}

beforeAll(async () => {
  makeSandbox();
  fixturesBefore = snapshotTree(FIXTURES, { maxDepth: 6 });
  outsideBefore = snapshotTree(sandbox.dir, { maxDepth: 6, skip: (n) => n === 'recipes' });
  server = await spawnServer({ cwd: sandbox.dir });
  if (!existsSync(path.join(ROOT, 'dist', 'cli.js'))) {
    const build = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, encoding: 'utf8' });
    if (build.status !== 0) throw new Error(`build failed: ${build.stderr}`);
  }
}, 120_000);

afterAll(async () => {
  await server?.stop();
  sandbox?.remove();
});

/** A diagnostic is located when its range lies in the document and it says something; it never carries a stack. */
function checkDiagnostics(diagnostics: readonly Diagnostic[], lineCount: number, where: string): void {
  for (const d of diagnostics) {
    const { start, end } = d.range;
    if (!(
      start.line >= 0 &&
      start.character >= 0 &&
      start.line <= lineCount &&
      (end.line > start.line || (end.line === start.line && end.character >= start.character))
    )) {
      throw new Error(`${where}: diagnostic outside the document: ${JSON.stringify(d.range)} (${lineCount} lines): ${d.message}`);
    }
    if (typeof d.message !== 'string' || d.message.trim() === '') throw new Error(`${where}: empty diagnostic message`);
    assertNoStackTrace(d.message, `${where} diagnostic`);
  }
}

/** An error response is fine when it is a protocol error with a clean message; an internal error is a crash. */
function checkRejection(e: unknown, where: string): void {
  if (!(e instanceof ResponseError)) throw e;
  if (e.code === ErrorCodes.InternalError) throw new Error(`${where}: internal error response: ${e.message}`);
  assertNoStackTrace(e.message, `${where} error response`);
}

async function request<T>(p: Promise<T>, where: string): Promise<T | undefined> {
  try {
    return await within(p, ANSWER_MS, where);
  } catch (e) {
    if (e instanceof ResponseError) {
      checkRejection(e, where);
      return undefined;
    }
    throw e;
  }
}

function randomPosition(rng: Rng, lines: string[]): { line: number; character: number } {
  const line = rng.int(0, Math.max(0, lines.length - 1));
  return { line, character: rng.int(0, (lines[line] ?? '').length + 2) };
}

async function runCase(i: number, tally: FuzzTally, seeds: { name: string; text: string }[]): Promise<void> {
  const rng = caseRng(seed, i);
  const c = makeRecipeCase(rng, seeds);
  const file = path.join(recipesDir, `case-${i}.merge.yaml`);
  writeFileSync(file, c.bytes);
  const uri = fileUri(file);
  const where = `case ${i} [${c.label.slice(0, 300)}]`;
  if (server.exited()) server = await spawnServer({ cwd: sandbox.dir });
  const { client } = server;
  const logsBefore = client.logs.length;
  const stderrBefore = server.stderr.join('').length;
  const lines = c.text.split(/\r\n|\r|\n/);
  try {
    // Pushed diagnostics, then every request kind at random places.
    const pushed = await within(client.open(uri, c.text, 1), ANSWER_MS, `${where}: diagnostics`);
    checkDiagnostics(pushed, lines.length, where);
    const doc = { textDocument: { uri } };
    const at = randomPosition(rng, lines);
    await request(client.connection.sendRequest(DocumentSymbolRequest.type, doc), `${where}: documentSymbol`);
    await request(client.connection.sendRequest(CompletionRequest.type, { ...doc, position: at }), `${where}: completion`);
    await request(client.connection.sendRequest(HoverRequest.type, { ...doc, position: randomPosition(rng, lines) }), `${where}: hover`);
    await request(
      client.connection.sendRequest(CodeActionRequest.type, { ...doc, range: { start: at, end: at }, context: { diagnostics: pushed } }),
      `${where}: codeAction`,
    );
    await request(client.connection.sendRequest(CodeLensRequest.type, doc), `${where}: codeLens`);
    const checked = await request(client.connection.sendRequest(lsp.checkRecipe, { uri }), `${where}: checkRecipe`);
    if (!checked) throw new Error(`${where}: checkRecipe refused an open document`);
    checkDiagnostics(checked.diagnostics, lines.length, `${where} checkRecipe`);
    // The same list, except where a disk probe ran out of time (a deadline depends on the machine's load).
    const timedOut = [...pushed, ...checked.diagnostics].some((d) => /took longer than .* not checked$/.test(String(d.message)));
    if (!timedOut && JSON.stringify(checked.diagnostics) !== JSON.stringify(pushed))
      throw new Error(`${where}: checkRecipe differs from the pushed diagnostics`);

    // An edit (a random replacement) or malformed protocol input.
    if (rng.bool(0.3)) {
      const start = randomPosition(rng, lines);
      await client.connection.sendNotification(DidChangeTextDocumentNotification.type, {
        textDocument: { uri, version: 2 },
        contentChanges: [{ range: { start, end: start }, text: rng.pick(['x', '\n', ': ', '[', '  ', '*a', '&a ', '\t']) }],
      });
      const edited = await within(
        client.diagnostics.next((d) => d.uri === uri && d.version === 2),
        ANSWER_MS,
        `${where}: diagnostics after an edit`,
      );
      checkDiagnostics(edited.diagnostics, lines.length + 2, `${where} after an edit`);
    } else if (rng.bool(0.15)) {
      const bad = rng.pick([
        { range: null, text: 'x' },
        { range: { start: { line: -1, character: 0 }, end: { line: 0, character: 0 } }, text: 'x' },
        { text: 42 },
        null,
      ]);
      await client.connection.sendNotification(DidChangeTextDocumentNotification.type, {
        textDocument: { uri, version: 2 },
        contentChanges: [bad],
      } as never);
      await request(
        client.connection.sendRequest(HoverRequest.type, {
          ...doc,
          position: rng.pick([null, { line: -5, character: 1 }, { line: 1.5, character: 0 }]),
        } as never),
        `${where}: malformed hover`,
      );
    }
    await client.connection.sendNotification(DidCloseTextDocumentNotification.type, doc);

    // The engine's check of the same text: the same answer class (no throw, located diagnostics).
    const engine = await within(checkRecipeText(c.text, file), ANSWER_MS, `${where}: engine check`);
    checkDiagnostics(engine as Diagnostic[], lines.length, `${where} engine check`);

    // And a few through the CLI, as a user runs it.
    if (i % CLI_EVERY === 0) checkCli(file, where);

    // Nothing leaked to the logs or stderr; the server is alive and within its memory bound.
    for (const line of client.logs.slice(logsBefore)) {
      const why = stackTraceIn(line);
      if (why || /internal error/i.test(line)) throw new Error(`${where}: server log shows an internal error: ${line.slice(0, 1500)}`);
    }
    const stderr = server.stderr.join('').slice(stderrBefore);
    if (stderr.trim()) throw new Error(`${where}: server wrote to stderr: ${stderr.slice(0, 1500)}`);
  } catch (e) {
    // A dead server fails every request after it (as a timeout): name the cause, a crash.
    const died = server.exited();
    if (died) throw new Error(`${where}: the server died (${died}); stderr: ${server.stderr.join('').slice(-1500)}`);
    throw e;
  } finally {
    rmSync(file, { force: true });
    tally.memory(server.memory()?.peakBytes);
  }
  // After the checks above (a death or the memory bound is the cause; a failed check would only be its symptom).
  const exit = server.exited();
  if (exit) throw new Error(`${where}: the server died (${exit}); stderr: ${server.stderr.join('').slice(-1500)}`);
  const peak = server.memory()?.peakBytes ?? 0;
  if (peak > MEMORY_BOUND_BYTES) throw new Error(`${where}: server peak memory ${(peak / 2 ** 20).toFixed(0)} MB over the bound`);
}

function checkCli(file: string, where: string): void {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'merge-studio.js'), 'check', file], {
    cwd: sandbox.dir,
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.error || r.status === null) throw new Error(`${where}: CLI check did not finish (${r.error?.message ?? r.signal})`);
  if (r.status !== 0 && r.status !== 1) throw new Error(`${where}: CLI check exited ${r.status}: ${r.stderr.slice(0, 1500)}`);
  assertNoStackTrace(r.stdout + r.stderr, `${where} CLI check`);
  for (const line of (r.stdout + r.stderr).split('\n')) if (/\berror\b/.test(line)) assertLocated(line, `${where} CLI check`);
}

describe('fuzz: recipes through the language server, check and the CLI', () => {
  it(
    `${cases} seeded cases (seed ${seed}): answers in time, bounded memory, located messages, no stack traces, no side effects`,
    async () => {
      const seeds = seedRecipes();
      const tally = new FuzzTally('recipes-lsp');
      for (const i of caseIndices(cases)) await tally.run(i, () => runCase(i, tally, seeds));
      // Nothing outside the case folders changed: the fixtures, the copies beside the recipes, the canary.
      await tally.run(-1, () => {
        const changed = [
          ...diffTrees(fixturesBefore, snapshotTree(FIXTURES, { maxDepth: 6 })),
          ...diffTrees(outsideBefore, snapshotTree(sandbox.dir, { maxDepth: 6, skip: (n) => n === 'recipes' })),
        ];
        if (changed.length) throw new Error(`side effects outside the case folders: ${changed.slice(0, 20).join(', ')}`);
      });
      tally.cases--; // the side-effect check is not a case
      const report = tally.finish();
      console.log(
        `recipes-lsp: ${tally.cases} cases, ${tally.crashes} crashes, ${tally.hangs} hangs, peak server memory ${(tally.peakMemoryBytes / 2 ** 20).toFixed(0)} MB`,
      );
      expect(tally.failures, report).toEqual([]);
    },
    120_000 + cases * 5_000,
  );
});
