/**
 * Evaluation embeddings do not depend on onnxruntime's thread count: its ReduceMean sums in a thread-dependent
 * order, so model/embed.ts pools in a one-thread graph of its own (the layers' outputs are thread-independent).
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEvalTasks } from '../../server/src/engine/eval/evaluate';
import { loadAudio } from '../../server/src/engine/io/audio';
import { EmbeddingSession } from '../../server/src/engine/model/embed';
import { loadEncoderModel } from '../../server/src/engine/model/encoder';

const EXAMPLES = path.join(__dirname, '..', '..', 'examples');

describe('EmbeddingSession threads', () => {
  it('gives the same pooled features to the last bit with 1, 2, 4 and 8 onnxruntime threads', async () => {
    const model = await loadEncoderModel(path.join(EXAMPLES, 'models', 'speech-encoder'));
    const [task] = await loadEvalTasks([{ name: 'keywords', data: path.join(EXAMPLES, 'eval', 'keywords') }], (f) =>
      loadAudio(f, model.config.sampleRate),
    );
    const clips = [...task!.train.audio].sort((a, b) => a.length - b.length).slice(0, 96);
    const embedAll = async (threads: number) => {
      const session = await EmbeddingSession.create(model, { device: 'cpu', threads });
      try {
        const out: number[] = [];
        for (let i = 0; i < clips.length; i += 16) out.push(...(await session.embed(clips.slice(i, i + 16))).data);
        return Float32Array.from(out);
      } finally {
        await session.release();
      }
    };
    const one = await embedAll(1);
    for (const threads of [2, 4, 8]) expect(await embedAll(threads), `${threads} threads`).toEqual(one);
  });
});
