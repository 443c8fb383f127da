/**
 * Worker-thread entry for the linear assignment (bundled to dist/lap-worker.js; run from source through tsx's
 * loader under vitest/tsx). Messages: { id, n, buffer } → { id, perm, total } | { id, error: { code, message } }.
 * The score buffer comes in transferred; the permutation goes back transferred.
 */
import { parentPort } from 'node:worker_threads';
import { EngineError, describeError } from '../errors';
import { solveLap } from './lap';

export interface LapRequest {
  id: number;
  n: number;
  buffer: ArrayBuffer;
  byteOffset: number;
}
export type LapResponse =
  { id: number; perm: Int32Array; total: number; seconds: number } | { id: number; error: { code: string | null; message: string } };

/**
 * V8 optimises the solvers only after a few calls; a fresh worker would run its first real (large) solves in slower
 * tiers. A few small solves of each matrix kind at start-up (~tens of ms) warm them up; requests queue meanwhile.
 */
function warmUp(): void {
  let seed = 12345;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
  const n = 256;
  for (let round = 0; round < 3; round++) {
    const uniform = Float64Array.from({ length: n * n }, rand);
    const diag = Float64Array.from({ length: n * n }, (_, k) => 0.2 * rand() + (k % (n + 1) === 0 ? 0.5 : 0));
    solveLap(uniform, n);
    solveLap(diag, n);
  }
}

const port = parentPort;
if (port) {
  warmUp();
  port.on('message', (msg: LapRequest) => {
    try {
      const t0 = performance.now();
      const score = new Float64Array(msg.buffer, msg.byteOffset, msg.n * msg.n);
      const { perm, total } = solveLap(score, msg.n);
      const reply: LapResponse = { id: msg.id, perm, total, seconds: (performance.now() - t0) / 1000 };
      port.postMessage(reply, [perm.buffer as ArrayBuffer]);
    } catch (e) {
      const reply: LapResponse = {
        id: msg.id,
        error: { code: e instanceof EngineError ? e.code : null, message: describeError(e) },
      };
      port.postMessage(reply);
    }
  });
}
