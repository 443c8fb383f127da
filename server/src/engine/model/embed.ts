/**
 * Clip embeddings for evaluation: every hidden state mean-pooled over frames, [clips, layers + 1, hidden]. Three
 * graphs: the front end (audio → hidden_states[0]), so that systems of a run with an identical front end share its
 * output (model/front-end-cache.ts); the layers (→ hidden_states[1..L]); and the pooling, with one thread (see
 * `create`). Clips of equal length share a batch; others run apart, because padding would change a group-norm front
 * end's output (HuBERT-base has no attention mask). A clip longer than one forward window (30 s) is pooled over
 * windows as `forward` computes them (long-audio.ts), in bounded memory. On the CPU the conv blocks run as
 * model/conv-stack-cpu.ts lays them out (the front end is most of this graph's work).
 */
import * as ort from 'onnxruntime-node';
import { EngineError } from '../errors';
import { addEncoder } from './encoder-graph';
import { framesFor, receptiveField, type EncoderModel } from './encoder';
import { planWindows, pooledLong } from './long-audio';
import { FrontEndCache, frontEndFingerprint } from './front-end-cache';
import { GraphBuilder } from './graph-builder';
import { createSession, resolveBackend, type Session, type SessionOptions } from './runtime';
import { tapName } from './taps';
import type { Tensor } from './tensor';

export class EmbeddingSession {
  private constructor(
    private readonly model: Pick<EncoderModel, 'config' | 'weights'>,
    private readonly opts: SessionOptions,
    /** audio [batch, samples] → hidden_states[0] [batch, frames, hidden] */
    private readonly front: Session,
    /** hidden_states[0] → hidden_states[1..L] */
    private readonly layers: Session,
    /** hidden_states[0..L] → every hidden state mean-pooled, [batch, layers + 1, hidden]; one onnxruntime thread */
    private readonly pool: Session,
    private readonly frontEnds: FrontEndCache,
    private readonly fingerprint: string,
    private readonly minSamples: number,
    private readonly cpu: boolean,
  ) {}

  /**
   * CPU: the last call's hidden_states[0] output tensor, which onnxruntime writes the next call's into when its shape is
   * the same (clips come in length order, so consecutive calls mostly are), instead of onto fresh pages.
   */
  private frontOutput: ort.Tensor | undefined;
  /** CPU: grow-only scratch for the input batches (audio, hidden_states[0]); each run copies its inputs. */
  private scratch = new Float32Array(0);
  /** Clips whose hidden_states[0] this session computed (the rest came from the front-end cache). */
  frontEndClips = 0;

  /**
   * `frontEnds`: hidden_states[0] shared with the other sessions of a run (model/front-end-cache.ts); a session
   * without one keeps none beyond a call.
   */
  static async create(
    model: Pick<EncoderModel, 'config' | 'weights'>,
    opts: SessionOptions = {},
    frontEnds = new FrontEndCache(0),
  ): Promise<EmbeddingSession> {
    const cfg = model.config;
    const backend = await resolveBackend(opts.device ?? 'auto');
    const f = new GraphBuilder({ precision: opts.precision });
    const frontTaps = addEncoder(
      f,
      cfg,
      model.weights,
      f.input('audio', ['batch', 'samples']),
      '',
      { to: 0 },
      { cpuConvStack: backend === 'cpu' },
    );
    f.output(frontTaps.get(tapName.hidden(0))!, 'hidden0');
    const b = new GraphBuilder({ precision: opts.precision });
    const taps = addEncoder(b, cfg, model.weights, b.input('hidden0', ['batch', 'frames', cfg.hidden]), '', { from: 0 });
    for (let k = 1; k <= cfg.layers; k++) b.output(taps.get(tapName.hidden(k))!, `hidden${k}`);
    // Mean pooling in a graph of its own, run with one thread: onnxruntime's ReduceMean sums in an order that depends on
    // its thread count (from 4 threads on, pooled features moved by up to 7e-7 on the example; 8 and 16 threads had
    // moved some validation scores), while the layers' outputs do not. So the features are the same whatever
    // runtime.threads, and equal to what one graph with one or two threads gave.
    const p = new GraphBuilder();
    const pooled = Array.from({ length: cfg.layers + 1 }, (_, k) =>
      p.op('ReduceMean', [p.input(`hidden${k}`, ['batch', 'frames', cfg.hidden])], { axes: [1], keepdims: 1 }, `pool${k}`),
    );
    p.output(p.op('Concat', pooled, { axis: 1 }), 'pooled'); // [batch, layers + 1, hidden]
    // Threads that sleep between ops instead of spinning: half the CPU time on a busy 2-core machine, and no slower.
    // On the CPU with onnxruntime's arena: both graphs run call after call on few shapes, and their activations then
    // reuse the arena's pages instead of faulting in fresh ones each run (~25 µs per 4 KiB page on these VMs). Measured
    // on the example (npm start, 8 systems): 135k → 98k page faults, peak RSS 489 → 350 MB, scores bit-identical; a
    // first pass over the clips (bench:eval forward, page faults 30-117k → 4-14k) gains most, later passes little.
    const cpu = backend === 'cpu';
    const sessionOpts = { ...opts, spinning: false, memoryArena: cpu };
    const front = await createSession(f.encode('merge_studio_embed_front'), sessionOpts);
    const layers = await createSession(b.encode('merge_studio_embed_layers'), sessionOpts).catch(async (e: unknown) => {
      await front.release();
      throw e;
    });
    const pool = await createSession(p.encode('merge_studio_embed_pool'), { device: 'cpu', threads: 1, spinning: false }).catch(
      async (e: unknown) => {
        await Promise.all([front.release(), layers.release()]);
        throw e;
      },
    );
    return new EmbeddingSession(
      model,
      opts,
      front,
      layers,
      pool,
      frontEnds,
      frontEndFingerprint(cfg, model.weights),
      receptiveField(cfg),
      cpu,
    );
  }

  /** [clips, layers + 1, hidden] mean-pooled hidden states, rows in the order of `clips`. */
  async embed(clips: readonly Float32Array[]): Promise<Tensor> {
    const row = (this.layerCount + 1) * this.hidden;
    const out = new Float32Array(clips.length * row);
    const byLength = new Map<number, number[]>();
    for (const [i, c] of clips.entries()) {
      if (c.length < this.minSamples)
        throw new EngineError(
          'bad-audio',
          `a clip of ${c.length} samples is shorter than the encoder's ${this.minSamples}-sample receptive field`,
        );
      // Longer than one forward window: attention over the whole clip would need memory quadratic in its length.
      if (planWindows(this.model.config, framesFor(this.model.config, c.length)).length > 1)
        out.set(await pooledLong(this.model, c, this.opts), i * row);
      else byLength.set(c.length, [...(byLength.get(c.length) ?? []), i]);
    }
    const cached = this.frontEnds.rowsOf(this.fingerprint);
    for (const [length, indices] of byLength) {
      // hidden_states[0] of each clip: kept from an identical front end, else computed for the clips that lack it.
      const hidden0 = indices.map((clip) => cached.get(clips[clip]!));
      const missing = [...indices.keys()].filter((r) => !hidden0[r]);
      if (missing.length > 0) {
        this.frontEndClips += missing.length;
        const batch = this.inputBatch(missing.length * length);
        missing.forEach((r, m) => batch.set(clips[indices[r]!]!, m * length));
        const dims = [missing.length, framesFor(this.model.config, length), this.hidden];
        const h = (await this.front.run({ audio: new ort.Tensor('float32', batch, [missing.length, length]) }, this.frontFetches(dims)))
          .hidden0!;
        const size = h.dims[1]! * h.dims[2]!;
        const data = h.data as Float32Array;
        missing.forEach((r, m) => {
          hidden0[r] = data.slice(m * size, (m + 1) * size);
          this.frontEnds.store(this.fingerprint, clips[indices[r]!]!, hidden0[r]);
        });
      }
      const frames = hidden0[0]!.length / this.hidden;
      const batch = this.inputBatch(indices.length * frames * this.hidden);
      hidden0.forEach((h, r) => batch.set(h!, r * h!.length));
      const tensor0 = new ort.Tensor('float32', batch, [indices.length, frames, this.hidden]);
      const states = await this.layers.run({ hidden0: tensor0 });
      const pooled = (await this.pool.run({ ...states, hidden0: tensor0 })).pooled!.data as Float32Array;
      indices.forEach((clip, r) => out.set(pooled.subarray(r * row, (r + 1) * row), clip * row));
    }
    return { shape: [clips.length, this.layerCount + 1, this.hidden], data: out };
  }

  /** A batch of `size` floats to fill: on the CPU a view of the scratch buffer (grown as needed), else a new array. */
  private inputBatch(size: number): Float32Array {
    if (!this.cpu) return new Float32Array(size);
    if (this.scratch.length < size) this.scratch = new Float32Array(size);
    return this.scratch.subarray(0, size);
  }

  /** The front end's output, written into the last call's tensor where the shape is the same (CPU). */
  private frontFetches(dims: number[]): Record<string, ort.Tensor> | undefined {
    if (!this.cpu) return undefined;
    const last = this.frontOutput;
    if (!last || last.dims.length !== dims.length || last.dims.some((d, i) => d !== dims[i]))
      this.frontOutput = new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims);
    return { hidden0: this.frontOutput! };
  }

  private get layerCount(): number {
    return this.model.config.layers;
  }

  private get hidden(): number {
    return this.model.config.hidden;
  }

  async release(): Promise<void> {
    this.frontOutput = undefined;
    this.scratch = new Float32Array(0);
    await this.front.release();
    await this.layers.release();
    await this.pool.release();
  }
}
