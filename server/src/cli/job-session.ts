/**
 * What every long-running command (`run`, `stats`) does around its job: progress as a bar, plain lines or JSON
 * events; Ctrl-C, SIGTERM and a reader that went away (`| head`) cancel it through one AbortSignal, with the
 * cancellation message on its own line; a failure is also a JSON `error` event when the editor is reading.
 */
import { EngineError, describeError } from '../engine/errors';
import type { JobEvent } from '../engine/progress';
import { onOutputClosed } from './common';
import { ProgressRenderer } from './progress-bar';

export type ProgressFormat = 'bar' | 'plain' | 'json';

export function parseProgressFormat(value: string | undefined): ProgressFormat {
  const format = value ?? (process.stderr.isTTY ? 'bar' : 'plain');
  if (format !== 'bar' && format !== 'plain' && format !== 'json')
    throw new EngineError('bad-config', `--progress must be bar, plain or json, got "${format}"`);
  return format;
}

export interface JobSession {
  readonly format: ProgressFormat;
  readonly signal: AbortSignal;
  emit(e: JobEvent): void;
  /** Ends the bar's line, so what follows starts on its own. */
  finishLine(): void;
}

/** Runs `job` inside a job session: signals and the closed-output watch are removed however it ends. */
export async function withJobSession<T>(format: ProgressFormat, job: (s: JobSession) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const renderer = format === 'json' ? undefined : new ProgressRenderer(process.stderr, format === 'bar');
  const session: JobSession = {
    format,
    signal: controller.signal,
    emit: (e) => (format === 'json' ? void process.stdout.write(`${JSON.stringify(e)}\n`) : renderer!.handle(e)),
    finishLine: () => renderer?.finishLine(),
  };
  const onSignal = () => {
    session.finishLine();
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const stopWatchingOutput = onOutputClosed(onSignal);
  try {
    return await job(session);
  } catch (e) {
    if (format === 'json') {
      const err = e instanceof EngineError ? e : undefined;
      session.emit({ type: 'error', code: err?.code ?? 'internal', message: describeError(e), ...(err?.file ? { file: err.file } : {}) });
    }
    throw e;
  } finally {
    session.finishLine();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    stopWatchingOutput();
  }
}
