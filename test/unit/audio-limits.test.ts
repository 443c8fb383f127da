import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { decodeAudioFile, loadAudio, MAX_AUDIO_SECONDS } from '../../server/src/engine/io/audio';
import { useTempDirs } from '../helpers/tmp';
import { writeFloatWav } from '../helpers/wav';

const FIXTURES = path.resolve(__dirname, '../fixtures/audio');
const tempDir = useTempDirs();

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toMatchObject({ name: 'EngineError' });
  return e as { code: string; message: string };
}

describe('audio inputs that are not regular files are refused before a byte is read', () => {
  it('/dev/zero: refused at once (it used to be read until the process was killed at 21 GB)', async () => {
    const started = performance.now();
    const e = await refusal(decodeAudioFile('/dev/zero'));
    expect(e.code).toBe('bad-audio');
    expect(e.message).toBe('/dev/zero is not a regular file (it is a device); expected an audio file (WAV, FLAC or MP3)');
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('a named pipe: refused without waiting for a writer', async () => {
    const fifo = path.join(tempDir(), 'clip.wav');
    execFileSync('mkfifo', [fifo]);
    const e = await refusal(decodeAudioFile(fifo));
    expect(e.message).toBe(`${fifo} is not a regular file (it is a named pipe (FIFO)); expected an audio file (WAV, FLAC or MP3)`);
  });
});

describe(`decoded audio is bounded: at most ${MAX_AUDIO_SECONDS / 60} minutes per file`, () => {
  it('a WAV one second over the limit (a tiny file at 1 Hz) is refused from its header, with its length', async () => {
    const file = path.join(tempDir(), 'long.wav');
    writeFloatWav(file, new Float32Array(MAX_AUDIO_SECONDS + 1), 1);
    const e = await refusal(decodeAudioFile(file));
    expect(e.code).toBe('unsupported-audio');
    expect(e.message).toBe(
      `${file}: ${MAX_AUDIO_SECONDS + 1} sample frames (30.0 min) is longer than the 30-minute limit per audio file; split it into shorter files (e.g. ffmpeg -i in.wav -f segment -segment_time 1800 out%03d.wav)`,
    );
    writeFloatWav(file, new Float32Array(MAX_AUDIO_SECONDS), 1); // exactly the limit decodes
    expect((await decodeAudioFile(file)).durationSeconds).toBe(MAX_AUDIO_SECONDS);
  });

  it('a 1 MB WAV at 100 Hz (42 minutes): refused before the resampler would make 40 million samples of it', async () => {
    const file = path.join(tempDir(), 'slow.wav');
    writeFloatWav(file, new Float32Array(250_000), 100);
    const started = performance.now();
    const e = await refusal(loadAudio(file, 16000));
    expect(e.message).toMatch(/250000 sample frames \(41\.7 min\) is longer than the 30-minute limit/);
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('a FLAC whose STREAMINFO promises 31 minutes is refused before decoding', async () => {
    const bytes = Buffer.from(readFileSync(path.join(FIXTURES, 'sine440-16k-i24.flac')));
    const s = 8; // STREAMINFO body after "fLaC" and the block header
    const total = 16000 * 31 * 60;
    bytes[s + 13] = (bytes[s + 13]! & 0xf0) | Math.floor(total / 2 ** 32);
    bytes.writeUInt32BE(total % 2 ** 32, s + 14);
    const file = path.join(tempDir(), 'long.flac');
    await fs.writeFile(file, bytes);
    const e = await refusal(decodeAudioFile(file));
    expect(e.message).toMatch(/29760000 sample frames \(31\.0 min\) is longer than the 30-minute limit per audio file/);
  });

  it('a WAV of a million empty chunks before its data is refused quickly', async () => {
    const header = Buffer.from(readFileSync(path.join(FIXTURES, 'sine440-16k-i16.wav')).subarray(0, 36)); // RIFF…fmt
    const junk = Buffer.alloc(8 * 1_000_000);
    for (let i = 0; i < 1_000_000; i++) junk.write('junk', i * 8);
    const file = path.join(tempDir(), 'chunks.wav');
    await fs.writeFile(file, Buffer.concat([header, junk]));
    const e = await refusal(decodeAudioFile(file));
    expect(e.message).toMatch(/more than 10000 chunks before its data/);
  });
});

describe('decoder messages are ours', () => {
  afterEach(() => vi.restoreAllMocks());

  it('an MP3 with garbage mid-stream: nothing printed by the WASM decoder, one located message', async () => {
    const bytes = Buffer.from(readFileSync(path.join(FIXTURES, 'sine440-44k.mp3')));
    let seed = 1;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const from = Math.floor(bytes.length / 3);
    for (let i = from; i < from + 2000; i++) bytes[i] = Math.floor(next() * 256);
    const file = path.join(tempDir(), 'garbage.mp3');
    await fs.writeFile(file, bytes);
    const printed = [vi.spyOn(console, 'error'), vi.spyOn(console, 'warn'), vi.spyOn(console, 'log'), vi.spyOn(process.stderr, 'write')];
    const e = await refusal(decodeAudioFile(file));
    expect(printed.map((s) => s.mock.calls.length)).toEqual([0, 0, 0, 0]);
    expect(e.message).toMatch(
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: corrupt MP3 stream at frame \\d+: .*MPG123_ERR`),
    );
    expect(console.error).toBe(printed[0]); // restored after decoding
  });
});
