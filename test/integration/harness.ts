/**
 * A small extension-host test harness, for both runners: code-server + Chromium (scripts/run-extension-tests.mjs)
 * and @vscode/test-electron. Tests run in order, each under a timeout; results go to the JSON file named by
 * MERGE_TEST_RESULTS ([{ name, ok, ms, error? }]; code-server's exit code says nothing), written atomically,
 * and progress lines go to MERGE_TEST_LOG so a runner can stream them. `run()` rejects when a test failed,
 * which is what @vscode/test-electron turns into a non-zero exit code.
 */
import { appendFileSync, existsSync, readFileSync, renameSync, rmSync, watch, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';

/**
 * What a person must have seen during a test, checked by the code-server runner in the page itself (the
 * extension host cannot see the workbench's DOM): a notification toast whose text contains `toast`, with a
 * `button` when given. Other runners (a desktop VS Code) cannot check it and ignore it.
 */
export interface UiExpectation {
  toast: string;
  button?: string;
}

export interface TestCase {
  name: string;
  fn: () => Promise<void>;
  /** Default 30 s. */
  timeoutMs?: number;
  ui?: UiExpectation[];
}

export interface TestResult {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
  ui?: UiExpectation[];
  /** Wall-clock start and end (epoch ms): the runner matches `ui` against what was shown in between. */
  start: number;
  end: number;
}

export function log(line: string): void {
  const file = process.env.MERGE_TEST_LOG;
  if (file) appendFileSync(file, `${line}\n`);
  else console.log(line);
}

export async function runSuite(tests: TestCase[]): Promise<void> {
  const out = process.env.MERGE_TEST_RESULTS;
  const results: TestResult[] = [];
  for (const t of tests) {
    const t0 = Date.now();
    log(`▶ ${t.name}`);
    try {
      await withTimeout(t.fn(), t.timeoutMs ?? 30_000, `timed out after ${(t.timeoutMs ?? 30_000) / 1000} s`);
      results.push({ name: t.name, ok: true, ms: Date.now() - t0, start: t0, end: Date.now(), ...(t.ui ? { ui: t.ui } : {}) });
      log(`  ok (${Date.now() - t0} ms)`);
    } catch (e) {
      const error = e instanceof Error ? (e.stack ?? e.message) : String(e);
      results.push({ name: t.name, ok: false, ms: Date.now() - t0, start: t0, end: Date.now(), error });
      log(`  FAILED (${Date.now() - t0} ms): ${error.split('\n')[0]}`);
    }
  }
  if (out) {
    writeFileSync(`${out}.tmp`, JSON.stringify(results, null, 2));
    renameSync(`${out}.tmp`, out);
  }
  const failed = results.filter((r) => !r.ok);
  if (failed.length)
    throw new Error(`${failed.length} of ${results.length} extension-host tests failed: ${failed.map((f) => f.name).join('; ')}`);
}

export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

export function assertEqual<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

/**
 * Resolves with the first value of `read()` that satisfies `ok`, re-reading whenever `event` fires (no polling,
 * no sleeps); rejects after `ms` with the last value seen, so a failure says what was there instead.
 */
export function until<T>(event: vscode.Event<unknown>, read: () => T, ok: (v: T) => boolean, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let last = read();
    if (ok(last)) return resolve(last);
    const sub = event(() => {
      last = read();
      if (ok(last)) {
        clearTimeout(timer);
        sub.dispose();
        resolve(last);
      }
    });
    const timer = setTimeout(() => {
      sub.dispose();
      reject(new Error(`${what}: not reached after ${ms} ms; last seen: ${describe(last)}`));
    }, ms);
  });
}

function describe(v: unknown): string {
  let s: string | undefined;
  try {
    s = JSON.stringify(v, (_k, x) => (x instanceof vscode.Uri ? x.toString() : x));
  } catch {
    s = undefined; // circular (VS Code API objects): never let the failure report itself fail
  }
  return s === undefined ? String(v) : s.length > 2000 ? `${s.slice(0, 2000)}…` : s;
}

/** The diagnostics of `uri` once `ok` holds for them. */
export function diagnosticsOf(uri: vscode.Uri, ok: (d: vscode.Diagnostic[]) => boolean, ms = 20_000): Promise<vscode.Diagnostic[]> {
  return until(vscode.languages.onDidChangeDiagnostics, () => vscode.languages.getDiagnostics(uri), ok, ms, `diagnostics of ${uri.path}`);
}

/** Position of the `nth` occurrence of `needle` in the document (plus `offset` characters). */
export function positionOf(doc: vscode.TextDocument, needle: string, offset = 0, nth = 0): vscode.Position {
  const text = doc.getText();
  let i = -1;
  for (let k = 0; k <= nth; k++) {
    i = text.indexOf(needle, i + 1);
    if (i < 0) throw new Error(`"${needle}" (#${nth}) not found in ${doc.uri.path}`);
  }
  return doc.positionAt(i + offset);
}

export const diagCode = (d: vscode.Diagnostic): string | undefined =>
  typeof d.code === 'object' && d.code !== null ? String(d.code.value) : d.code === undefined ? undefined : String(d.code);

let pageRequests = 0;

/** Whether this runner can see the page (code-server through scripts/run-extension-tests.mjs; not a desktop VS Code). */
export const pageAccess = Boolean(process.env.MERGE_TEST_PAGE);

/**
 * A page check: asks the runner and returns its answer, or — only without page access — logs that the check was
 * skipped and returns undefined. With page access a missing answer is a failure, so the check cannot pass silently.
 */
export async function pageCheck<T>(what: string, request: Record<string, unknown>, ms?: number): Promise<T | undefined> {
  if (!pageAccess) {
    console.log(`  (skipped without page access: ${what})`);
    return undefined;
  }
  const answer = await pageRequest<T>(request, ms);
  if (answer === undefined) throw new Error(`the runner gave no answer for: ${what}`);
  return answer;
}

/**
 * Asks the code-server runner about the page (scripts/run-extension-tests.mjs: webview contents, workbench
 * elements, screenshots) and resolves with its answer; undefined under runners without page access (a desktop
 * VS Code), so the checks that need one are skipped there.
 */
export function pageRequest<T>(request: Record<string, unknown>, ms = 60_000): Promise<T | undefined> {
  const dir = process.env.MERGE_TEST_PAGE;
  if (!dir) return Promise.resolve(undefined);
  const id = `${process.pid}-${++pageRequests}`;
  const answer = path.join(dir, `res-${id}.json`);
  return new Promise<T>((resolve, reject) => {
    const done = (): boolean => {
      if (!existsSync(answer)) return false;
      clearTimeout(timer);
      watcher.close();
      try {
        resolve(JSON.parse(readFileSync(answer, 'utf8')) as T);
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
      rmSync(answer, { force: true });
      return true;
    };
    const watcher = watch(dir, () => void done());
    const timer = setTimeout(() => {
      watcher.close();
      reject(new Error(`the runner did not answer ${JSON.stringify(request)} within ${ms} ms`));
    }, ms);
    writeFileSync(path.join(dir, `req-${id}.tmp`), JSON.stringify(request));
    renameSync(path.join(dir, `req-${id}.tmp`), path.join(dir, `req-${id}.json`));
    done();
  });
}

/** A report panel as the runner saw it in its frame. */
export interface PanelInPage {
  ok: boolean;
  panel: { busy: string | null; errors: string[]; charts: { id: string; marks: number }[] } | null;
}
