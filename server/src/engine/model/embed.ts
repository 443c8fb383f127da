/**
 * Clip embeddings for evaluation: every hidden state mean-pooled over frames inside the graph, so only
 * [clips, layers + 1, hidden] crosses into JS. Clips of equal length share a batch; others run apart, because
 * padding would change a group-norm front end's output (HuBERT-base has no attention mask). A clip longer than one
 * forward window (30 s) is pooled over windows as `forward` computes them (long-audio.ts), in bounded memory. On the
 * CPU the conv blocks run as model/conv-stack-cpu.ts lays them out (the front end is most of this graph's work).
 */
import * as ort from 'onnxruntime-node';
import { EngineError } from '../errors';
import { addEncoder } from './encoder-graph';
import { framesFor, receptiveField, type EncoderModel } from './encoder';
import { planWindows, pooledLong } from './long-audio';
import { GraphBuilder } from './graph-builder';
import { createSession, resolveBackend, type Session, type SessionOptions } from './runtime';
import { tapName } from './taps';
import type { Tensor } from './tensor';

export class EmbeddingSession {
  private constructor(
    private readonly model: Pick<EncoderModel, 'config' | 'weights'>,
    private readonly opts: SessionOptions,
    private readonly session: Session,
    private readonly layers: number,
    private readonly hidden: number,
    private readonly minSamples: number,
  ) {}

  static async create(model: Pick<EncoderModel, 'config' | 'weights'>, opts: SessionOptions = {}): Promise<EmbeddingSession> {
    const cfg = model.config;
    const b = new GraphBuilder();
    const audio = b.input('audio', ['batch', 'samples']);
    const backend = await resolveBackend(opts.device ?? 'auto');
    const taps = addEncoder(b, cfg, model.weights, audio, '', {}, { cpuConvStack: backend === 'cpu' });
    const pooled = Array.from({ length: cfg.layers + 1 }, (_, k) =>
      b.op('ReduceMean', [taps.get(tapName.hidden(k))!], { axes: [1], keepdims: 1 }, `pool${k}`),
    );
    b.output(b.op('Concat', pooled, { axis: 1 }), 'pooled'); // [batch, layers + 1, hidden]
    return new EmbeddingSession(
      model,
      opts,
      await createSession(b.encode('merge_studio_embed'), opts),
      cfg.layers,
      cfg.hidden,
      receptiveField(cfg),
    );
  }

  /** [clips, layers + 1, hidden] mean-pooled hidden states, rows in the order of `clips`. */
  async embed(clips: readonly Float32Array[]): Promise<Tensor> {
    const row = (this.layers + 1) * this.hidden;
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
    for (const [length, indices] of byLength) {
      const batch = new Float32Array(indices.length * length);
      indices.forEach((clip, r) => batch.set(clips[clip]!, r * length));
      const result = await this.session.run({ audio: new ort.Tensor('float32', batch, [indices.length, length]) });
      const pooled = result.pooled!.data as Float32Array;
      indices.forEach((clip, r) => out.set(pooled.subarray(r * row, (r + 1) * row), clip * row));
    }
    return { shape: [clips.length, this.layers + 1, this.hidden], data: out };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
