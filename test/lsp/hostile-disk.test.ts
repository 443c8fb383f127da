// Named pipes, devices and oversized files where a recipe expects model folders, configs, probe audio and
// labels.csv: each gets a clear message naming the file, fast, and none of them stalls the language server.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DocumentSymbolRequest, HoverRequest } from 'vscode-languageserver-protocol';
import * as lsp from '../../protocol/lsp-ext';
import { checkRecipeText, RecipeDisk } from '../../server/src/engine/recipe';
import { spawnServer, type ServerProcess } from '../fuzz/lsp-process';
import { within } from '../fuzz/fuzz-util';
import { fileUri } from './harness';

const fixtures = path.join(__dirname, '..', 'fixtures', 'recipes');
let dir: string;

function mkfifo(p: string): void {
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo ${p}: ${r.stderr}`);
}

/** A model folder copied from a fixture, with `config.json` replaced by what `config` makes there. */
function model(name: string, config?: (file: string) => void): string {
  const d = path.join(dir, name);
  cpSync(path.join(fixtures, 'models', 'tiny-a'), d, { recursive: true });
  if (config) {
    rmSync(path.join(d, 'config.json'));
    config(path.join(d, 'config.json'));
  }
  return d;
}

/** A task folder copied from the good fixture, with train/labels.csv replaced by what `labels` makes there. */
function task(name: string, labels: (file: string) => void): string {
  const d = path.join(dir, name);
  cpSync(path.join(fixtures, 'data', 'task-good'), d, { recursive: true });
  rmSync(path.join(d, 'train', 'labels.csv'));
  labels(path.join(d, 'train', 'labels.csv'));
  return d;
}

function recipe(name: string, body: { anchor?: string; probe?: string; task?: string }): string {
  const file = path.join(dir, `${name}.merge.yaml`);
  const lines = ['version: 1', 'models:', `  anchor: ${body.anchor ?? './tiny-a'}`, '  other: ./tiny-b'];
  if (body.probe) lines.push('probe:', `  audio: [${body.probe}]`);
  else lines.push('align: { method: none }');
  lines.push('merge: { lambda: 0.5 }');
  if (body.task) lines.push('evaluate:', '  tasks:', `    - { name: kw, domain: speech, data: ${body.task} }`);
  lines.push(`output: ./out-${name}`, '');
  writeFileSync(file, lines.join('\n'));
  return file;
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'ms-hostile-disk-'));
  cpSync(path.join(fixtures, 'models', 'tiny-a'), path.join(dir, 'tiny-a'), { recursive: true });
  cpSync(path.join(fixtures, 'models', 'tiny-b'), path.join(dir, 'tiny-b'), { recursive: true });
  model('fifo-config', mkfifo);
  model('zero-config', (f) => symlinkSync('/dev/zero', f));
  model('huge-config', (f) => writeFileSync(f, `{"model_type": "hubert", "pad": "${'x'.repeat(2 * 1024 * 1024)}"}`));
  model('preprocessor-fifo');
  mkfifo(path.join(dir, 'preprocessor-fifo', 'preprocessor_config.json'));
  mkfifo(path.join(dir, 'fifo-model'));
  mkfifo(path.join(dir, 'probe.wav'));
  task('task-fifo-labels', mkfifo);
  task('task-urandom-labels', (f) => symlinkSync('/dev/urandom', f));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `checkRecipeText` of a recipe file, with how long it took. */
async function check(file: string): Promise<{ messages: string[]; ms: number }> {
  const t = performance.now();
  const diagnostics = await within(checkRecipeText(readFileSync(file, 'utf8'), file), 10_000, `check ${file}`);
  return { messages: diagnostics.map((d) => `${d.code}: ${d.message}`), ms: performance.now() - t };
}

describe('non-regular files in a recipe (engine checks)', () => {
  it('a FIFO as config.json is named, not opened', async () => {
    const { messages } = await check(recipe('fifo-config', { anchor: './fifo-config' }));
    expect(messages).toEqual([
      'bad-model: models.anchor: ./fifo-config/config.json is not a regular file (it is a named pipe (FIFO)); expected a JSON model config',
    ]);
  });

  it('/dev/zero as config.json is refused at once (it was read until memory ran out)', async () => {
    const { messages, ms } = await check(recipe('zero-config', { anchor: './zero-config' }));
    expect(messages).toEqual([
      'bad-model: models.anchor: ./zero-config/config.json is not a regular file (it is a device); expected a JSON model config',
    ]);
    expect(ms).toBeLessThan(5_000);
  });

  it('a config.json over 1 MB is refused by size', async () => {
    const { messages } = await check(recipe('huge-config', { anchor: './huge-config' }));
    expect(messages).toEqual([
      expect.stringMatching(
        /^bad-model: models\.anchor: \.\/huge-config\/config\.json is 2\.0 MB; a JSON model config may be at most 1\.0 MB$/,
      ),
    ]);
  });

  it('a FIFO as preprocessor_config.json is named', async () => {
    const { messages } = await check(recipe('preprocessor-fifo', { anchor: './preprocessor-fifo' }));
    expect(messages).toEqual([
      'bad-model: models.anchor: ./preprocessor-fifo/preprocessor_config.json is not a regular file (it is a named pipe (FIFO)); expected a JSON preprocessor config',
    ]);
  });

  it('a FIFO as the model folder says what it is', async () => {
    const { messages } = await check(recipe('fifo-model', { anchor: './fifo-model' }));
    expect(messages).toEqual([
      'not-a-directory: models.anchor: ./fifo-model is a named pipe (FIFO); expected a model folder with config.json and model.safetensors',
    ]);
  });

  it('a FIFO as probe audio is named, not opened', async () => {
    const { messages } = await check(recipe('fifo-probe', { probe: './probe.wav' }));
    expect(messages).toEqual([
      'not-a-file: probe.audio[0]: ./probe.wav is not a regular file (it is a named pipe (FIFO)); expected audio files or a folder of them',
    ]);
  });

  it('a FIFO or /dev/urandom as labels.csv is named, not read', async () => {
    const fifo = await check(recipe('fifo-labels', { task: './task-fifo-labels' }));
    expect(fifo.messages).toEqual([
      'bad-dataset: evaluate.tasks[0].data: ./task-fifo-labels/train/labels.csv is not a regular file (it is a named pipe (FIFO)); expected labels.csv (header "file,label")',
    ]);
    const urandom = await check(recipe('urandom-labels', { task: './task-urandom-labels' }));
    expect(urandom.messages).toEqual([
      'bad-dataset: evaluate.tasks[0].data: ./task-urandom-labels/train/labels.csv is not a regular file (it is a device); expected labels.csv (header "file,label")',
    ]);
    expect(urandom.ms).toBeLessThan(5_000);
  });

  it('a disk probe past its deadline answers "not checked" instead of waiting, and is not cached', async () => {
    // A wide tree with no audio in it: listing it takes longer than a 1 ms deadline.
    const tree = path.join(dir, 'wide-tree');
    for (let i = 0; i < 300; i++) mkdirSync(path.join(tree, `d${i}`, 'sub'), { recursive: true });
    const disk = new RecipeDisk(undefined, { probeTimeoutMs: 1 });
    expect(await disk.audioFolderProblem(tree)).toMatch(
      /^.*wide-tree: listing it for audio took longer than 0 s \(a very large tree, or a slow drive\?\); not checked$/,
    );
    expect(disk.cache.size).toBe(0);
    const patient = new RecipeDisk(undefined, { probeTimeoutMs: 60_000 });
    expect(await patient.audioFolderProblem(tree)).toBe(`${tree} holds no wav, flac or mp3 files`);
  });

  it('an audio folder tree is searched through a bounded number of folders, the same answer every time (probe: [/])', async () => {
    const tree = path.join(dir, 'wide-tree'); // 601 folders, no audio (made by the test above, or here)
    for (let i = 0; i < 300; i++) mkdirSync(path.join(tree, `d${i}`, 'sub'), { recursive: true });
    const bounded = new RecipeDisk(undefined, { audioFolders: 100 });
    const message = `${tree}: no wav, flac or mp3 file in its first 100 folders; is this the folder you meant?`;
    expect(await bounded.audioFolderProblem(tree)).toBe(message);
    bounded.cache.clear();
    expect(await bounded.audioFolderProblem(tree)).toBe(message);
  });
});

describe('non-regular files over the real language server (stdio)', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await spawnServer();
  }, 60_000);
  afterAll(() => server?.stop());

  it('four recipes with FIFOs open at once (four libuv threads) leave the server answering other documents', async () => {
    const { client } = server;
    const fifoRecipes = [
      recipe('lsp-fifo-config', { anchor: './fifo-config' }),
      recipe('lsp-fifo-preprocessor', { anchor: './preprocessor-fifo' }),
      recipe('lsp-fifo-probe', { probe: './probe.wav' }),
      recipe('lsp-fifo-labels', { task: './task-fifo-labels' }),
    ];
    const published = await within(
      Promise.all(fifoRecipes.map((f) => client.open(fileUri(f), readFileSync(f, 'utf8')))),
      20_000,
      'diagnostics of the FIFO recipes',
    );
    for (const diagnostics of published)
      expect(diagnostics.map((d) => d.message).join('\n')).toMatch(/is not a regular file \(it is a named pipe \(FIFO\)\)/);

    const fine = recipe('lsp-fine', {});
    const fineText = readFileSync(fine, 'utf8');
    expect(await within(client.open(fileUri(fine), fineText), 20_000, 'diagnostics of a good recipe')).toEqual([]);
    const hover = await within(
      client.connection.sendRequest(HoverRequest.type, { textDocument: { uri: fileUri(fine) }, position: { line: 2, character: 12 } }),
      20_000,
      'hover',
    );
    expect(JSON.stringify(hover)).toContain('2 layers × 8 hidden');
    const symbols = await within(
      client.connection.sendRequest(DocumentSymbolRequest.type, { textDocument: { uri: fileUri(fine) } }),
      20_000,
      'symbols',
    );
    expect(symbols?.length).toBeGreaterThan(0);
    // The disk checks of the FIFO recipes again, by the custom request: still answered.
    const again = await within(client.connection.sendRequest(lsp.checkRecipe, { uri: fileUri(fifoRecipes[0]!) }), 20_000, 'checkRecipe');
    expect(again.errorCount).toBe(1);
    expect(server.exited()).toBeUndefined();
  }, 90_000);
});
