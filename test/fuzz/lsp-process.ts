/**
 * The language server as a separate process over real stdio, started from the current sources (so a test never
 * runs a stale dist/), with what the fuzz tier watches from outside: its stderr, whether it is alive, and its
 * memory (/proc VmRSS / VmHWM).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StreamMessageReader, StreamMessageWriter } from 'vscode-languageserver-protocol/node';
import { connectClient, type TestClient } from '../lsp/harness';
import { processMemory } from './fuzz-util';

const ROOT = path.resolve(__dirname, '../..');

export interface ServerProcess {
  child: ChildProcess;
  client: TestClient;
  /** Everything the server wrote to stderr so far. */
  stderr: string[];
  /** Set once the process exited (code or signal). */
  exited: () => string | undefined;
  memory: () => { rssBytes: number; peakBytes: number } | undefined;
  /** Ends the process (shutdown + exit when it still answers, else a kill). */
  stop: () => Promise<void>;
}

export async function spawnServer(options: { cwd?: string; env?: NodeJS.ProcessEnv; maxOldSpaceMb?: number } = {}): Promise<ServerProcess> {
  // tsx by absolute URL: `--import tsx` would resolve it from the server's working folder.
  const tsx = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  const args = [
    ...(options.maxOldSpaceMb ? [`--max-old-space-size=${options.maxOldSpaceMb}`] : []),
    '--import',
    tsx,
    path.join(ROOT, 'server', 'src', 'server.ts'),
    '--stdio',
  ];
  const child = spawn(process.execPath, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  let exit: string | undefined;
  child.stderr!.on('data', (b: Buffer) => stderr.push(b.toString()));
  child.on('exit', (code, signal) => {
    exit = signal ? `killed by ${signal}` : `exited with code ${code}`;
  });
  // A dead server must fail the test, not crash the worker with EPIPE.
  child.stdin!.on('error', () => undefined);
  // A server that cannot start must fail the caller, not leave `initialize` waiting forever.
  const died = new Promise<never>((_, reject) =>
    child.once('exit', () =>
      reject(new Error(`the language server exited before answering initialize (${exit}): ${stderr.join('').slice(-2000)}`)),
    ),
  );
  const client = await Promise.race([connectClient(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!)), died]);
  died.catch(() => undefined);
  return {
    child,
    client,
    stderr,
    exited: () => exit,
    memory: () => (child.pid === undefined ? undefined : processMemory(child.pid)),
    async stop() {
      if (exit === undefined) {
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
        try {
          await Promise.race([client.shutdown().then(() => child.kill()), new Promise((r) => setTimeout(r, 3000))]);
        } catch {
          child.kill('SIGKILL');
        }
        await gone;
        clearTimeout(kill);
      }
    },
  };
}
