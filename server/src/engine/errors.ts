/**
 * Every failure the engine reports to a user is an EngineError: a stable `code` (for tests, diagnostics and
 * quick fixes), a one-line message that names the thing that is wrong, and, where known, the file it is in.
 * Anything else that escapes the engine is a bug.
 */
export type EngineErrorCode =
  | 'file-not-found'
  | 'not-a-directory'
  | 'bad-json'
  | 'bad-config'
  | 'unsupported-model'
  | 'bad-checkpoint'
  | 'missing-tensor'
  | 'shape-mismatch'
  | 'bad-dtype'
  | 'bad-audio'
  | 'unsupported-audio'
  | 'backend-unavailable'
  | 'runtime-error'
  | 'incompatible-models'
  | 'bad-recipe'
  | 'bad-dataset'
  | 'non-finite'
  | 'cancelled'
  | 'self-check-failed'
  | 'io-error'
  | 'unsafe-pickle'
  | 'hub-error'
  | 'offline'
  | 'bad-shard';

export class EngineError extends Error {
  override readonly name = 'EngineError';
  constructor(
    readonly code: EngineErrorCode,
    message: string,
    /** The file the problem is in, when there is one. */
    readonly file?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isEngineError(e: unknown, code?: EngineErrorCode): e is EngineError {
  return e instanceof EngineError && (code === undefined || e.code === code);
}

/** A one-line reason for any thrown value, for CLI exits and logs. */
export function describeError(e: unknown): string {
  if (e instanceof EngineError) return e.message;
  if (e instanceof Error) return e.message.split('\n')[0] ?? String(e);
  return String(e);
}
