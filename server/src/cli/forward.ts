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
        await writeForwardJson(opts.out, result);
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

/**
 * Writes the --out document ({frame_rate, frames, backend, windows, conv_features, hidden_states, last_hidden_state},
 * each tensor as rows of frames) a row at a time, atomically (a temporary file, then rename). The text is what
 * JSON.stringify of the whole document gives, but building that document would hold every value twice more, as
 * arrays and as one string (about 0.7 GB of text per minute of HuBERT-base audio).
 */
export async function writeForwardJson(file: string, r: ForwardResult & { windows: number }): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(tmp, 'w');
    const out = handle;
    let pending = '';
    const put = async (text: string) => {
      pending += text;
      if (pending.length >= JSON_CHUNK_CHARS) {
        await out.write(pending);
        pending = '';
      }
    };
    const putRows = async (data: Float32Array) => {
      const dim = data.length / r.frames;
      await put('[');
      for (let t = 0; t < r.frames; t++) await put(`${t ? ',' : ''}${JSON.stringify(Array.from(data.subarray(t * dim, (t + 1) * dim)))}`);
      await put(']');
    };
    const head = { frame_rate: r.frameRate, frames: r.frames, backend: r.backend, windows: r.windows };
    await put(`${JSON.stringify(head).slice(0, -1)},"conv_features":`);
    await putRows(r.convFeatures);
    await put(',"hidden_states":[');
    for (const [k, h] of r.hiddenStates.entries()) {
      if (k) await put(',');
      await putRows(h);
    }
    await put('],"last_hidden_state":');
    await putRows(r.lastHiddenState);
    await out.write(`${pending}}`);
    await out.close();
    handle = undefined;
    await fs.rename(tmp, file);
  } catch (e) {
    await handle?.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

/** Characters of JSON text gathered before each write. */
const JSON_CHUNK_CHARS = 1 << 20;
