/**
 * Worker-thread entry that scores systems (bundled to dist/scoring-worker.js; from source through tsx under vitest):
 * each request is one system's evaluation, as the main thread would run it (an EmbeddingSession on the system's
 * weights, then evaluateModel), with the onnxruntime threads the pool gives it (one, unless cores outnumber workers).
 * The tasks' audio comes once, in `workerData`, on shared memory; requests run one after another in the order they
 * arrive, and a FrontEndCache lives as long as the worker, so systems sent here one after another with the same front
 * end (eval/scoring-pool.ts sends them) embed it once.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { EngineError, describeError, isEngineError } from '../errors';
import { EmbeddingSession } from '../model/embed';
import { FrontEndCache } from '../model/front-end-cache';
import type { SessionOptions } from '../model/runtime';
import type { EncoderModel } from '../model/encoder';
import type { JobEvent } from '../progress';
import { evaluateModel, type ModelEvaluation, type PreparedTask } from './evaluate';
import type { ProbeOptions } from './probe-classifier';

export interface ScoringWorkerData {
  tasks: PreparedTask[];
  session: SessionOptions;
  cacheBytes: number;
}

/** What the main thread sends: a system to score, or `cancel` (the system running stops, the queued ones are refused). */
export type ScoringMessage = ({ type: 'score' } & ScoringRequest) | { type: 'cancel' };

export interface ScoringRequest {
  id: number;
  model: Pick<EncoderModel, 'config' | 'weights'>;
  label: string;
  probe: ProbeOptions;
  /** Front ends are kept across requests of one group only (the systems of one λ); a new group drops them. */
  cacheGroup: string;
}

export type ScoringResponse =
  | { id: number; type: 'progress'; event: JobEvent }
  | { id: number; type: 'result'; result: ModelEvaluation; frontEndClips: number }
  | { id: number; type: 'error'; error: { code: string | null; message: string; file?: string } };

const port = parentPort;
if (port) {
  const { tasks, session, cacheBytes } = workerData as ScoringWorkerData;
  const frontEnds = new FrontEndCache(cacheBytes);
  let group: string | undefined;
  let queue = Promise.resolve();
  // Cancelling is cooperative: evaluateModel stops between batches. Terminating a worker inside an onnxruntime call
  // aborts the whole process (onnxruntime-node throws a C++ exception that nothing catches), so the main thread
  // terminates a worker only once it has answered every request.
  const cancel = new AbortController();
  const score = async (req: ScoringRequest): Promise<ScoringResponse> => {
    if (cancel.signal.aborted) throw new EngineError('cancelled', 'evaluation cancelled');
    if (req.cacheGroup !== group) frontEnds.clear();
    group = req.cacheGroup;
    const embedding = await EmbeddingSession.create(req.model, session, frontEnds);
    try {
      const result = await evaluateModel((clips) => embedding.embed(clips), tasks, {
        label: req.label,
        probe: req.probe,
        signal: cancel.signal,
        progress: (event) => port.postMessage({ id: req.id, type: 'progress', event } satisfies ScoringResponse),
      });
      return { id: req.id, type: 'result', result, frontEndClips: embedding.frontEndClips };
    } finally {
      await embedding.release();
    }
  };
  port.on('message', (msg: ScoringMessage) => {
    if (msg.type === 'cancel') return cancel.abort();
    const req = msg;
    queue = queue.then(async () => {
      let response: ScoringResponse;
      try {
        response = await score(req);
      } catch (e) {
        const error = isEngineError(e)
          ? { code: e.code, message: e.message, ...(e.file !== undefined ? { file: e.file } : {}) }
          : { code: null, message: describeError(e) };
        response = { id: req.id, type: 'error', error };
      }
      port.postMessage(response);
    });
  });
}
