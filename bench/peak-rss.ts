/**
 * Peak resident memory measured from outside the measured process: the benchmark body runs in a child process
 * (node --import tsx, so the polled pid is the process doing the work), a poller reads /proc/<pid>/status VmRSS
 * every few milliseconds, and the child reports the kernel's own high-water marks (VmHWM and getrusage maxRSS)
 * just before it exits. An in-process sampler cannot see peaks while onnxruntime's synchronous run() holds the
 * thread; the kernel's VmHWM sees everything.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface ChildMemory {
  /** Highest VmRSS the poller saw, bytes. */
  polledPeak: number;
  /** The child's VmHWM read by itself at exit, bytes. */
  vmHwm: number;
  /** The child's getrusage maxRSS at exit, bytes. */
  maxRss: number;
  /** The largest of the three: what the report uses. */
  peak: number;
}

/** VmRSS / VmHWM of a pid from /proc, bytes (0 when the process is gone). */
export function procStatus(pid: number | 'self', field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Marker line the child prints last, so that its stdout may also hold other lines. */
const MARK = '@@bench-child@@';

/** In the child: prints the result together with the kernel's high-water marks, as the last line of stdout. */
export function reportFromChild(result: unknown): void {
  const vmHwm = procStatus('self', 'VmHWM');
  const maxRss = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(`${MARK}${JSON.stringify({ result, vmHwm, maxRss })}\n`);
}

/** Runs `script args` in a child node process with tsx and returns its result and peak memory. */
export function runMeasuredChild<T>(
  script: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; command?: string; intervalMs?: number } = {},
): Promise<{ result: T; memory: ChildMemory; seconds: number }> {
  const command = opts.command ?? process.execPath;
  const argv = opts.command ? [script, ...args] : ['--import', 'tsx', script, ...args];
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, argv, { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let polledPeak = 0;
    const poll = setInterval(() => (polledPeak = Math.max(polledPeak, procStatus(child.pid!, 'VmRSS'))), opts.intervalMs ?? 5);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(poll);
      const line = out.split('\n').find((l) => l.startsWith(MARK));
      if (code !== 0 || !line) {
        reject(new Error(`benchmark child ${script} exited with ${code}: ${err.slice(-2000)}`));
        return;
      }
      const r = JSON.parse(line.slice(MARK.length)) as { result: T; vmHwm: number; maxRss: number };
      const memory = { polledPeak, vmHwm: r.vmHwm, maxRss: r.maxRss, peak: Math.max(polledPeak, r.vmHwm, r.maxRss) };
      resolve({ result: r.result, memory, seconds: (performance.now() - started) / 1000 });
    });
  });
}

export const MiB = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
