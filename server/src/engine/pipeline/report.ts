/**
 * report.json: everything a run found out, as plain JSON. The single definition used by the CLI table, the
 * language server (getReport), the webview panels and the notebook renderer.
 */
import type { JobStage } from '../progress';
import type { AlignMethodName, HeadsMode, MergeMethodName, PermutePart } from '../recipe/schema';

export const REPORT_VERSION = 2;
/** Versions the panels read: 1 has no `systems` and labels the unaligned merge `linear` (now `unaligned`). */
export const READABLE_REPORT_VERSIONS = [1, 2] as const;
/** MIME type of a report, for notebook renderers. */
export const REPORT_MIME = 'application/vnd.merge-studio.report+json';

export type PermuteGroup = PermutePart;

export interface ModelSummary {
  source: string;
  family: string;
  modelType: string;
  layers: number;
  hidden: number;
  heads: number;
  intermediate: number;
  parameters: number;
  sampleRate: number;
  frameRate: number;
}

/** Alignment statistics of one tap (a permutation group at one place in the network). */
export interface TapReport {
  tap: string;
  group: PermuteGroup;
  /** Transformer layer (0-based) or conv block; null for the residual stream. */
  layer: number | null;
  units: number;
  /** Mean of the diagonal of the anchor × other correlation matrix before and after permutation. */
  meanCorrelationBefore: number;
  meanCorrelationAfter: number;
  /** Fraction of units the permutation moved. */
  moved: number;
  /** Units with zero variance on the probe audio (their correlations count as 0). */
  deadUnits: { anchor: number; other: number };
  /**
   * Correlation matrix before and after permutation, for heatmaps: `size` × `size` cells (at most 64), row-major,
   * anchor rows × other columns. Older reports: each cell the mean over `blocks` × `blocks` units. Since
   * pipeline/heatmap.ts samples instead: `blocks` is 1 and `units` lists the anchor units shown when the matrix is
   * larger (spread over the units ranked by matched correlation, best first).
   */
  heatmap?: { size: number; blocks: number; before: number[]; after: number[]; units?: number[] };
  /** Attention only: head-pair score matrix [heads × heads] row-major (anchor head × other head): the mean correlation of the pair's best in-head matching. */
  headScores?: number[];
}

export interface EvaluationRow {
  /**
   * The system scored: `anchor`, `other`, `unaligned` (interpolation without alignment; `linear` in version 1),
   * `permuted` (the recipe's main align + merge settings), or the name of one of the recipe's `variants`.
   */
  variant: string;
  lambda: number | null;
  task: string;
  domain: 'speech' | 'music';
  /** Test accuracy in [0, 1]. */
  score: number;
}

/** One merged system of the comparison: its settings and size (parameters do not depend on λ). */
export interface SystemReport {
  name: string;
  align: { method: AlignMethodName; permute: PermuteGroup[]; heads: HeadsMode };
  merge: { method: MergeMethodName; repair: boolean; width: number };
  parameters: number;
}

export interface MergeReport {
  version: (typeof READABLE_REPORT_VERSIONS)[number];
  createdAt: string;
  recipe: { file: string; sha256: string };
  /** `tool.mergeStudio` is also how Merge Studio recognises an output folder it wrote, and may replace (io/output-folder.ts). */
  tool: { mergeStudio: string; onnxruntime: string; node: string };
  backend: string;
  models: { anchor: ModelSummary; other: ModelSummary };
  probe: { seconds: number; segments: number; sources: { path: string; files: number; seconds: number }[] } | null;
  align: {
    method: AlignMethodName;
    permute: PermuteGroup[];
    heads: HeadsMode;
    taps: TapReport[];
    /** `warning`: the deviation of a method that is not function-preserving (align.method paper), reported, not refused. */
    selfCheck: { maxRelativeError: number; tolerance: number; passed: boolean; warning?: string } | null;
  };
  merge: { method: MergeMethodName; lambda: unknown; sweep: number[] };
  /** `split`: the clips the scores are measured on (recipe evaluate.split; absent in reports written before it existed: test). */
  /** Version 2: every merged system compared (unaligned, permuted = the main settings, then the variants). */
  systems?: SystemReport[];
  evaluation: {
    rows: EvaluationRow[];
    averages: { variant: EvaluationRow['variant']; lambda: number | null; average: number }[];
    split?: 'test' | 'validation';
    /** With split validation: the folds of the cross-validation over train (absent: one held-out quarter). */
    folds?: number;
  } | null;
  timings: Partial<Record<JobStage, number>> & { total: number };
  output: { dir: string; files: string[] };
}
