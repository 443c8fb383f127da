/** Shared CLI plumbing: output streams (and their readers going away), option parsing with one-line reasons. */
import { describeError, EngineError } from '../engine/errors';
import { DEVICES, type Device } from '../engine/model/runtime';

export interface Output {
  info(line: string): void;
  error(line: string): void;
}

export const consoleOutput: Output = {
  info: (line) => void (outputClosed || process.stdout.write(`${line}\n`)),
  error: (line) => void (outputClosed || process.stderr.write(`${line}\n`)),
};

export function parseDevice(value: string): Device {
  if (!DEVICES.includes(value as Device))
    throw new EngineError('backend-unavailable', `--device must be one of ${DEVICES.join(', ')}, got "${value}"`);
  return value as Device;
}

export function parseThreads(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new EngineError('bad-config', `--threads must be a positive integer, got "${value}"`);
  return n;
}

/** Process-wide handlers are installed once, however many programs a test builds. */
const installed = { closedOutput: false, uncaught: false };
const closedOutputListeners = new Set<() => void>();
let outputClosed = false;

/** Whether stdout or stderr lost its reader (`merge-studio … | head -1`). */
export function isOutputClosed(): boolean {
  return outputClosed;
}

/**
 * Calls `listener` if the output's reader goes away while a command still works (a run cancels itself and cleans
 * up instead of ending abruptly). Returns the function that unsubscribes.
 */
export function onOutputClosed(listener: () => void): () => void {
  closedOutputListeners.add(listener);
  return () => closedOutputListeners.delete(listener);
}

/**
 * A closed stdout or stderr (EPIPE) ends the command quietly, exit code 0, as Unix tools do; a command that
 * registered with onOutputClosed() is told instead and ends on its own. Any other stream error also ends the
 * process without a stack trace (it has nowhere left to print one).
 */
export function endQuietlyOnClosedOutput(): void {
  if (installed.closedOutput) return;
  installed.closedOutput = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (outputClosed) return;
      if (e.code !== 'EPIPE') process.exit(1);
      outputClosed = true;
      if (closedOutputListeners.size === 0) process.exit(0);
      for (const listener of closedOutputListeners) listener();
    });
  }
}

/**
 * An error nothing caught (a bug, or a callback outside the command's promise) ends the command with the same
 * one-line reason as any other failure; MERGE_STUDIO_DEBUG=1 adds the stack. Not for the language server, which
 * logs such errors to the editor and keeps serving.
 */
export function reportUncaughtErrorsInOneLine(): void {
  if (installed.uncaught) return;
  installed.uncaught = true;
  const fail = (e: unknown) => {
    consoleOutput.error(`merge-studio: ${describeError(e)}`);
    if (process.env.MERGE_STUDIO_DEBUG) console.error(e);
    process.exit(1);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
}
