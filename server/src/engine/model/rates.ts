/**
 * Whether two encoders run at the same rates, said once for the recipe check (recipe/semantic.ts) and the run
 * (model/pair-graph.ts). Alignment pairs frame t of one model with frame t of the other, so both the audio sample
 * rate and the frame rate (sample rate / the conv stack's total stride) must match. A different frame rate comes
 * from a different conv stack, so every conv tensor shape that follows from it is the same root cause.
 */
import type { EncoderConfig } from '../io/hfconfig';

type Rates = Pick<EncoderConfig, 'sampleRate' | 'frameRate' | 'convStrides'>;

const fmtRate = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
const hop = (c: Rates) => c.convStrides.reduce((p, s) => p * s, 1);

/** The mismatch in words, naming the models as the caller does; undefined when the rates match. */
export function rateMismatch(anchor: Rates, other: Rates, names = { anchor: 'models.anchor', other: 'models.other' }): string | undefined {
  if (anchor.sampleRate !== other.sampleRate) {
    return `${names.other} takes ${other.sampleRate} Hz audio, ${names.anchor} ${anchor.sampleRate} Hz; both must match (MERT-v1 runs at 24 kHz, HuBERT, wav2vec2 and MERT-v0 at 16 kHz)`;
  }
  if (anchor.frameRate !== other.frameRate) {
    const frames = (c: Rates) =>
      `${fmtRate(c.frameRate)} frames/s (conv strides [${c.convStrides.join(', ')}]: one frame per ${hop(c)} samples)`;
    return `${names.other} produces ${frames(other)}, ${names.anchor} ${frames(anchor)}; alignment pairs frames one to one, so the frame rates must match`;
  }
  return undefined;
}
