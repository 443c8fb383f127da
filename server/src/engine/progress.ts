/**
 * Progress and results of a long engine job (align, merge, evaluate), as plain JSON-serialisable events.
 * The CLI prints them as a progress bar or, with `--progress json`, as one JSON object per line on stdout;
 * the language server's job runner reads those lines from a child process and maps them to LSP work-done
 * progress. One definition, used by all of them.
 */
export type JobStage = 'load' | 'probe' | 'statistics' | 'assign' | 'permute' | 'self-check' | 'merge' | 'evaluate' | 'write';

export type JobEvent =
  | { type: 'stage'; stage: JobStage; message: string }
  | { type: 'progress'; stage: JobStage; done: number; total: number; message?: string }
  | { type: 'log'; level: 'info' | 'warning'; message: string }
  | { type: 'result'; outputDir: string; reportPath: string; summary: JobSummary }
  | { type: 'error'; code: string; message: string; file?: string };

export interface JobSummary {
  /** Mean diagonal correlation over all aligned taps, before and after permutation (null when not aligned). */
  meanCorrelationBefore: number | null;
  meanCorrelationAfter: number | null;
  /** Average evaluation score per merge variant and λ, when the recipe evaluates. */
  scores?: { variant: string; lambda: number | null; average: number }[];
  seconds: number;
}

export type ProgressSink = (event: JobEvent) => void;

/**
 * Progress of `count` equal parts of one stage (evaluate scores several systems, each over the same clips), reported
 * as progress of the whole stage: one bar and one ETA, never restarting at 0 per part. Parts may run at the same
 * time (systems scored in parallel workers): the stage's progress is the sum of every part's fraction done, so it
 * only moves forward whatever order their events come in. `partsOfStage(emit, n)(i)` is part i's sink.
 */
export function partsOfStage(emit: ProgressSink, count: number): (index: number) => ProgressSink {
  const fractions = new Float64Array(count);
  return (index) => (e) => {
    if (e.type !== 'progress' || e.total <= 0) return emit(e);
    fractions[index] = Math.max(fractions[index]!, Math.min(1, e.done / e.total));
    const done = fractions.reduce((a, f) => a + f, 0);
    emit({ ...e, done: Math.round(done * e.total), total: count * e.total });
  };
}

/** Seconds of a stage's progress before its first ETA: the first batch includes session start-up and is no rate. */
const ETA_AFTER_S = 3;

/**
 * One ETA per stage, for every progress UI (terminal bar, status bar): from the rate since the current run of
 * progress began. A new stage, a new total or progress going back (a stage made of phases, e.g. decoding then
 * scoring) starts a new measurement; no ETA in its first seconds.
 */
export class StageEta {
  private stage: JobStage | undefined;
  private base: { at: number; fraction: number; total: number } | undefined;
  private last = 0;

  /** The stage's fraction done and the seconds left (null while unknown). */
  update(stage: JobStage, done: number, total: number, nowMs: number): { fraction: number; etaSeconds: number | null } {
    const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
    if (stage !== this.stage || !this.base || total !== this.base.total || fraction < this.last) {
      this.stage = stage;
      this.base = { at: nowMs, fraction, total };
    }
    this.last = fraction;
    const elapsed = (nowMs - this.base.at) / 1000;
    const progressed = fraction - this.base.fraction;
    const etaSeconds = fraction < 1 && elapsed >= ETA_AFTER_S && progressed > 0 ? (elapsed / progressed) * (1 - fraction) : null;
    return { fraction, etaSeconds };
  }

  /** A stage began (no progress yet). */
  reset(stage: JobStage): void {
    this.stage = stage;
    this.base = undefined;
    this.last = 0;
  }
}
