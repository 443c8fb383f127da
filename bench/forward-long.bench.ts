/**
 * bench:forward-long — peak RSS of `merge-studio forward` on long audio (the 3-layer fixture hubert-postln-a), measured
 * from outside: the built CLI runs as a child and a poller reads its /proc/<pid>/status VmHWM every few ms. Windowed
 * (the command as shipped: 30-s windows) for 30 s, 3 min and 10 min of audio; then, for contrast, the unwindowed
 * forward (one session over the whole clip, what `forward` did before) for 30 s and 3 min in a tsx child.
 * Usage: npm run build && node scripts/run-bench.mjs bench/forward-long.bench.ts [-- --minutes 10]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFloatWav } from '../test/helpers/wav';
import { MiB, procStatus, reportFromChild, runMeasuredChild } from './peak-rss';

const ROOT = path.resolve(__dirname, '..');
const MODEL = path.join(ROOT, 'test/fixtures/hf-reference/hubert-postln-a');
const arg = (k: string, d: number) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};

/** A deterministic clip: a few tones and noise, `seconds` long at 16 kHz. */
function writeClip(file: string, seconds: number): void {
  const n = Math.round(seconds * 16000);
  const x = new Float32Array(n);
  let s = 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    x[i] = 0.2 * Math.sin(i * 0.0577) + 0.1 * Math.sin(i * 0.213) + 0.05 * (s / 2 ** 32 - 0.5);
  }
  writeFloatWav(file, x, 16000);
}

/** Runs the CLI and polls its VmHWM until it exits: peak bytes and wall seconds. */
function measureCli(args: string[]): Promise<{ peak: number; seconds: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/merge-studio.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let peak = 0;
    const poll = setInterval(() => (peak = Math.max(peak, procStatus(child.pid!, 'VmHWM'))), 5);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      clearInterval(poll);
      if (code !== 0) reject(new Error(`forward exited with ${code}: ${err.slice(-1000)}`));
      else resolve({ peak, seconds: (performance.now() - started) / 1000, stdout: out });
    });
  });
}

/** Child mode: the unwindowed forward (one session over the whole clip). */
async function unwindowedChild(file: string): Promise<void> {
  const { loadAudio } = await import('../server/src/engine/io/audio');
  const { forward, loadEncoderModel } = await import('../server/src/engine/model/encoder');
  const model = await loadEncoderModel(MODEL);
  const r = await forward(model, await loadAudio(file, 16000));
  reportFromChild({ frames: r.frames });
}

async function main(): Promise<void> {
  const childAt = process.argv.indexOf('--unwindowed-child');
  if (childAt > 0) return unwindowedChild(process.argv[childAt + 1]!);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-forward-long-'));
  try {
    const minutes = arg('minutes', 10);
    console.log('audio      mode         peak RSS   wall');
    for (const seconds of [30, 180, minutes * 60]) {
      const wav = path.join(dir, `clip-${seconds}.wav`);
      writeClip(wav, seconds);
      const r = await measureCli(['forward', '--model', MODEL, '--audio', wav, '--summary']);
      const frames = / Hz → (\d+) frames(?!\/)/.exec(r.stdout)?.[1];
      console.log(
        `${String(seconds).padStart(5)} s    windowed     ${MiB(r.peak).padStart(6)} MiB  ${r.seconds.toFixed(1)} s  (${frames} frames)`,
      );
      if (seconds <= 180) {
        const u = await runMeasuredChild<{ frames: number }>(__filename, ['--unwindowed-child', wav]);
        console.log(
          `${String(seconds).padStart(5)} s    unwindowed   ${MiB(u.memory.peak).padStart(6)} MiB  ${u.seconds.toFixed(1)} s  (${u.result.frames} frames)`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
