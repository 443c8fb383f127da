/**
 * Both encoders on the same batch in ONE onnxruntime graph, with every requested tap pair reduced on the device to
 * per-batch centred moments: n, mean_a, mean_b, Σ(a−ā)², Σ(b−b̄)² and the cross product (A−Ā)ᵀ(B−B̄). Only these
 * O(d²) results cross into JS (activations never do), where statistics are combined in float64 across batches
 * (align/stats.ts). The O(frames·d²) work stays in onnxruntime's GEMMs.
 */
import * as ort from 'onnxruntime-node';
import { EngineError } from '../errors';
import type { EncoderConfig } from '../io/hfconfig';
import { addEncoder } from './encoder-graph';
import { receptiveField, type EncoderModel } from './encoder';
import { GraphBuilder } from './graph-builder';
import { createSession, type Backend, type Session, type SessionOptions } from './runtime';
import { isChannelsFirst, type TapName } from './taps';

/** Per-batch centred moments of one tap pair (float32, as onnxruntime computed them). */
export interface TapPairMoments {
  tap: TapName;
  /** Rows (frames × batch) the moments cover. */
  n: number;
  dimA: number;
  dimB: number;
  meanA: Float32Array;
  meanB: Float32Array;
  m2A: Float32Array;
  m2B: Float32Array;
  /** (A − Ā)ᵀ(B − B̄), [dimA × dimB] row-major. */
  cross: Float32Array;
}

type Model = Pick<EncoderModel, 'config' | 'weights'>;

/** The width of a tap, in units (channels / hidden / heads·head_dim / FFN neurons). */
export function tapWidth(cfg: EncoderConfig, tap: TapName): number {
  const conv = /^conv\.(\d+)$/.exec(tap);
  if (conv) return cfg.convDims[Number(conv[1])]!;
  if (tap.endsWith('.ffn')) return cfg.intermediate;
  return cfg.hidden;
}

/** Refuses a pair that cannot be run on the same batch with the same taps. */
export function checkPairCompatible(a: EncoderConfig, b: EncoderConfig): void {
  const problems: string[] = [];
  if (a.sampleRate !== b.sampleRate || a.frameRate !== b.frameRate) {
    problems.push(`sample/frame rates differ (${a.sampleRate} Hz at ${a.frameRate} frames/s vs ${b.sampleRate} Hz at ${b.frameRate} frames/s; e.g. MERT-v1 runs at 24 kHz/75 Hz, HuBERT at 16 kHz/50 Hz — pair models with equal rates, such as HuBERT with MERT-v0)`);
  }
  const same = (k: keyof EncoderConfig) => JSON.stringify(a[k]) === JSON.stringify(b[k]);
  for (const k of ['hidden', 'layers', 'heads', 'intermediate', 'convDims', 'convKernels', 'convStrides', 'posConvKernel', 'posConvGroups', 'preLayerNorm', 'featExtractNorm', 'convBias', 'featProjLayerNorm'] as const) {
    if (!same(k)) problems.push(`${k} differs (${JSON.stringify(a[k])} vs ${JSON.stringify(b[k])})`);
  }
  if (problems.length) throw new EngineError('incompatible-models', `the two models cannot be aligned and merged: ${problems.join('; ')}`);
}

export class PairStatisticsSession {
  private constructor(
    private readonly session: Session,
    private readonly config: EncoderConfig,
    private readonly taps: readonly TapName[],
  ) {}

  static async create(anchor: Model, other: Model, taps: readonly TapName[], opts: SessionOptions = {}): Promise<PairStatisticsSession> {
    checkPairCompatible(anchor.config, other.config);
    const b = new GraphBuilder();
    const audio = b.input('audio', ['batch', 'samples']);
    const ta = addEncoder(b, anchor.config, anchor.weights, audio, 'a/');
    const tb = addEncoder(b, other.config, other.weights, audio, 'b/');
    for (const tap of taps) {
      const x = ta.get(tap);
      const y = tb.get(tap);
      if (!x || !y) throw new EngineError('runtime-error', `unknown tap ${tap}`);
      const width = tapWidth(anchor.config, tap);
      const rows = (v: string, side: string) => {
        const framesLast = isChannelsFirst(tap) ? b.op('Transpose', [v], { perm: [0, 2, 1] }) : v;
        return b.op('Reshape', [framesLast, b.int64s([-1, width])], {}, `${side}/${tap}/rows`);
      };
      const moments = (v: string, side: 'a' | 'b') => {
        const r = rows(v, side);
        const mean = b.op('ReduceMean', [r], { axes: [0], keepdims: 1 }, `${side}/${tap}/mean_kd`);
        const centred = b.op('Sub', [r, mean], {}, `${side}/${tap}/centred`);
        b.output(b.op('Reshape', [mean, b.int64s([-1])]), `${tap}/mean_${side}`);
        b.output(b.op('ReduceSumSquare', [centred], { axes: [0], keepdims: 0 }), `${tap}/m2_${side}`);
        return centred;
      };
      const ca = moments(x, 'a');
      const cb = moments(y, 'b');
      b.output(b.op('MatMul', [b.op('Transpose', [ca], { perm: [1, 0] }), cb]), `${tap}/cross`);
    }
    return new PairStatisticsSession(await createSession(b.encode('merge_studio_pair_statistics'), opts), anchor.config, taps);
  }

  get backend(): Backend {
    return this.session.backend;
  }

  /** Runs one batch of equal-length waveforms ([batch × samples] flat) and returns the moments of every tap pair. */
  async run(audio: Float32Array, batch: number): Promise<TapPairMoments[]> {
    const samples = audio.length / batch;
    if (!Number.isInteger(samples) || samples < receptiveField(this.config)) {
      throw new EngineError('bad-audio', `a probe batch of ${audio.length} samples in ${batch} rows is too short for the encoder`);
    }
    const out = await this.session.run({ audio: new ort.Tensor('float32', audio, [batch, samples]) });
    return this.taps.map((tap) => {
      const get = (k: string) => out[`${tap}/${k}`]!.data as Float32Array;
      const meanA = get('mean_a');
      const meanB = get('mean_b');
      const cross = get('cross');
      const n = rowsOf(audio.length, batch, tap, this.config);
      return { tap, n, dimA: meanA.length, dimB: meanB.length, meanA, meanB, m2A: get('m2_a'), m2B: get('m2_b'), cross };
    });
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** Rows per batch for a tap: batch × frames at that tap's depth in the conv stack. */
function rowsOf(totalSamples: number, batch: number, tap: TapName, cfg: EncoderConfig): number {
  const conv = /^conv\.(\d+)$/.exec(tap);
  const depth = conv ? Number(conv[1]) + 1 : cfg.convKernels.length;
  let n = totalSamples / batch;
  for (let i = 0; i < depth; i++) n = Math.floor((n - cfg.convKernels[i]!) / cfg.convStrides[i]!) + 1;
  return n * batch;
}
