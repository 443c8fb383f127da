/**
 * Systems scored one after another on one thread, as the main thread and each scoring worker do
 * (eval/scoring-pool.ts): an EmbeddingSession on the system's weights, then evaluateModel. A FrontEndCache is kept
 * across the systems of one group (the same λ), so that a system whose front end equals the one before it embeds
 * only its layers; a new group drops it.
 */
import { EngineError } from '../errors';
import { EmbeddingSession } from '../model/embed';
import type { EncoderModel } from '../model/encoder';
import { FrontEndCache } from '../model/front-end-cache';
import type { SessionOptions } from '../model/runtime';
import type { ProgressSink } from '../progress';
import { evaluateModel, type ModelEvaluation, type PreparedTask } from './evaluate';
import type { ProbeOptions } from './probe-classifier';

export interface SystemRequest {
  label: string;
  model: Pick<EncoderModel, 'config' | 'weights'>;
  probe: ProbeOptions;
  /** Systems of one group (the same λ) may share a front end; a new group drops the front ends kept. */
  cacheGroup: string;
  progress?: ProgressSink;
}

export interface ScoredSystem {
  evaluation: ModelEvaluation;
  /** Clips whose front end this system computed; 0 when every clip's came from a system scored before it. */
  frontEndClips: number;
}

export class SystemScoring {
  private readonly frontEnds = new FrontEndCache();
  private group: string | undefined;

  constructor(
    private readonly tasks: readonly PreparedTask[],
    private readonly session: SessionOptions,
  ) {}

  /** Scores one system; `signal` stops it between batches (EngineError 'cancelled'). */
  async score(req: SystemRequest, signal?: AbortSignal): Promise<ScoredSystem> {
    if (signal?.aborted) throw new EngineError('cancelled', 'evaluation cancelled');
    if (req.cacheGroup !== this.group) this.frontEnds.clear();
    this.group = req.cacheGroup;
    const embedding = await EmbeddingSession.create(req.model, this.session, this.frontEnds);
    try {
      const evaluation = await evaluateModel((clips) => embedding.embed(clips), this.tasks, {
        label: req.label,
        probe: req.probe,
        ...(req.progress ? { progress: req.progress } : {}),
        ...(signal ? { signal } : {}),
      });
      return { evaluation, frontEndClips: embedding.frontEndClips };
    } finally {
      await embedding.release();
    }
  }
}
