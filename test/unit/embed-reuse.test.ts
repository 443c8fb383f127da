/**
 * Evaluation embeddings on the CPU reuse buffers from call to call (onnxruntime's arena, the front end's output tensor,
 * the input scratch): a session's results must not depend on what it embedded before, nor change after they are returned.
 */
import { describe, expect, it } from 'vitest';
import { EmbeddingSession } from '../../server/src/engine/model/embed';
import { FrontEndCache } from '../../server/src/engine/model/front-end-cache';
import { randomWeights } from '../../server/src/engine/model/random';
import { tinyEmbeddingConfig } from '../helpers/tiny-model';
import { mulberry32 } from '../../server/src/engine/random';

const config = tinyEmbeddingConfig();
const weights = randomWeights(config, 3);

function clip(n: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => rand() - 0.5);
}

async function embedFresh(clips: Float32Array[]): Promise<Float32Array> {
  const session = await EmbeddingSession.create({ config, weights }, { device: 'cpu' });
  try {
    return (await session.embed(clips)).data;
  } finally {
    await session.release();
  }
}

describe('EmbeddingSession call after call', () => {
  it('embeds each call bit-identically to a fresh session, whatever came before, and leaves earlier results intact', async () => {
    // Same shape twice (the front end's output tensor reused), a longer length (buffers grow), mixed lengths in one
    // call, then a smaller batch of the first length (a view of the larger scratch).
    const calls = [
      [clip(400, 1), clip(400, 2), clip(400, 3)],
      [clip(400, 4), clip(400, 5), clip(400, 6)],
      [clip(720, 7), clip(720, 8)],
      [clip(400, 9), clip(720, 10), clip(560, 11)],
      [clip(400, 12)],
    ];
    const session = await EmbeddingSession.create({ config, weights }, { device: 'cpu' }, new FrontEndCache());
    try {
      const results: Float32Array[] = [];
      const copies: Float32Array[] = [];
      for (const clips of calls) {
        const data = (await session.embed(clips)).data;
        results.push(data);
        copies.push(Float32Array.from(data));
      }
      for (const [i, clips] of calls.entries()) {
        expect(results[i]).toEqual(copies[i]); // not overwritten by later calls
        expect(results[i]).toEqual(await embedFresh(clips));
      }
      // The first call again, its hidden_states[0] now from the cache: rows stored then were not overwritten since.
      expect((await session.embed(calls[0]!)).data).toEqual(copies[0]);
    } finally {
      await session.release();
    }
  });
});
