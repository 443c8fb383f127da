import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeAudioFile, listAudioFiles, loadAudio, resample } from '../../server/src/engine/io/audio';
import { engineError } from '../helpers/errors';

const dir = path.resolve(__dirname, '../fixtures/audio');
const fx = (name: string) => path.join(dir, name);

/**
 * Least-squares fit of x ≈ c + Σ_f (a_f sin 2πft + b_f cos 2πft) over [from, to): amplitude per frequency and the
 * RMS of what the fit leaves. A wrong frequency, rate or scaling shows up as a wrong amplitude and a large residual.
 */
function fitSines(x: Float32Array, rate: number, freqs: number[], from = 0, to = x.length) {
  const k = 1 + 2 * freqs.length;
  const basis = (t: number) => [1, ...freqs.flatMap((f) => [Math.sin(2 * Math.PI * f * t), Math.cos(2 * Math.PI * f * t)])];
  const A = Array.from({ length: k }, () => new Float64Array(k));
  const y = new Float64Array(k);
  for (let i = from; i < to; i++) {
    const b = basis(i / rate);
    for (let r = 0; r < k; r++) {
      y[r]! += b[r]! * x[i]!;
      for (let c = 0; c < k; c++) A[r]![c]! += b[r]! * b[c]!;
    }
  }
  const coef = solve(A, y);
  let ss = 0;
  for (let i = from; i < to; i++) {
    const b = basis(i / rate);
    let v = 0;
    for (let r = 0; r < k; r++) v += b[r]! * coef[r]!;
    ss += (x[i]! - v) ** 2;
  }
  return {
    amplitudes: freqs.map((_, j) => Math.hypot(coef[1 + 2 * j]!, coef[2 + 2 * j]!)),
    residualRms: Math.sqrt(ss / (to - from)),
  };
}

function solve(A: Float64Array[], y: Float64Array): Float64Array {
  const n = y.length;
  const M = A.map((row, i) => [...row, y[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[p]![c]!)) p = r;
    [M[c], M[p]] = [M[p]!, M[c]!];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r]![c]! / M[c]![c]!;
      for (let k = c; k <= n; k++) M[r]![k]! -= f * M[c]![k]!;
    }
  }
  return Float64Array.from(M, (row, i) => row[n]! / row[i]!);
}

describe('decodeAudioFile: WAV encodings', () => {
  // 0.25 s of a 440 Hz sine at amplitude 0.5 (sox synth, no dither). sox's generator itself leaves a residual of
  // up to 1.4e-4 against an ideal sine (measured on its float64 output at 16 kHz), so the fit checks rate, frequency
  // and scale; bit-exactness is checked below by comparing encodings of the same signal with each other.
  const cases: [string, number, number][] = [
    // file, rate, amplitude tolerance
    ['sine440-16k-i16.wav', 16000, 1e-4],
    ['sine440-16k-u8.wav', 16000, 5e-3],
    ['sine440-22k-i24.wav', 22050, 1e-4], // WAVE_FORMAT_EXTENSIBLE, 24-bit
    ['sine440-16k-i24-pcmheader.wav', 16000, 1e-4],
    ['sine440-44k-i32.wav', 44100, 1e-4], // WAVE_FORMAT_EXTENSIBLE, 32-bit
    ['sine440-48k-f32.wav', 48000, 1e-4],
    ['sine440-16k-f64.wav', 16000, 1e-4],
  ];
  for (const [file, rate, ampTol] of cases) {
    it(`${file}: ${rate} Hz mono, a 440 Hz sine at 0.5`, async () => {
      const a = await decodeAudioFile(fx(file));
      expect(a.sampleRate).toBe(rate);
      expect(a.channels).toBe(1);
      expect(a.samples.length).toBe(Math.floor(rate * 0.25));
      expect(a.durationSeconds).toBeCloseTo(a.samples.length / rate, 12);
      const fit = fitSines(a.samples, rate, [440]);
      expect(Math.abs(fit.amplitudes[0]! - 0.5)).toBeLessThan(ampTol);
      expect(fit.residualRms).toBeLessThan(file.includes('u8') ? 4e-3 : 3e-4);
    });
  }

  it('u8, int16 and int24 decode to the float64 encoding of the same signal within one LSB (scale, sign, byte order)', async () => {
    const ref = (await decodeAudioFile(fx('sine440-16k-f64.wav'))).samples;
    const maxDiff = (x: Float32Array) => x.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i]!)), 0);
    expect(maxDiff((await decodeAudioFile(fx('sine440-16k-i24-pcmheader.wav'))).samples)).toBeLessThanOrEqual(2 ** -23);
    expect(maxDiff((await decodeAudioFile(fx('sine440-16k-i16.wav'))).samples)).toBeLessThanOrEqual(2 ** -15);
    expect(maxDiff((await decodeAudioFile(fx('sine440-16k-u8.wav'))).samples)).toBeLessThanOrEqual(2 ** -7);
  });

  it('24-bit WAV and 24-bit FLAC of the same signal decode bit-identically (integer / 2^23)', async () => {
    const wav = (await decodeAudioFile(fx('sine440-16k-i24-pcmheader.wav'))).samples;
    const flac = (await decodeAudioFile(fx('sine440-16k-i24.flac'))).samples;
    expect(Array.from(flac)).toEqual(Array.from(wav));
    expect(wav.every((v) => Number.isInteger(v * 2 ** 23))).toBe(true);
  });

  it('mixes stereo down by averaging: 440 Hz at 0.6 (left) and 660 Hz at 0.4 (right) give 0.3 and 0.2', async () => {
    const a = await decodeAudioFile(fx('stereo-44k-i16.wav'));
    expect(a.channels).toBe(2);
    expect(a.samples.length).toBe(11025);
    const fit = fitSines(a.samples, 44100, [440, 660]);
    expect(fit.amplitudes[0]).toBeCloseTo(0.3, 4);
    expect(fit.amplitudes[1]).toBeCloseTo(0.2, 4);
    expect(fit.residualRms).toBeLessThan(5e-5);
  });

  it('skips unknown chunks with odd sizes (pad byte), reads streaming headers (size 0 / 0xFFFFFFFF) to the end, RF64 via ds64', async () => {
    const ref = await decodeAudioFile(fx('sine440-16k-i16.wav'));
    for (const f of ['odd-chunks.wav', 'streaming-ffffffff.wav', 'streaming-zero-size.wav', 'rf64.wav']) {
      const a = await decodeAudioFile(fx(f));
      expect(a.sampleRate, f).toBe(16000);
      expect(Array.from(a.samples), f).toEqual(Array.from(ref.samples));
    }
  });

  it('the npm start tone: 1.5 s mono 16 kHz, 220 Hz at 0.5 plus light noise', async () => {
    const a = await decodeAudioFile(fx('tone-16k.wav'));
    expect([a.sampleRate, a.channels, a.samples.length, a.durationSeconds]).toEqual([16000, 1, 24000, 1.5]);
    const fit = fitSines(a.samples, 16000, [220]);
    expect(fit.amplitudes[0]).toBeCloseTo(0.5, 2);
    // sox `whitenoise` scaled by 0.02 leaves an RMS of 0.0065 (measured): noise is there, and it is light
    expect(fit.residualRms).toBeGreaterThan(0.004);
    expect(fit.residualRms).toBeLessThan(0.01);
  });
});

describe('decodeAudioFile: FLAC and MP3', () => {
  it('FLAC stereo 44.1 kHz, 16-bit samples on the WAV scale (integer / 32768)', async () => {
    const a = await decodeAudioFile(fx('sine440-44k-stereo.flac'));
    // both channels hold the same sine, so the mixdown is still an integer / 32768
    expect(a.samples.every((v) => Number.isInteger(v * 32768))).toBe(true);
    expect([a.sampleRate, a.channels, a.samples.length]).toEqual([44100, 2, 11025]);
    const fit = fitSines(a.samples, 44100, [440]);
    expect(fit.amplitudes[0]).toBeCloseTo(0.5, 4);
    expect(fit.residualRms).toBeLessThan(5e-5);
  });

  it('detects the format from magic bytes: a FLAC named .wav decodes as FLAC', async () => {
    const a = await decodeAudioFile(fx('really-flac.wav'));
    const b = await decodeAudioFile(fx('sine440-16k-i24.flac'));
    expect(a.sampleRate).toBe(16000);
    expect(Array.from(a.samples)).toEqual(Array.from(b.samples));
    expect(fitSines(a.samples, 16000, [440]).amplitudes[0]).toBeCloseTo(0.5, 4);
  });

  it('accepts an ID3v2 tag (plus zero padding) in front of FLAC', async () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'audio-'));
    try {
      const flac = readFileSync(fx('sine440-16k-i24.flac'));
      const tag = Buffer.alloc(10 + 20);
      tag.write('ID3', 0, 'latin1');
      tag[3] = 4;
      tag[9] = 12; // declared size 12, then 8 bytes of zero padding beyond it
      const file = path.join(tmp, 'tagged.flac');
      writeFileSync(file, Buffer.concat([tag, flac]));
      const a = await decodeAudioFile(file);
      expect(Array.from(a.samples)).toEqual(Array.from((await decodeAudioFile(fx('sine440-16k-i24.flac'))).samples));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('MP3 (ID3v2 tag, mono, 320 kb/s): gapless length, right channel count, frequency and amplitude', async () => {
    const a = await decodeAudioFile(fx('sine440-44k.mp3'));
    // lame's Info tag carries encoder delay and padding: exactly the 0.5 s that was encoded comes back
    expect([a.sampleRate, a.channels, a.samples.length]).toEqual([44100, 1, 22050]);
    const fit = fitSines(a.samples, 44100, [440], 2000, 20000);
    expect(Math.abs(fit.amplitudes[0]! - 0.5)).toBeLessThan(0.01);
    expect(fit.residualRms).toBeLessThan(5e-3);
  });
});

describe('decodeAudioFile: bad files give one-line EngineErrors that name the file', () => {
  const cases: [string, string, RegExp][] = [
    ['empty.wav', 'bad-audio', /file is empty/],
    ['truncated-header.wav', 'bad-audio', /"fmt " chunk .* past the end of the file \(truncated header\)/],
    ['not-audio.wav', 'bad-audio', /not a WAV, FLAC or MP3 file \(starts with bytes 74 68 69 73/],
    ['not-audio.mp3', 'bad-audio', /not a WAV, FLAC or MP3 file/],
    ['huge-data-size.wav', 'bad-audio', /data chunk declares 2147483632 bytes but only 8000 remain/],
    ['alaw.wav', 'unsupported-audio', /format code 0x0006 \(A-law\) is not supported/],
    ['sine440-16k.ogg', 'unsupported-audio', /Ogg \(Vorbis\/Opus\) audio is not supported/],
    ['bad-channels.wav', 'bad-audio', /declares 65535 channels/],
    ['zero-rate.wav', 'bad-audio', /sample rate of 0 Hz/],
    ['bad-block-align.wav', 'bad-audio', /block align 3 does not match 1 channels × 2 bytes/],
    ['bad-guid.wav', 'unsupported-audio', /sub-format GUID is not a standard PCM or float one/],
    [
      'huge-streaminfo.flac',
      'unsupported-audio',
      /34359738368 sample frames \([\d.]+ min\) is longer than the 30-minute limit per audio file; split it/,
    ],
    ['zero-samples.wav', 'bad-audio', /holds no samples/],
    ['no-data-chunk.wav', 'bad-audio', /has no data chunk/],
    ['nan-samples.wav', 'bad-audio', /sample 100 \(at 0\.0021 s\) is NaN/],
    ['truncated.flac', 'bad-audio', /FLAC stream holds no decodable audio/],
    ['truncated.mp3', 'bad-audio', /MP3 stream ends after \d+ of about \d+ samples \(truncated file\)/],
  ];
  for (const [file, code, re] of cases) {
    it(`${file} → ${code}`, async () => {
      const e = await engineError(decodeAudioFile(fx(file)));
      expect(e.code).toBe(code);
      expect(e.message).toMatch(re);
      expect(e.message.startsWith(fx(file) + ': ')).toBe(true);
      expect(e.message).not.toContain('\n');
      expect(e.file).toBe(fx(file));
    });
  }

  it('a missing file → file-not-found', async () => {
    const e = await engineError(decodeAudioFile(fx('no-such.wav')));
    expect(e.code).toBe('file-not-found');
    expect(e.message).toContain('no-such.wav');
  });

  it('a folder → bad-audio', async () => {
    const e = await engineError(decodeAudioFile(dir));
    expect(e.code).toBe('bad-audio');
    expect(e.message).toMatch(/is a folder/);
  });

  it('a FLAC cut mid-stream reports the samples missing against STREAMINFO', async () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'audio-'));
    try {
      const bytes = readFileSync(fx('sine440-44k-stereo.flac'));
      const cut = path.join(tmp, 'cut.flac');
      writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.7)));
      const e = await engineError(decodeAudioFile(cut));
      expect(e.code).toBe('bad-audio');
      expect(e.message).toMatch(/FLAC stream ends after \d+ of 11025 samples/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('resample', () => {
  const sine = (rate: number, n: number, f = 440, amp = 0.5) =>
    Float32Array.from({ length: n }, (_, i) => amp * Math.sin((2 * Math.PI * f * i) / rate));
  // A sine switched on at t = 0 rings at both ends of any band-limited resampling; judge the middle.
  const inner = (x: Float32Array, rate: number) => [Math.round(0.02 * rate), x.length - Math.round(0.02 * rate)] as const;

  it('44.1 kHz → 16 kHz keeps a 440 Hz sine: length, frequency and amplitude', async () => {
    const a = await decodeAudioFile(fx('sine440-44k-0.5s.wav'));
    const y = await resample(a.samples, 44100, 16000);
    expect(y.length).toBe(8000);
    const fit = fitSines(y, 16000, [440], ...inner(y, 16000));
    expect(Math.abs(fit.amplitudes[0]! - 0.5)).toBeLessThan(1e-4);
    expect(fit.residualRms).toBeLessThan(5e-5); // the 16-bit source's own noise is ~9e-6
  });

  it('upsamples 16 kHz → 48 kHz and handles a non-integer length ratio (22.05 kHz → 16 kHz: ceil)', async () => {
    const up = await resample(sine(16000, 4000), 16000, 48000);
    expect(up.length).toBe(12000);
    const fit = fitSines(up, 48000, [440], ...inner(up, 48000));
    expect(Math.abs(fit.amplitudes[0]! - 0.5)).toBeLessThan(1e-4);
    expect(fit.residualRms).toBeLessThan(1e-5);
    const down = await resample(sine(22050, 5512), 22050, 16000);
    expect(down.length).toBe(Math.ceil((5512 * 16000) / 22050));
  });

  it('streams long inputs in pieces without seams and flushes the filter tail', async () => {
    const n = 44100 * 7 + 123; // several internal pieces, and a ragged end
    const y = await resample(sine(44100, n, 1000, 0.8), 44100, 16000);
    expect(y.length).toBe(Math.ceil((n * 16000) / 44100));
    const [from, to] = inner(y, 16000);
    let worst = 0;
    for (let i = from; i < to; i++) worst = Math.max(worst, Math.abs(y[i]! - 0.8 * Math.sin((2 * Math.PI * 1000 * i) / 16000)));
    expect(worst).toBeLessThan(1e-4);
    // the last samples are real signal, not the zeros of an unflushed filter
    let tail = 0;
    for (let i = y.length - 200; i < y.length - 100; i++) tail = Math.max(tail, Math.abs(y[i]!));
    expect(tail).toBeGreaterThan(0.7);
  });

  it('is the identity (same array) when the rates are equal, and empty in → empty out', async () => {
    const x = sine(16000, 100);
    expect(await resample(x, 16000, 16000)).toBe(x);
    expect((await resample(new Float32Array(0), 44100, 16000)).length).toBe(0);
  });

  it('refuses rates outside libsamplerate’s range with unsupported-audio', async () => {
    for (const [from, to] of [
      [0, 16000],
      [384000, 16000],
      [16000, 16000 * 300],
      [NaN, 16000],
    ]) {
      const e = await engineError(resample(sine(16000, 10), from!, to!));
      expect(e.code).toBe('unsupported-audio');
    }
  });
});

describe('loadAudio', () => {
  it('decodes, mixes down and resamples: stereo 44.1 kHz → mono 16 kHz', async () => {
    const y = await loadAudio(fx('stereo-44k-i16.wav'), 16000);
    expect(y.length).toBe(4000);
    const fit = fitSines(y, 16000, [440, 660], 320, 3680);
    expect(fit.amplitudes[0]).toBeCloseTo(0.3, 3);
    expect(fit.amplitudes[1]).toBeCloseTo(0.2, 3);
  });

  it('MP3 44.1 kHz → 16 kHz', async () => {
    const y = await loadAudio(fx('sine440-44k.mp3'), 16000);
    expect(y.length).toBe(8000);
    expect(fitSines(y, 16000, [440], 800, 7200).amplitudes[0]).toBeCloseTo(0.5, 2);
  });

  it('names the file when its rate is beyond the resampler (a 384 kHz WAV)', async () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'audio-'));
    try {
      const b = Buffer.from(readFileSync(fx('sine440-16k-i16.wav')));
      b.writeUInt32LE(384000, 24); // fmt sample rate
      const file = path.join(tmp, 'dxd.wav');
      writeFileSync(file, b);
      expect((await decodeAudioFile(file)).sampleRate).toBe(384000);
      const e = await engineError(loadAudio(file, 16000));
      expect(e.code).toBe('unsupported-audio');
      expect(e.message).toMatch(/dxd\.wav: cannot resample 384000 Hz → 16000 Hz/);
      expect(e.file).toBe(file);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('passes decode errors through', async () => {
    const e = await engineError(loadAudio(fx('alaw.wav'), 16000));
    expect(e.code).toBe('unsupported-audio');
  });
});

describe('listAudioFiles', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'list-audio-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('expands folders recursively, keeps wav/flac/mp3 in any case, sorted by relative path', async () => {
    const files = await listAudioFiles(['nested'], dir);
    expect(files).toEqual([fx('nested/a/deep/two.FLAC'), fx('nested/a/one.wav'), fx('nested/b/three.Mp3')]);
  });

  it('keeps the order of the given paths, includes named files whatever their extension, drops duplicates', async () => {
    const files = await listAudioFiles(['nested/b', 'sine440-16k.ogg', 'nested', fx('nested/b/three.Mp3')], dir);
    expect(files).toEqual([fx('nested/b/three.Mp3'), fx('sine440-16k.ogg'), fx('nested/a/deep/two.FLAC'), fx('nested/a/one.wav')]);
  });

  it('skips hidden files and folders (macOS ._ resource forks) and is deterministic', async () => {
    mkdirSync(path.join(tmp, '.cache'), { recursive: true });
    mkdirSync(path.join(tmp, 'Z'), { recursive: true });
    copyFileSync(fx('sine440-16k-i16.wav'), path.join(tmp, 'b.wav'));
    copyFileSync(fx('sine440-16k-i16.wav'), path.join(tmp, 'Z', 'a.WAV'));
    writeFileSync(path.join(tmp, '._b.wav'), 'AppleDouble');
    copyFileSync(fx('sine440-16k-i16.wav'), path.join(tmp, '.cache', 'c.wav'));
    const files = await listAudioFiles([tmp]);
    // code-unit order: uppercase before lowercase, independent of locale
    expect(files).toEqual([path.join(tmp, 'Z', 'a.WAV'), path.join(tmp, 'b.wav')]);
    expect(await listAudioFiles([tmp])).toEqual(files);
  });

  it('a missing path → file-not-found naming it', async () => {
    const e = await engineError(listAudioFiles(['nested', 'missing-folder'], dir));
    expect(e.code).toBe('file-not-found');
    expect(e.message).toMatch(/^missing-folder: no such file or folder/);
    expect(e.file).toBe(fx('missing-folder'));
  });
});
