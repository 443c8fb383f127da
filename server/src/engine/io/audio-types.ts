/** Shared shapes and limits of the audio decoders (kept apart so each codec module stays small). */
import { EngineError } from '../errors';

/** Decoded audio, already mixed down to mono. */
export interface PcmAudio {
  samples: Float32Array;
  sampleRate: number;
  /** Channels in the file (before the mixdown). */
  channels: number;
}

export const MAX_CHANNELS = 64;
/** Generous for any real recording (DXD is 352.8 kHz); a larger value means a corrupt header. */
export const MAX_SAMPLE_RATE = 768_000;
/**
 * Longest file decoded in one piece: 2^28 frames is a 1 GiB mono Float32Array (~93 min at 48 kHz, ~4.6 h at
 * 16 kHz). Probing uses minutes per source, so a longer file is better split than held in memory whole.
 */
export const MAX_DECODED_FRAMES = 2 ** 28;

/**
 * Longest audio decoded from one file: 30 minutes. It bounds what one file can make a decoder, the resampler and the
 * encoder hold (30 min at 48 kHz is a 330 MB mono buffer) and how long they take; probing and evaluation use seconds
 * to minutes per clip, and `forward` windows long audio anyway. Longer recordings are better split.
 */
export const MAX_AUDIO_SECONDS = 30 * 60;

/** The refusal for audio past MAX_AUDIO_SECONDS (or MAX_DECODED_FRAMES), with how long it is when known. */
export function tooLong(file: string, frames: number, sampleRate: number): EngineError {
  const minutes = sampleRate > 0 ? ` (${(frames / sampleRate / 60).toFixed(1)} min)` : '';
  return new EngineError(
    'unsupported-audio',
    `${file}: ${frames} sample frames${minutes} is longer than the ${MAX_AUDIO_SECONDS / 60}-minute limit per audio file; split it into shorter files (e.g. ffmpeg -i in.wav -f segment -segment_time ${MAX_AUDIO_SECONDS} out%03d.wav)`,
    file,
  );
}

/** Whether `frames` at `sampleRate` is past the per-file limits. */
export function isTooLong(frames: number, sampleRate: number): boolean {
  return frames > MAX_DECODED_FRAMES || (sampleRate > 0 && frames > MAX_AUDIO_SECONDS * sampleRate);
}

/** Averages planar channels into one; a single channel is returned as is (no copy). */
export function mixPlanar(channels: readonly Float32Array[], frames: number): Float32Array {
  if (channels.length === 1) return channels[0]!.length === frames ? channels[0]! : channels[0]!.slice(0, frames);
  const out = new Float32Array(frames);
  const c = channels.length;
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    for (let ch = 0; ch < c; ch++) sum += channels[ch]![i]!;
    out[i] = sum / c;
  }
  return out;
}
