/**
 * What the least-squares refit fits each probe frame to (`merge.lsq.targets`):
 *
 * - `mix`: every frame to the λ-mix of the endpoints' outputs, λ y_a + (1 − λ) y_b (PLeaS).
 * - `routed`: multi-teacher least squares. Frames of the anchor's domain (`probe.domains.anchor`) are fit to the
 *   anchor's output, frames of the other's domain to the other's, weighted λ and 1 − λ:
 *
 *     min_W,b  λ Σ_{anchor-domain frames} ‖W x + b − y_a‖² + (1 − λ) Σ_{other-domain frames} ‖W x + b − y_b‖² + α‖W − W_lerp‖²
 *
 *   The mix is an output neither model computes (on music, the speech model's output is noise that the mix keeps at
 *   weight λ); routed asks the merge to behave like each model on the audio that model knows.
 *
 * Routed stays closed form: each domain's frames are measured as their own split with its teacher's targets (the stage
 * graph mixes with λ = 1 or 0), giving one system of normal equations per domain, and the weighted sum of those
 * systems (weightedSystem) is the system of the loss above. A frame's weight w enters every moment as w copies of it.
 */
import { EngineError } from '../../errors';
import type { ProbeDomain, ProbeSet } from '../../io/probe';
import type { LsqTargets } from '../../recipe/schema';
import type { LsqStage } from './lsq-graph';

/** Whose outputs a split's frames are fit to: the λ-mix of both, or one endpoint's. */
export type Teacher = 'mix' | ProbeDomain;

/** A part of the probe and the teacher its frames are fit to. */
export interface TeacherSplit {
  probe: ProbeSet;
  teacher: Teacher;
}

/** The normal equations of one stage: Cov(x) (p×p), Cov(x, y) (p×q), the means and the targets' Σ(y − ȳ)². */
export interface StageSystem {
  /** Frames, or with weighted frames the sum of their weights. */
  n: number;
  p: number;
  q: number;
  cxx: Float64Array;
  cxy: Float64Array;
  meanX: Float64Array;
  meanY: Float64Array;
  m2Y: Float64Array;
}

/** The stage with its targets set to the teacher's outputs (the graph forms λ y_a + (1 − λ) y_b with these λ). */
export function teacherStage(stage: LsqStage, teacher: Teacher): LsqStage {
  if (teacher === 'mix') return stage;
  const lambda = teacher === 'anchor' ? 1 : 0;
  return { ...stage, sites: stage.sites.map((s) => ({ ...s, lambda })) };
}

/** The weight of a teacher's frames in the loss of a projection merged at `lambda`. */
export function teacherWeight(teacher: Teacher, lambda: number): number {
  return teacher === 'mix' ? 1 : teacher === 'anchor' ? lambda : 1 - lambda;
}

/**
 * The probe split by teacher: all of it fit to the mix, or (routed) each domain's segments to that model. Empty
 * parts are left out (a held-out fifth may hold no segment of a small domain).
 */
export function teacherSplits(probe: ProbeSet, targets: LsqTargets): TeacherSplit[] {
  if (targets === 'mix') return [{ probe, teacher: 'mix' }];
  const part = (domain: ProbeDomain): TeacherSplit => {
    const segments = probe.segments.filter((s) => probe.sources[s.source]?.domain === domain);
    return {
      probe: { ...probe, segments, totalSegments: segments.length, totalSeconds: segments.length * probe.segmentSeconds },
      teacher: domain,
    };
  };
  const untagged = probe.sources.filter((s) => s.domain === undefined).map((s) => s.source);
  if (untagged.length)
    throw new EngineError(
      'bad-recipe',
      `merge.lsq.targets routed fits each probe frame to the model whose domain it is, but probe.audio ${untagged.map((s) => `"${s}"`).join(', ')} has no domain: list it under probe.domains.anchor or probe.domains.other`,
    );
  return [part('anchor'), part('other')].filter((s) => s.probe.segments.length > 0);
}

/**
 * The system of Σ_k w_k·(loss over system k's frames): weights n, the means and the centred moments about the
 * weighted means (each part's moments plus its offset from the common mean). One part of weight 1 is returned as is.
 */
export function weightedSystem(parts: { system: StageSystem; weight: number }[]): StageSystem {
  if (parts.length === 1 && parts[0]!.weight === 1) return parts[0]!.system;
  const { p, q } = parts[0]!.system;
  const n = parts.reduce((s, { system, weight }) => s + weight * system.n, 0);
  const meanX = new Float64Array(p);
  const meanY = new Float64Array(q);
  for (const { system, weight } of parts) {
    const f = (weight * system.n) / n;
    for (let i = 0; i < p; i++) meanX[i] += f * system.meanX[i]!;
    for (let c = 0; c < q; c++) meanY[c] += f * system.meanY[c]!;
  }
  const cxx = new Float64Array(p * p);
  const cxy = new Float64Array(p * q);
  const m2Y = new Float64Array(q);
  for (const { system: s, weight } of parts) {
    const wn = weight * s.n;
    const dx = Float64Array.from(meanX, (m, i) => s.meanX[i]! - m);
    const dy = Float64Array.from(meanY, (m, c) => s.meanY[c]! - m);
    for (let i = 0; i < p; i++) {
      for (let j = 0; j < p; j++) cxx[i * p + j] += weight * s.cxx[i * p + j]! + wn * dx[i]! * dx[j]!;
      for (let c = 0; c < q; c++) cxy[i * q + c] += weight * s.cxy[i * q + c]! + wn * dx[i]! * dy[c]!;
    }
    for (let c = 0; c < q; c++) m2Y[c] += weight * s.m2Y[c]! + wn * dy[c]! * dy[c]!;
  }
  return { n, p, q, cxx, cxy, meanX, meanY, m2Y };
}
