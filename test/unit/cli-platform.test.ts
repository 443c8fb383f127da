/** The CLI on a platform onnxruntime-node has no build for: one clear line, before onnxruntime is loaded. */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { unsupportedPlatformReason } from '../../protocol/platform';
import { ROOT } from '../helpers/cli';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();

/** bin/merge-studio.js as if on `platform-arch` (process.platform/arch replaced before the launcher runs). */
function launchAs(platform: string, arch: string, args: string[]) {
  const preload = path.join(tempDir(), 'platform.cjs');
  writeFileSync(
    preload,
    `Object.defineProperty(process, 'platform', { value: ${JSON.stringify(platform)} });\nObject.defineProperty(process, 'arch', { value: ${JSON.stringify(arch)} });\n`,
  );
  return spawnSync(process.execPath, ['-r', preload, path.join(ROOT, 'bin', 'merge-studio.js'), ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('merge-studio on an unsupported platform', () => {
  it('says an Intel Mac cannot run it, with exit code 2 and no stack trace', () => {
    const r = launchAs('darwin', 'x64', ['check', 'examples/speech-music.merge.yaml']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`merge-studio: ${unsupportedPlatformReason('darwin', 'x64')}`);
    expect(r.stderr).toMatch(/Intel Mac.*darwin-x64.*Apple silicon/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('names the supported builds elsewhere, and runs where a build exists', () => {
    const r = launchAs('freebsd', 'x64', ['--version']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/cannot run on freebsd-x64: .*linux-x64, linux-arm64, darwin-arm64, win32-x64, win32-arm64/);
    const here = launchAs(process.platform, process.arch, ['--version']);
    expect(here.status).toBe(0);
    expect(here.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
