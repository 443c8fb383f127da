// The bundled server (dist/server.js, as VS Code and other editors start it) over real stdio.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ExitNotification,
  HoverRequest,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  type MarkupContent,
} from 'vscode-languageserver-protocol/node';
import * as lsp from '../../protocol/lsp-ext';
import { connectClient, fileUri, read, type TestClient } from './harness';

const root = path.join(__dirname, '..', '..');
const serverJs = path.join(root, 'dist', 'server.js');
const recipe = path.join(root, 'test', 'fixtures', 'recipes', 'bad', 'incompatible-layer-count.merge.yaml');

let child: ChildProcess;
let client: TestClient;
const stderr: string[] = [];

beforeAll(async () => {
  // `npm test` builds first; build here only when run on its own.
  if (!existsSync(serverJs)) {
    const build = spawnSync(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { cwd: root, encoding: 'utf8' });
    if (build.status !== 0) throw new Error(`build failed: ${build.stderr}`);
  }
  child = spawn(process.execPath, [serverJs, '--stdio'], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stderr!.on('data', (b: Buffer) => stderr.push(b.toString()));
  client = await connectClient(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
});

afterAll(async () => {
  if (child.exitCode === null) child.kill();
});

describe('bundled server over stdio', () => {
  it('initializes, publishes diagnostics and hovers', async () => {
    const caps = client.initializeResult.capabilities.experimental as { mergeStudio: lsp.MergeStudioServerCapabilities };
    // dist/cli.js sits beside dist/server.js, so jobs are available.
    expect(caps.mergeStudio).toEqual({ protocolVersion: lsp.PROTOCOL_VERSION, jobs: true, serverStatus: true });

    const diagnostics = await client.open(fileUri(recipe), read(recipe));
    expect(diagnostics.map((d) => [d.code, d.range.start.line, d.range.start.character])).toEqual([['incompatible-models', 3, 9]]);

    const hover = await client.connection.sendRequest(HoverRequest.type, {
      textDocument: { uri: fileUri(recipe) },
      position: { line: 2, character: 14 },
    });
    expect((hover!.contents as MarkupContent).value).toContain('2 layers × 8 hidden');
  });

  it('runs a recipe through the bundled engine CLI (merge-studio run --progress json)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ms-stdio-run-'));
    try {
      const model = path.join(root, 'test', 'fixtures', 'hf-reference', 'hubert-postln-a');
      const file = path.join(dir, 'tiny.merge.yaml');
      writeFileSync(
        file,
        `version: 1\nmodels:\n  anchor: ${model}\n  other: ${model}\nalign: { method: none }\nmerge: { lambda: 0.5 }\noutput: ./out\nruntime: { device: cpu }\n`,
      );
      const { jobId } = await client.connection.sendRequest(lsp.runRecipe, { uri: fileUri(file), workDoneToken: 'e2e' });
      const finished = await client.jobFinished.next((j) => j.jobId === jobId);
      expect(finished).toMatchObject({ ok: true, outputDir: path.join(dir, 'out'), reportPath: path.join(dir, 'out', 'report.json') });
      const stages = client.progress.values
        .filter((p) => p.token === 'e2e' && p.value.kind === 'report')
        .map((p) => (p.value as { message?: string }).message);
      expect(stages[0]).toMatch(/^load: /);
      expect(stages.at(-1)).toMatch(/^write: /);
      const { report } = await client.connection.sendRequest(lsp.getReport, { jobId });
      expect(typeof report).toBe('object');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits cleanly on shutdown + exit, having written nothing but the protocol', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await client.connection.sendRequest(ShutdownRequest.type);
    // A separate process: here `exit` is how a client ends it (never in-process, where it would end the test worker).
    await client.connection.sendNotification(ExitNotification.type);
    expect(await exited).toBe(0);
    // Nothing but the protocol went to stdout (the stream would have failed to parse), nothing to stderr.
    expect(stderr.join('')).toBe('');
  });
});
