/**
 * Environment for a process that runs the engine. glibc's malloc hands large blocks (above a threshold that adapts up
 * to 32 MiB) straight to mmap and gives freed memory back to the kernel, so onnxruntime's per-run outputs and the
 * output copies onnxruntime-node makes land on fresh pages on every run; a first touch of a page is expensive on
 * virtual machines (about 25 µs per 4 KiB page measured on a 2-core VM). Fixed thresholds keep those blocks in the
 * heap for reuse. bench:align, HuBERT-base pair, alternating runs: 34.8 → 28.0 s per minute of probe at 40 s, 33.6 →
 * 29.5 at 2 minutes, peak RSS no higher. glibc reads these variables only at process start, so they are set where an
 * engine process is launched (editor jobs, emitted cluster scripts, the CLI's `run` and `stats`, which relaunch
 * themselves: cli/relaunch.ts); values the user set are kept. Other C libraries
 * ignore them.
 */
export const ENGINE_MALLOC_ENV: Readonly<Record<string, string>> = {
  /** glibc's largest mmap threshold (32 MiB on 64-bit): blocks up to it come from the heap. */
  MALLOC_MMAP_THRESHOLD_: String(32 * 2 ** 20),
  /** Freed heap memory stays with the process for the next batch instead of going back to the kernel. */
  MALLOC_TRIM_THRESHOLD_: String(4 * 2 ** 30),
};

/** `env` with the engine's malloc settings added on Linux where the user has not set them. */
export function engineProcessEnv(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): NodeJS.ProcessEnv {
  if (platform !== 'linux') return env;
  const out = { ...env };
  for (const [k, v] of Object.entries(ENGINE_MALLOC_ENV)) if (out[k] === undefined || out[k] === '') out[k] = v;
  return out;
}
