/**
 * Worker-thread entry that scores systems (bundled to dist/scoring-worker.js; from source through tsx under vitest):
 * each request is one system's evaluation, as the main thread would run it (an EmbeddingSession on the system's
 * weights, then evaluateModel: eval/system-scoring.ts), with the onnxruntime threads the pool gives it (one, unless
 * cores outnumber workers). The tasks' audio comes once, in `workerData`, on shared memory; requests run one after
 * another in the order they arrive, so systems sent here one after another with the same front end
 * (eval/scoring-pool.ts sends them) embed it once.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { describeError, isEngineError } from '../errors';
import type { SessionOptions } from '../model/runtime';
import type { JobEvent } from '../progress';
import type { ModelEvaluation, PreparedTask } from './evaluate';
import { SystemScoring, type SystemRequest } from './system-scoring';

export interface ScoringWorkerData {
  tasks: PreparedTask[];
  session: SessionOptions;
}

/** What the main thread sends: a system to score, or `cancel` (the system running stops, the queued ones are refused). */
export type ScoringMessage = ({ type: 'score'; id: number } & Omit<SystemRequest, 'progress'>) | { type: 'cancel' };

export type ScoringResponse =
  | { id: number; type: 'progress'; event: JobEvent }
  | { id: number; type: 'result'; result: ModelEvaluation; frontEndClips: number }
  | { id: number; type: 'error'; error: { code: string | null; message: string; file?: string } };

const port = parentPort;
if (port) {
  const { tasks, session } = workerData as ScoringWorkerData;
  const scoring = new SystemScoring(tasks, session);
  let queue = Promise.resolve();
  // Cancelling is cooperative: evaluateModel stops between batches. Terminating a worker inside an onnxruntime call
  // aborts the whole process (onnxruntime-node throws a C++ exception that nothing catches), so the main thread
  // terminates a worker only once it has answered every request.
  const cancel = new AbortController();
  port.on('message', (msg: ScoringMessage) => {
    if (msg.type === 'cancel') return cancel.abort();
    const progress = (event: JobEvent) => port.postMessage({ id: msg.id, type: 'progress', event } satisfies ScoringResponse);
    queue = queue.then(async () => {
      let response: ScoringResponse;
      try {
        const scored = await scoring.score({ ...msg, progress }, cancel.signal);
        response = { id: msg.id, type: 'result', result: scored.evaluation, frontEndClips: scored.frontEndClips };
      } catch (e) {
        const error = isEngineError(e)
          ? { code: e.code, message: e.message, ...(e.file !== undefined ? { file: e.file } : {}) }
          : { code: null, message: describeError(e) };
        response = { id: msg.id, type: 'error', error };
      }
      port.postMessage(response);
    });
  });
}
