import { expect } from 'vitest';
import { EngineError } from '../../server/src/engine/errors';

/** The EngineError a promise rejects with (fails the test when it resolves or rejects with anything else). */
export async function engineError(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(EngineError);
    return e as EngineError;
  }
  throw new Error('expected an EngineError');
}
