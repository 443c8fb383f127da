/**
 * Both encoders on the same batch in onnxruntime graphs, with every requested tap pair reduced on the device to
 * per-batch centred moments: n, mean_a, mean_b, Σ(a−ā)², Σ(b−b̄)² and the cross product (A−Ā)ᵀ(B−B̄). Only these
 * O(d²) results cross into JS (activations never do), where statistics are combined in float64 across batches
 * (align/stats.ts). The O(frames·d²) work stays in onnxruntime's GEMMs.
 */
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as ort from 'onnxruntime-node';
import { addMoments, createPairStats, type PairStats } from '../align/stats';
import { EngineError } from '../errors';
import { rateMismatch } from './rates';
import type { EncoderConfig } from '../io/hfconfig';
import { addEncoder, type TapValues } from './encoder-graph';
import { framesFor, receptiveField, type EncoderModel } from './encoder';
import { GraphBuilder } from './graph-builder';
import { createSession, resolveBackend, type Backend, type Session, type SessionOptions } from './runtime';
import { isChannelsFirst, tapName, type TapName } from './taps';
import type { WeightMap } from './tensor';

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
  const rates = rateMismatch(a, b, { anchor: 'the anchor', other: 'the other model' });
  // The root cause alone: a different conv stack also differs in its kernels, strides and tensor shapes.
  if (rates) throw new EngineError('incompatible-models', `the two models cannot be aligned and merged: ${rates}`);
  const same = (k: keyof EncoderConfig) => JSON.stringify(a[k]) === JSON.stringify(b[k]);
  for (const k of [
    'hidden',
    'layers',
    'heads',
    'intermediate',
    'convDims',
    'convKernels',
    'convStrides',
    'posConvKernel',
    'posConvGroups',
    'preLayerNorm',
    'featExtractNorm',
    'convBias',
    'featProjLayerNorm',
  ] as const) {
    if (!same(k)) problems.push(`${k} differs (${JSON.stringify(a[k])} vs ${JSON.stringify(b[k])})`);
  }
  if (problems.length) throw new EngineError('incompatible-models', `the two models cannot be aligned and merged: ${problems.join('; ')}`);
}

/**
 * How the pair runs a batch: the front end (conv stack, projection, positional conv) on `frontBatch` segments at a
 * time (its conv activations are the largest tensors: 512 channels at 3.2 kHz for HuBERT), then the transformer in
 * passes of `layersPerPass` layers on the whole batch, each pass tapping its own layers and handing the residual
 * stream (hidden.{k}, a few MiB) to the next. Only one pass's activations are alive at a time; nothing is computed
 * twice, and every layer's weights live in exactly one pass's session.
 */
export interface PassPlan {
  /** Segments per front-end run; 0 = the whole batch. */
  frontBatch: number;
  /** Transformer layers per pass (≥ 1). */
  layersPerPass: number;
}

/**
 * The smallest passes: one segment at a time through the front end, one layer per pass. bench:align (HuBERT-base
 * pair, batches of 8 × 5 s) measured them no slower than the whole batch through the front end and 4 layers per pass
 * (52 against 78 CPU-s per minute of probe on a loaded machine) and 1.2 GiB lower at the peak.
 */
export const DEFAULT_PASS_PLAN: PassPlan = { frontBatch: 1, layersPerPass: 1 };

/**
 * The default passes on a backend. On a GPU the whole batch goes through in one pass: its activations stay in device
 * memory, while every pass boundary would download the hidden states to the host and upload them again. bench:gpu
 * (HuBERT-base pair, H200, webgpu, 8 × 5 s): 4.19 s per minute of probe with the CPU's passes, 2.37 in one pass.
 */
export function defaultPassPlan(backend: Backend, layers: number): PassPlan {
  return backend === 'cpu' ? DEFAULT_PASS_PLAN : { frontBatch: 0, layersPerPass: Math.max(1, layers) };
}

export interface PairSessionOptions extends SessionOptions {
  passes?: Partial<PassPlan>;
}

/** The pass a tap is computed in: -1 for the front end, else the transformer layer it belongs to. */
export function tapLayer(tap: TapName): number {
  const layer = /^layer\.(\d+)\./.exec(tap);
  if (layer) return Number(layer[1]);
  const hidden = /^hidden\.(\d+)$/.exec(tap);
  if (hidden) return Number(hidden[1]) - 1;
  return -1;
}

/** Layer ranges [from, to) of the transformer passes needed for the taps (none when every tap is in the front end). */
export function layerPasses(taps: readonly TapName[], layersPerPass: number): [number, number][] {
  const deepest = Math.max(-1, ...taps.map(tapLayer));
  const per = Math.max(1, Math.floor(layersPerPass));
  const passes: [number, number][] = [];
  for (let from = 0; from <= deepest; from += per) passes.push([from, Math.min(deepest + 1, from + per)]);
  return passes;
}

/** A pass's graph before it has a session. */
interface PassGraph {
  model: Uint8Array;
  /** The weights the pass takes as inputs (CPU: views of the engine's weights, not copies). */
  weights: Record<string, ort.Tensor>;
  taps: TapName[];
  /**
   * Each tap's name in the graph's outputs: a layer pass is built as the first layers of the encoder, fed the weights
   * of its own layers, so that passes over layers of the same shape build the same graph (see PairStatisticsSession.create).
   */
  graphTaps: TapName[];
  /** Whether the pass hands hidden states on (`next_a`, `next_b`). */
  handsOn: boolean;
  /** Each tap's cross-product shape, [dimA, dimB]. */
  crossShapes: [number, number][];
}

interface Pass extends Omit<PassGraph, 'model'> {
  session: Session;
}

const STREAM = { a: 'hidden_a', b: 'hidden_b', nextA: 'next_a', nextB: 'next_b' };

/** What decides a pass's large outputs: its taps' cross products and whether it hands the residual stream on. */
type PassOutputs = Pick<Pass, 'taps' | 'crossShapes' | 'handsOn'>;

/** Which of the residual stream's tensors a pass writes: the front end's, or one of the two the layer passes alternate. */
type Stream = 'front' | 'even' | 'odd';

/**
 * Output bytes handed on between two garbage collections in runEach: below one layer pass's outputs (the HuBERT-base
 * pair's FFN tap alone hands on 50 MiB), so no more than one pass's copies wait for collection. At 64 MiB two passes'
 * copies could wait: 2.55 GiB at 10 minutes of probe against ~2.5 GiB.
 */
const RECLAIM_BYTES = 40 * 2 ** 20;

export class PairStatisticsSession {
  /** Output bytes handed on since the last collection. */
  private unreclaimed = 0;
  /**
   * CPU: tensors onnxruntime writes the large outputs (cross products, hidden states) into, by shape and rank within a
   * pass, shared by the passes (they run one after another; each run returns fresh copies). Otherwise onnxruntime
   * takes fresh pages for each of them every run: the FFN tap's 36 MiB cross product alone is 9k page faults per pass.
   */
  private readonly outputBuffers = new Map<string, ort.Tensor>();
  /** CPU: the residual stream the front end's segment groups are gathered into, kept from batch to batch. */
  private frontHidden: { a: Float32Array; b: Float32Array } | undefined;
  /** The float64 moments the front end's segment groups are combined in, kept from batch to batch (reset per batch). */
  private readonly frontStats = new Map<TapName, PairStats>();
  /** The front end's outputs (its session is rebuilt for each batch on the CPU). */
  private readonly frontOutputs: PassOutputs;

  private constructor(
    /** The front end's pass; undefined between batches where it is rebuilt for each batch (see runEach). */
    private front: Pass | undefined,
    private readonly buildFront: () => Promise<Pass>,
    private readonly layers: Pass[],
    private readonly config: EncoderConfig,
    private readonly plan: PassPlan,
    readonly backend: Backend,
  ) {
    this.frontOutputs = { taps: front!.taps, crossShapes: front!.crossShapes, handsOn: front!.handsOn };
  }

  static async create(
    anchor: Model,
    other: Model,
    taps: readonly TapName[],
    opts: PairSessionOptions = {},
  ): Promise<PairStatisticsSession> {
    checkPairCompatible(anchor.config, other.config);
    const backend = await resolveBackend(opts.device ?? 'auto');
    const plan = { ...defaultPassPlan(backend, anchor.config.layers), ...opts.passes };
    for (const tap of taps) {
      if (tapLayer(tap) >= anchor.config.layers)
        throw new EngineError('runtime-error', `unknown tap ${tap} for a ${anchor.config.layers}-layer encoder`);
    }
    const ranges = layerPasses(taps, plan.layersPerPass);
    const frontTaps = taps.filter((t) => tapLayer(t) < 0);
    const cpu = backend === 'cpu';
    // The front end runs once per segment group, several times per batch, on the same shapes: on the CPU with
    // onnxruntime's arena its conv activations reuse the same pages from run to run instead of faulting in fresh ones
    // (HuBERT-base pair, 8 segments one at a time: 650k → 380k page faults per batch, front end 9.2 → 4.8 s on 2 idle
    // cores).
    const frontOpts = cpu ? { ...opts, memoryArena: true } : opts;
    const buildFront = async () => openPass(passGraph(anchor, other, frontTaps, undefined, ranges.length > 0, cpu, opts), frontOpts);
    const front = await buildFront();
    const layers: Pass[] = [];
    try {
      const graphs = function* () {
        for (const [i, range] of ranges.entries()) {
          const passTaps = taps.filter((t) => tapLayer(t) >= range[0] && tapLayer(t) < range[1]);
          // On the CPU the last pass hands the residual stream on as well (into the tensors kept for it), so that it
          // builds the same graph as the passes before it.
          yield passGraph(anchor, other, passTaps, range, cpu || i < ranges.length - 1, cpu, opts);
        }
      };
      if (cpu) layers.push(...(await openSharedPasses([...graphs()], opts)));
      // Elsewhere the graphs hold their weights: sessions are built one at a time so that only one pass's encoded
      // model is alive besides the weights.
      else for (const graph of graphs()) layers.push(await openPass(graph, opts));
    } catch (e) {
      await Promise.all([...new Set([front, ...layers].map((p) => p.session))].map((s) => s.release()));
      throw e;
    }
    return new PairStatisticsSession(front, buildFront, layers, anchor.config, plan, front.session.backend);
  }

  /** Sessions the pair runs per batch (one front end + the transformer passes). */
  get passCount(): number {
    return 1 + this.layers.length;
  }

  /** onnxruntime sessions the pair holds: the front end's + one per distinct layer-pass graph (see openSharedPasses). */
  get sessionCount(): number {
    return 1 + new Set(this.layers.map((p) => p.session)).size;
  }

  /**
   * Runs one batch of equal-length waveforms ([batch × samples] flat) and returns the moments of every tap pair over
   * the batch, one entry per tap (front-end taps computed a few segments at a time are combined in float64 first, so
   * that per-batch statistics such as align.method paper's standardisation see the batch whatever the plan).
   */
  async run(audio: Float32Array, batch: number): Promise<TapPairMoments[]> {
    const moments: TapPairMoments[] = [];
    await this.runEach(audio, batch, (m) => moments.push(...m), { reclaim: false });
    return moments;
  }

  /**
   * Like run, handing each pass's moments to `sink` as soon as that pass has run. With `reclaim` (the default) the
   * output buffers are garbage-collected once the sink has seen RECLAIM_BYTES of them, so the sink must copy what it
   * keeps (addMoments does): onnxruntime-node copies every output into a fresh ArrayBuffer that V8 would otherwise
   * reclaim only at some later full collection (measured on the HuBERT-base pair: +490 MiB of such buffers per batch
   * of 8 × 5 s).
   */
  async runEach(
    audio: Float32Array,
    batch: number,
    sink: (moments: TapPairMoments[]) => void,
    opts: { reclaim?: boolean } = {},
  ): Promise<void> {
    const reclaim = opts.reclaim !== false;
    const consumed = (out: Record<string, ort.Tensor>) => {
      for (const t of Object.values(out)) this.unreclaimed += (t.data as Float32Array).byteLength;
      if (reclaim && this.unreclaimed >= RECLAIM_BYTES) {
        collectGarbage();
        this.unreclaimed = 0;
      }
    };
    const samples = audio.length / batch;
    if (!Number.isInteger(samples) || samples < receptiveField(this.config)) {
      throw new EngineError('bad-audio', `a probe batch of ${audio.length} samples in ${batch} rows is too short for the encoder`);
    }
    const group = this.plan.frontBatch > 0 ? Math.min(batch, this.plan.frontBatch) : batch;
    const frames = framesFor(this.config, samples);
    const width = this.config.hidden;
    // What outlives a pass is allocated once, before the first batch's activations, and reused (the gathered residual
    // stream, the front end's float64 moments, the output tensors, the residual stream handed between layer passes):
    // allocated afresh it would land in whatever gap of the C heap was free at that moment and split it, and the layer
    // passes' tensors (23 MiB for an FFN or attention-score activation of the HuBERT-base pair) would then no longer
    // fit in the heap's free memory and extend the heap instead (measured: the heap grew in 23 MiB steps during layer
    // passes while 200–400 MiB of it was free). bench:align, HuBERT-base pair, 5 minutes of probe, alternating runs:
    // peak 2415–2534 → 2388–2409 MiB, 24.4 → 22.9 CPU-s per minute of probe.
    let hiddenA: Float32Array | undefined;
    let hiddenB: Float32Array | undefined;
    if (group !== batch && this.layers.length > 0) {
      const size = batch * frames * width;
      if (this.frontHidden?.a.length !== size) this.frontHidden = { a: new Float32Array(size), b: new Float32Array(size) };
      ({ a: hiddenA, b: hiddenB } = this.frontHidden);
    }
    const frontStats = this.frontStats;
    if (group !== batch) {
      this.frontOutputs.taps.forEach((tap, i) => {
        const [dimA, dimB] = this.frontOutputs.crossShapes[i]!;
        const s = frontStats.get(tap);
        if (!s) frontStats.set(tap, createPairStats(dimA, dimB));
        else s.n = 0;
      });
    }
    if (this.backend === 'cpu') {
      this.outputTensors(this.frontOutputs, [group, frames, width], 'front');
      this.layers.forEach((pass, i) => this.outputTensors(pass, [batch, frames, width], i % 2 === 0 ? 'even' : 'odd'));
    }
    const front = (this.front ??= await this.buildFront());
    for (let start = 0; start < batch; start += group) {
      const rows = Math.min(group, batch - start);
      const chunk = audio.subarray(start * samples, (start + rows) * samples);
      const fetches = this.fetches(front, [rows, frames, width], 'front');
      const out = await front.session.run({ ...front.weights, audio: new ort.Tensor('float32', chunk, [rows, samples]) }, fetches);
      const moments = this.collect(front, out, (tap) => rowsOf(chunk.length, rows, tap, this.config));
      if (group === batch) sink(moments);
      else {
        // Every front-end tap's accumulator was set up (or reset) above, before this batch's first run.
        for (const m of moments) addMoments(frontStats.get(m.tap)!, m);
      }
      if (front.handsOn) {
        const [a, b] = handedOn(out, fetches);
        if (group === batch) {
          hiddenA = a;
          hiddenB = b;
        } else {
          hiddenA!.set(a, start * frames * width);
          hiddenB!.set(b, start * frames * width);
        }
      }
      consumed(out);
    }
    // On the CPU the front end's session holds its arena (create) at the front end's peak: released here and rebuilt
    // for the next batch (~0.5 CPU-s), the layer passes run without it (kept, bench:align's peak rose by 220 MiB).
    if (this.backend === 'cpu' && this.layers.length > 0) {
      this.front = undefined;
      await front.session.release();
    }
    if (group !== batch) {
      if (frontStats.size > 0) sink([...frontStats].map(([tap, s]) => batchMoments(tap, s)));
      // The front end's last outputs and these copies are collected before the layer passes need the heap's room.
      if (reclaim && this.layers.length > 0) {
        collectGarbage();
        this.unreclaimed = 0;
      }
    }
    for (const [i, pass] of this.layers.entries()) {
      const dims = [batch, frames, width];
      // The residual stream goes into one of two tensors kept for it, alternating: a pass reads the one the pass before
      // it wrote (onnxruntime-node's copy of it would live through the next pass as a gap in the heap).
      const fetches = this.fetches(pass, dims, i % 2 === 0 ? 'even' : 'odd');
      const out = await pass.session.run(
        {
          ...pass.weights,
          [STREAM.a]: new ort.Tensor('float32', hiddenA!, dims),
          [STREAM.b]: new ort.Tensor('float32', hiddenB!, dims),
        },
        fetches,
      );
      if (pass.handsOn) [hiddenA, hiddenB] = handedOn(out, fetches);
      sink(this.collect(pass, out, () => batch * frames));
      consumed(out);
    }
  }

  /** A pass's outputs with preallocated tensors for the large ones (CPU; elsewhere onnxruntime allocates them). */
  private fetches(pass: Pass, hiddenDims: number[], stream: Stream): Record<string, ort.Tensor | null> | undefined {
    if (this.backend !== 'cpu') return undefined;
    const tensors = this.outputTensors(pass, hiddenDims, stream);
    const out: Record<string, ort.Tensor | null> = {};
    for (const name of pass.session.outputNames) out[name] = null;
    pass.graphTaps.forEach((tap, i) => (out[`${tap}/cross`] = tensors.cross[i]!));
    if (tensors.next) [out[STREAM.nextA], out[STREAM.nextB]] = tensors.next;
    return out;
  }

  /**
   * The tensors of a pass's large outputs, allocated on first use. runEach asks for every pass's before its first
   * batch runs, so that they lie together instead of between that batch's activations.
   */
  private outputTensors(pass: PassOutputs, hiddenDims: number[], stream: Stream): { cross: ort.Tensor[]; next?: [ort.Tensor, ort.Tensor] } {
    const rank = new Map<string, number>();
    const buffer = (dims: number[], slot = '') => {
      const shape = dims.join('x');
      const k = rank.get(shape) ?? 0;
      rank.set(shape, k + 1);
      const key = `${shape}#${k}${slot}`;
      let t = this.outputBuffers.get(key);
      if (!t) this.outputBuffers.set(key, (t = new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims)));
      return t;
    };
    const cross = pass.crossShapes.map((dims) => buffer(dims));
    return pass.handsOn ? { cross, next: [buffer(hiddenDims, stream), buffer(hiddenDims, stream)] } : { cross };
  }

  private collect(pass: Pass, out: Record<string, ort.Tensor>, rowsFor: (tap: TapName) => number): TapPairMoments[] {
    return pass.taps.map((tap, i) => {
      const get = (k: string) => out[`${pass.graphTaps[i]}/${k}`]!.data as Float32Array;
      const meanA = get('mean_a');
      const meanB = get('mean_b');
      return {
        tap,
        n: rowsFor(tap),
        dimA: meanA.length,
        dimB: meanB.length,
        meanA,
        meanB,
        m2A: get('m2_a'),
        m2B: get('m2_b'),
        cross: get('cross'),
      };
    });
  }

  async release(): Promise<void> {
    this.outputBuffers.clear();
    this.frontHidden = undefined;
    this.frontStats.clear();
    const front = this.front;
    this.front = undefined;
    await Promise.all([...new Set([...(front ? [front] : []), ...this.layers].map((p) => p.session))].map((s) => s.release()));
  }
}

/**
 * One pass's graph: the front end (range undefined) or transformer layers [from, to) of both models, with its taps'
 * moments. A layer pass is built as layers [0, to − from) fed the weights of layers [from, to): passes over as many
 * layers with the same taps then build the same graph, which on the CPU (every weight of a layer pass an input) one
 * session can run.
 */
function passGraph(
  anchor: Model,
  other: Model,
  taps: readonly TapName[],
  range: [number, number] | undefined,
  handsOn: boolean,
  cpu: boolean,
  opts: SessionOptions,
): PassGraph {
  // On the CPU the Linear weights (nearly all of them) are fed at each run instead of copied into the session, which
  // would hold them (packed) besides the engine's own copy: 1.1 GiB more for the HuBERT-base pair's 720 MiB. The layer
  // passes are fed every weight (see openSharedPasses); the front end keeps its conv kernels, which onnxruntime
  // re-lays out once for its convs.
  const b = new GraphBuilder({ precision: opts.precision, feedWeights: cpu ? (range ? 'all' : 'linear') : undefined });
  const shift = range?.[0] ?? 0;
  const layers = range ? { from: 0, to: range[1] - range[0] } : { to: 0 };
  // On the CPU the conv blocks as 2-D convs with block 0's GroupNorm folded into its kernel (model/conv-stack-cpu.ts):
  // bench:align measured onnxruntime's InstanceNormalization alone at 23 % of the front end's time.
  const enc = (m: Model, input: string, prefix: string) =>
    addEncoder(b, m.config, layerWeightsFrom(m.weights, shift), input, prefix, layers, { cpuConvStack: cpu });
  let ta: TapValues;
  let tb: TapValues;
  if (range) {
    ta = enc(anchor, b.input(STREAM.a, ['batch', 'frames', anchor.config.hidden]), 'a/');
    tb = enc(other, b.input(STREAM.b, ['batch', 'frames', other.config.hidden]), 'b/');
  } else {
    const audio = b.input('audio', ['batch', 'samples']);
    ta = enc(anchor, audio, 'a/');
    tb = enc(other, audio, 'b/');
  }
  const graphTaps = taps.map((tap) => shiftTap(tap, -shift));
  taps.forEach((tap, i) => {
    const x = ta.get(graphTaps[i]!);
    const y = tb.get(graphTaps[i]!);
    if (!x || !y) throw new EngineError('runtime-error', `unknown tap ${tap}`);
    addTapMoments(b, graphTaps[i]!, tapWidth(anchor.config, tap), b.float32(x), b.float32(y));
  });
  if (handsOn) {
    const last = range ? range[1] - range[0] : 0;
    b.output(ta.get(tapName.hidden(last))!, STREAM.nextA);
    b.output(tb.get(tapName.hidden(last))!, STREAM.nextB);
  }
  const name = range ? `merge_studio_pair_layers_${range[1] - range[0]}` : 'merge_studio_pair_front';
  const weights: Record<string, ort.Tensor> = {};
  for (const [input, t] of b.weightFeeds) weights[input] = new ort.Tensor('float32', t.data, [...t.shape]);
  const crossShapes = taps.map((t): [number, number] => [tapWidth(anchor.config, t), tapWidth(other.config, t)]);
  return { model: b.encode(name), weights, taps: [...taps], graphTaps, handsOn, crossShapes };
}

async function openPass(graph: PassGraph, opts: SessionOptions): Promise<Pass> {
  const { model, ...pass } = graph;
  return { ...pass, session: await createSession(model, opts) };
}

/**
 * The CPU's layer passes, one session per distinct graph: with the default one layer per pass and the same taps in
 * every layer, one session runs every layer pass. With a session per layer the C heap fragmented (likely because
 * each session allocated its own state at its first run, in the middle of the first batch's activations): a pass's
 * largest tensors (23 MiB for the HuBERT-base pair at 8 × 5 s) found no free piece large enough and extended the heap,
 * in some runs and not in others (bench:align, 40 minutes of probe: peaks of 2461–2599 MiB over three runs; one
 * session: 2395–2440 MiB, RSS flat from the second minute on). The sessions run without onnxruntime's arena, which
 * holds a pass's peak besides the heap's (and grew over 40 minutes: 2400 → 2453 MiB), and without the memory
 * pattern, whose one block per run (over glibc's 32 MiB mmap ceiling) came as fresh pages at every run (23.5 → 15.8
 * CPU-s per batch of 8 × 5 s).
 */
async function openSharedPasses(graphs: readonly PassGraph[], opts: SessionOptions): Promise<Pass[]> {
  const sessions = new Map<string, Session>();
  const passes: Pass[] = [];
  try {
    for (const { model, ...pass } of graphs) {
      const key = createHash('sha256').update(model).digest('hex');
      let session = sessions.get(key);
      if (!session) sessions.set(key, (session = await createSession(model, { ...opts, memoryPattern: false })));
      passes.push({ ...pass, session });
    }
  } catch (e) {
    await Promise.all([...sessions.values()].map((s) => s.release()));
    throw e;
  }
  return passes;
}

/** The weights of layers from `from` on, named as layers from 0 on (other weights as they are). */
function layerWeightsFrom(weights: WeightMap, from: number): WeightMap {
  if (from === 0) return weights;
  const out: WeightMap = new Map();
  for (const [name, t] of weights) {
    const layer = /^encoder\.layers\.(\d+)\.(.+)$/.exec(name);
    if (!layer) out.set(name, t);
    else if (Number(layer[1]) >= from) out.set(`encoder.layers.${Number(layer[1]) - from}.${layer[2]}`, t);
  }
  return out;
}

/** A tap of layer l (or hidden state k) as the same tap `by` layers deeper. */
function shiftTap(tap: TapName, by: number): TapName {
  if (by === 0) return tap;
  const layer = /^layer\.(\d+)\.(.+)$/.exec(tap);
  if (layer) return `layer.${Number(layer[1]) + by}.${layer[2]}` as TapName;
  const hidden = /^hidden\.(\d+)$/.exec(tap);
  if (hidden) return tapName.hidden(Number(hidden[1]) + by);
  return tap;
}

/**
 * Centred moments of one tap pair as graph outputs. Channels-first conv taps ([B, C, T]) are reduced in place (means
 * over batch and time, cross = Σ_b A_b·B_bᵀ) rather than transposed to rows: the first conv block's output is the
 * largest tensor of the model and a transposed copy of it would double the front end's peak.
 */
function addTapMoments(b: GraphBuilder, tap: TapName, width: number, x: string, y: string): void {
  const channelsFirst = isChannelsFirst(tap);
  const axes = channelsFirst ? [0, 2] : [0];
  const moments = (v: string, side: 'a' | 'b') => {
    const r = channelsFirst ? v : b.op('Reshape', [v, b.int64s([-1, width])], {}, `${side}/${tap}/rows`);
    const mean = b.op('ReduceMean', [r], { axes, keepdims: 1 }, `${side}/${tap}/mean_kd`);
    const centred = b.op('Sub', [r, mean], {}, `${side}/${tap}/centred`);
    b.output(b.op('Reshape', [mean, b.int64s([-1])]), `${tap}/mean_${side}`);
    // Σ c² as ReduceSum of a product: onnxruntime's ReduceSumSquare over the leading axis takes its slow general path
    // (44 ms against 2.4 ms for a 1992 × 3072 FFN tap on 2 cores).
    b.output(b.op('ReduceSum', [b.op('Mul', [centred, centred]), b.int64s(axes)], { keepdims: 0 }), `${tap}/m2_${side}`);
    return centred;
  };
  const ca = moments(x, 'a');
  const cb = moments(y, 'b');
  if (channelsFirst) {
    const perBatch = b.op('MatMul', [ca, b.op('Transpose', [cb], { perm: [0, 2, 1] })]);
    b.output(b.op('ReduceSum', [perBatch, b.int64s([0])], { keepdims: 0 }), `${tap}/cross`);
  } else {
    b.output(b.op('MatMul', [b.op('Transpose', [ca], { perm: [1, 0] }), cb]), `${tap}/cross`);
  }
}

/**
 * The residual stream a pass handed on: the tensors onnxruntime wrote it into where the pass had them (CPU), else
 * onnxruntime-node's copies.
 */
function handedOn(out: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor | null> | undefined): [Float32Array, Float32Array] {
  const get = (k: string) => (fetches?.[k] ?? out[k]!).data as Float32Array;
  return [get(STREAM.nextA), get(STREAM.nextB)];
}

/** A batch's combined float64 moments of one tap, as the float32 moments a pass hands on. */
function batchMoments(tap: TapName, s: PairStats): TapPairMoments {
  return {
    tap,
    n: s.n,
    dimA: s.dimA,
    dimB: s.dimB,
    meanA: Float32Array.from(s.meanA),
    meanB: Float32Array.from(s.meanB),
    m2A: Float32Array.from(s.m2A),
    m2B: Float32Array.from(s.m2B),
    cross: Float32Array.from(s.cross),
  };
}

/** Rows per batch for a tap: batch × frames at that tap's depth in the conv stack. */
function rowsOf(totalSamples: number, batch: number, tap: TapName, cfg: EncoderConfig): number {
  const conv = /^conv\.(\d+)$/.exec(tap);
  const depth = conv ? Number(conv[1]) + 1 : cfg.convKernels.length;
  let n = totalSamples / batch;
  for (let i = 0; i < depth; i++) n = Math.floor((n - cfg.convKernels[i]!) / cfg.convStrides[i]!) + 1;
  return n * batch;
}

let gc: (() => void) | undefined;

/**
 * A full garbage collection: V8's `gc`, exposed on first use when the process was not started with --expose-gc. Where
 * the host refuses that flag, V8 collects on its own schedule (more memory, same results).
 */
function collectGarbage(): void {
  if (!gc) {
    gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) {
      try {
        setFlagsFromString('--expose-gc');
        gc = runInNewContext('gc') as () => void;
      } catch {
        gc = () => {};
      }
    }
  }
  gc();
}
