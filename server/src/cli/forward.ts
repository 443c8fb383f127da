/** `merge-studio forward`: every hidden state of one model on one audio file, as JSON (transformers' semantics). */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { assertAudioFile, loadAudio, MAX_AUDIO_SECONDS } from '../engine/io/audio';
import { describeConfig } from '../engine/io/hfconfig';
import { loadEncoderModel, type ForwardResult } from '../engine/model/encoder';
import { FORWARD_CONTEXT_SECONDS, FORWARD_WINDOW_SECONDS, forwardLong } from '../engine/model/long-audio';
import { parseDevice, parseThreads, type Output } from './common';

export function registerForwardCommand(program: Command, out: Output): void {
  program
    .command('forward')
    .description('run one model on one audio file and write every hidden state (transformers output_hidden_states)')
    .requiredOption('--model <dir>', 'Hugging Face model folder (config.json + model.safetensors)')
    .requiredOption(
      '--audio <file>',
      `audio file (wav, flac, mp3; at most ${MAX_AUDIO_SECONDS / 60} minutes); mixed to mono and resampled to the model rate`,
    )
    .option('--out <file.json>', 'write {hidden_states, last_hidden_state, frame_rate, ...} here')
    .option('--device <device>', 'auto | cpu | webgpu | cuda', 'cpu')
    .option('--threads <n>', 'CPU threads for onnxruntime')
    .option('--summary', 'print a short summary of the model and its outputs')
    .addHelpText(
      'after',
      `\nAudio longer than ${FORWARD_WINDOW_SECONDS} s runs in ${FORWARD_WINDOW_SECONDS}-s windows (${FORWARD_CONTEXT_SECONDS} s of context on each side, centres kept), so memory stays bounded:\n` +
        "conv features and hidden_states[0] equal the whole-clip model's; attention in later layers sees only its window.\n" +
        `One audio file may hold at most ${MAX_AUDIO_SECONDS / 60} minutes; split longer recordings.`,
    )
    .action(async (opts: { model: string; audio: string; out?: string; device: string; threads?: string; summary?: boolean }) => {
      const device = parseDevice(opts.device);
      const threads = parseThreads(opts.threads);
      const started = performance.now();
      await assertAudioFile(opts.audio); // before loading the model: /dev/zero or a folder is refused at once
      const model = await loadEncoderModel(opts.model);
      const samples = await loadAudio(opts.audio, model.config.sampleRate);
      const result = await forwardLong(model, samples, { device, threads });
      const seconds = (performance.now() - started) / 1000;
      if (opts.out) {
        await writeJsonAtomic(opts.out, toJson(result));
        out.info(`wrote ${result.hiddenStates.length} hidden states × ${result.frames} frames to ${opts.out}`);
      }
      if (opts.summary || !opts.out) {
        out.info(`model   ${opts.model}: ${describeConfig(model.config)}`);
        const windows = result.windows > 1 ? ` in ${result.windows} windows of ${FORWARD_WINDOW_SECONDS} s` : '';
        out.info(
          `audio   ${opts.audio}: ${(samples.length / model.config.sampleRate).toFixed(2)} s at ${model.config.sampleRate} Hz → ${result.frames} frames${windows}`,
        );
        out.info(`backend ${result.backend}, ${seconds.toFixed(2)} s including load`);
        out.info('layer   mean        std         min         max');
        result.hiddenStates.forEach((h, k) => out.info(`${String(k).padEnd(7)} ${stats(h)}`));
      }
    });
}

function stats(a: Float32Array): string {
  let sum = 0;
  let sq = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of a) {
    sum += v;
    sq += v * v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = sum / a.length;
  const std = Math.sqrt(Math.max(0, sq / a.length - mean * mean));
  return [mean, std, min, max].map((v) => v.toFixed(5).padStart(10)).join('  ');
}

function rows(data: Float32Array, frames: number): number[][] {
  const dim = data.length / frames;
  return Array.from({ length: frames }, (_, t) => Array.from(data.subarray(t * dim, (t + 1) * dim)));
}

function toJson(r: ForwardResult & { windows: number }): object {
  return {
    frame_rate: r.frameRate,
    frames: r.frames,
    backend: r.backend,
    windows: r.windows,
    conv_features: rows(r.convFeatures, r.frames),
    hidden_states: r.hiddenStates.map((h) => rows(h, r.frames)),
    last_hidden_state: rows(r.lastHiddenState, r.frames),
  };
}

async function writeJsonAtomic(file: string, value: object): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await fs.writeFile(tmp, JSON.stringify(value));
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
