import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DidChangeWatchedFilesNotification, DidCloseTextDocumentNotification, FileChangeType } from 'vscode-languageserver-protocol';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as lsp from '../../protocol/lsp-ext';
import { checkRecipeText, RecipeDisk, type ModelInspection } from '../../server/src/engine/recipe';
import { HoverRequest } from 'vscode-languageserver-protocol';
import { fileUri, read, startTestServer, type TestClient } from './harness';

const recipes = path.join(__dirname, '..', 'fixtures', 'recipes');
const bad = (name: string) => path.join(recipes, 'bad', `${name}.merge.yaml`);

describe('diagnostics over LSP', () => {
  let client: TestClient;
  beforeEach(async () => {
    client = await startTestServer({ launcher: null });
  });
  afterEach(() => client.shutdown());

  it('announces its capabilities and custom protocol', () => {
    const caps = client.initializeResult.capabilities;
    expect(caps.hoverProvider).toBe(true);
    expect(caps.documentSymbolProvider).toBe(true);
    expect(caps.experimental).toEqual({ mergeStudio: { protocolVersion: lsp.PROTOCOL_VERSION, jobs: false, serverStatus: true } });
  });

  it('publishes exactly what the CLI checker reports, with exact ranges, source and code', async () => {
    for (const name of ['unknown-key-typo', 'incompatible-shapes', 'task-labels-missing-audio', 'syntax-tab-indent']) {
      const file = bad(name);
      const published = await client.open(fileUri(file), read(file));
      expect(published.length).toBeGreaterThan(0);
      expect(published).toEqual(JSON.parse(JSON.stringify(await checkRecipeText(read(file), file))));
      for (const d of published) {
        expect(d.source).toBe('merge-studio');
        expect(typeof d.code).toBe('string');
      }
    }
  });

  it('re-checks each edit and clears diagnostics once fixed', async () => {
    const file = bad('lambda-out-of-range');
    const uri = fileUri(file);
    const before = await client.open(uri, read(file));
    expect(before.map((d) => [d.code, d.range.start.line])).toEqual([['out-of-range', 6]]);
    const after = await client.change(uri, 2, read(file).replace('lambda: 1.5', 'lambda: 0.5'));
    expect(after).toEqual([]);
  });

  it('answers mergeStudio/checkRecipe like the published diagnostics, for open and unopened files', async () => {
    const file = bad('enum-typo');
    const published = await client.open(fileUri(file), read(file));
    const open = await client.connection.sendRequest(lsp.checkRecipe, { uri: fileUri(file) });
    expect(open).toMatchObject({ version: 1, errorCount: 1, warningCount: 0 });
    expect(open.diagnostics).toEqual(published);
    const other = bad('heads-without-attention');
    const closed = await client.connection.sendRequest(lsp.checkRecipe, { uri: fileUri(other) });
    expect(closed).toMatchObject({ version: null, errorCount: 0, warningCount: 1 });
  });

  it('checks untitled documents from their text alone', async () => {
    const text = 'version: 1\nmodels: { anchor: ./a, other: ./b }\nalign: { method: none }\nmerge: { lambda: 2 }\noutput: ./out\n';
    const diagnostics = await client.open('untitled:Untitled-1', text);
    expect(diagnostics.map((d) => d.code)).toEqual(['out-of-range']);
  });

  it('clears diagnostics when a document closes', async () => {
    const file = bad('enum-typo');
    await client.open(fileUri(file), read(file));
    const cleared = client.diagnostics.next((d) => d.uri === fileUri(file) && d.diagnostics.length === 0, client.diagnostics.values.length);
    await client.connection.sendNotification(DidCloseTextDocumentNotification.type, { textDocument: { uri: fileUri(file) } });
    expect((await cleared).diagnostics).toEqual([]);
  });

  it('never crashes on hostile text', async () => {
    const texts = [
      '',
      '\u0000\u0001',
      '{{{{',
      ': : :',
      '- - - -',
      '&a [*a, *a]',
      'version: !!binary AAAA',
      `${'['.repeat(500)}`,
      'a: '.repeat(300),
    ];
    let v = 0;
    for (const text of texts) {
      const diagnostics = await client.open(`untitled:hostile-${v++}`, text);
      expect(Array.isArray(diagnostics)).toBe(true);
    }
    expect(client.serverStatus.values.filter((s) => s.message?.includes('Internal error'))).toEqual([]);
    expect(client.logs.filter((l) => /error/i.test(l))).toEqual([]);
  });
});

describe('file watching', () => {
  let dir: string;
  let client: TestClient;
  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'ms-watch-'));
    cpSync(path.join(recipes, 'models', 'tiny-a'), path.join(dir, 'a'), { recursive: true });
    cpSync(path.join(recipes, 'models', 'tiny-b'), path.join(dir, 'b'), { recursive: true });
    client = await startTestServer({ launcher: null });
  });
  afterEach(async () => {
    await client.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('re-runs disk checks when a watched file changes', async () => {
    const file = path.join(dir, 'r.merge.yaml');
    const text = 'version: 1\nmodels:\n  anchor: ./a\n  other: ./b\nalign: { method: none }\nmerge: { lambda: 0.5 }\noutput: ./out\n';
    writeFileSync(file, text);
    expect(await client.open(fileUri(file), text)).toEqual([]);
    // Same size, same mtime second on coarse file systems: only the watcher notification can tell.
    const config = path.join(dir, 'b', 'config.json');
    writeFileSync(config, readFileSync(config, 'utf8').replace('"num_hidden_layers": 2', '"num_hidden_layers": 3'));
    const republished = client.diagnostics.next(
      (d) => d.uri === fileUri(file) && d.diagnostics.length > 0,
      client.diagnostics.values.length,
    );
    await client.connection.sendNotification(DidChangeWatchedFilesNotification.type, {
      changes: [{ uri: fileUri(config), type: FileChangeType.Changed }],
    });
    const { diagnostics } = await republished;
    expect(diagnostics.map((d) => d.code)).toEqual(['bad-checkpoint']);
    expect(diagnostics[0]!.message).toContain('does not match its config');
  });
});

describe('internal failures', () => {
  /** A disk layer with a bug: every model inspection throws. */
  class BrokenDisk extends RecipeDisk {
    override inspectModel(): Promise<ModelInspection> {
      return Promise.reject(new Error('boom in inspectModel'));
    }
  }

  it('become an internal-error diagnostic, a logged stack and a warning status, never a crash', async () => {
    const client = await startTestServer({ launcher: null, disk: new BrokenDisk() });
    try {
      const file = path.join(recipes, 'good', 'minimal.merge.yaml');
      const diagnostics = await client.open(fileUri(file), read(file));
      expect(diagnostics.map((d) => [d.code, d.range.start.line, d.message])).toEqual([
        ['internal-error', 0, 'Merge Studio could not check this recipe (a bug, please report it): boom in inspectModel'],
      ]);
      const hover = await client.connection.sendRequest(HoverRequest.type, {
        textDocument: { uri: fileUri(file) },
        position: { line: 2, character: 12 },
      });
      expect(hover).toBeNull();
      const status = await client.serverStatus.next((s) => s.message?.startsWith('Internal error in hover') === true);
      expect(status.health).toBe('warning');
      expect(client.logs.some((l) => l.startsWith('hover: Error: boom in inspectModel'))).toBe(true);
      // Still serving.
      expect((await client.connection.sendRequest(lsp.checkRecipe, { uri: fileUri(file) })).errorCount).toBe(1);
    } finally {
      await client.shutdown();
    }
  });
});
