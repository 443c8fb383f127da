// `merge-studio check` and `merge-studio lsp` from the bundled CLI: the same diagnostics as the editor.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ExitNotification, ShutdownRequest, StreamMessageReader, StreamMessageWriter } from 'vscode-languageserver-protocol/node';
import { checkRecipeText, formatDiagnostic } from '../../server/src/engine/recipe';
import { connectClient, fileUri, read } from './harness';

const root = path.join(__dirname, '..', '..');
const cliJs = path.join(root, 'dist', 'cli.js');
const bad = (name: string) => path.join('test', 'fixtures', 'recipes', 'bad', `${name}.merge.yaml`);

function cli(...args: string[]) {
  return spawnSync(process.execPath, [cliJs, ...args], { cwd: root, encoding: 'utf8' });
}

beforeAll(() => {
  if (!existsSync(cliJs)) {
    const build = spawnSync(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { cwd: root, encoding: 'utf8' });
    if (build.status !== 0) throw new Error(`build failed: ${build.stderr}`);
  }
});

describe('merge-studio check', () => {
  it('prints LSP-shaped JSON identical to what the language server publishes', async () => {
    const file = bad('task-duplicate-name');
    const run = cli('check', file, '--format', 'json');
    expect(run.status).toBe(1);
    const json = JSON.parse(run.stdout) as { file: string; uri: string; diagnostics: unknown[]; errorCount: number; warningCount: number };
    const abs = path.join(root, file);
    expect(json).toMatchObject({ file: abs, uri: fileUri(abs), errorCount: 1, warningCount: 0 });
    expect(json.diagnostics).toEqual(JSON.parse(JSON.stringify(await checkRecipeText(read(abs), abs))));
    expect(run.stderr).toBe(`merge-studio: ${file}: 1 error, 0 warnings\n`);
  });

  it('prints file:line:col: severity code: message, and exits 0 without errors', async () => {
    const file = bad('heads-without-attention');
    const run = cli('check', file);
    const [d] = await checkRecipeText(read(path.join(root, file)), path.join(root, file));
    expect(run.stdout).toBe(`${formatDiagnostic(file, d!)}\n${file}: 0 errors, 1 warning\n`);
    expect(run.stdout).toBe(
      `${file}:9:10: warning inconsistent-align: align.heads reorder has no effect: "attention" is not in align.permute\n${file}: 0 errors, 1 warning\n`,
    );
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('fails with one line for a missing recipe or a bad --format', () => {
    const missing = cli('check', 'nope.merge.yaml');
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe(`merge-studio: recipe ${path.join(root, 'nope.merge.yaml')} does not exist\n`);
    expect(cli('check', bad('enum-typo'), '--format', 'xml').stderr).toBe('merge-studio: --format must be human or json, got "xml"\n');
  });
});

describe('merge-studio lsp --stdio', () => {
  it('serves LSP on stdio and exits 0 after shutdown + exit', async () => {
    const child = spawn(process.execPath, [cliJs, 'lsp', '--stdio'], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
    const client = await connectClient(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
    const file = path.join(root, bad('enum-typo'));
    expect((await client.open(fileUri(file), read(file))).map((d) => d.code)).toEqual(['bad-enum']);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await client.connection.sendRequest(ShutdownRequest.type);
    await client.connection.sendNotification(ExitNotification.type);
    expect(await exited).toBe(0);
  });
});
