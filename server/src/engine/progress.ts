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

/** A cancellation signal the engine polls between chunks of work (onnxruntime cannot abort a running session). */
export interface CancelToken {
  readonly cancelled: boolean;
}

/**
 * Progress of part `index` of `count` equal parts of one stage (evaluate scores several systems, each over the same
 * clips), reported as progress of the whole stage: one bar and one ETA per stage, never restarting at 0 per part.
 */
export function partOfStage(emit: ProgressSink, index: number, count: number): ProgressSink {
  return (e) => emit(e.type === 'progress' && e.total > 0 ? { ...e, done: index * e.total + e.done, total: count * e.total } : e);
}
