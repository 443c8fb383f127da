import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli';
import { HF_REFERENCE } from '../helpers/reference';

describe('merge-studio forward: limits on its audio input', () => {
  it('--audio /dev/zero is refused at once with one line (it used to grow to 21 GB)', () => {
    const started = Date.now();
    const r = runCli(['forward', '--model', path.join(HF_REFERENCE, 'hubert-preln'), '--audio', '/dev/zero']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toMatch(
      /^(merge-studio: )?(error: )?\/dev\/zero is not a regular file \(it is a device\); expected an audio file \(WAV, FLAC or MP3\)$/,
    );
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('--help states the per-file limit and how long audio is windowed', () => {
    const r = runCli(['forward', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/at most 30 minutes/);
    expect(r.stdout).toMatch(/Audio longer than 30 s runs in 30-s windows \(5 s of context on each side, centres kept\)/);
  });
});
