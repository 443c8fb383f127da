import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli';
import { FIXTURES, HF_REFERENCE, loadReference, relativeMaxError } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';
import { writeFloatWav } from '../helpers/wav';

const tempDir = useTempDirs();

describe('merge-studio forward', () => {
  it('writes transformers-equivalent hidden states as JSON', () => {
    const dir = tempDir();
    const ref = loadReference('wav2vec2-postln');
    const wav = path.join(dir, 'input.wav');
    writeFloatWav(wav, ref.input, ref.sample_rate);
    const out = path.join(dir, 'out.json');
    const r = runCli(['forward', '--model', path.join(HF_REFERENCE, 'wav2vec2-postln'), '--audio', wav, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const json = JSON.parse(readFileSync(out, 'utf8')) as {
      hidden_states: number[][][];
      last_hidden_state: number[][];
      frame_rate: number;
    };
    expect(json.frame_rate).toBe(50);
    expect(json.hidden_states).toHaveLength(ref.hidden_states.length);
    json.hidden_states.forEach((h, k) => expect(relativeMaxError(h.flat(), ref.hidden_states[k]!)).toBeLessThan(1e-4));
    expect(relativeMaxError(json.last_hidden_state.flat(), ref.last_hidden_state)).toBeLessThan(1e-4);
  });

  it.each([
    [
      'a missing model folder',
      ['--model', 'no/such/model', '--audio', 'test/fixtures/audio/tone-16k.wav'],
      /model folder no\/such\/model does not exist/,
    ],
    [
      'unreadable audio',
      ['--model', path.join(HF_REFERENCE, 'hubert-preln'), '--audio', path.join(FIXTURES, 'audio', 'not-audio.wav')],
      /not-audio.wav: not a WAV, FLAC or MP3 file/,
    ],
    [
      'an unknown device',
      ['--model', path.join(HF_REFERENCE, 'hubert-preln'), '--audio', 'x.wav', '--device', 'tpu'],
      /--device must be one of auto, cpu, webgpu, cuda/,
    ],
  ])('exits non-zero with a one-line reason for %s', (_, args, message) => {
    const r = runCli(['forward', ...args]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
  });

  it('doctor lists the CPU backend as available', () => {
    const r = runCli(['doctor', '--json']);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as { backends: { backend: string; available: boolean }[] };
    expect(json.backends.find((b) => b.backend === 'cpu')?.available).toBe(true);
    expect(json.backends.map((b) => b.backend)).toEqual(['cpu', 'webgpu', 'cuda']);
  });
});
