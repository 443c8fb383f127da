/**
 * One in-process fuzz case over a file reader (checkpoint loaders, audio decoders): write the bytes in a fresh folder,
 * read them, and require what every reader promises — an end within the CPU and wall bounds, bounded heap growth,
 * success or an EngineError naming the file (no raw Node error, no stack trace), no file descriptor left open, and
 * nothing written beside the file.
 */
import { promises as fs, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { EngineError } from '../../server/src/engine/errors';
import { assertNoStackTrace, caseDir, FuzzHang, within, type FuzzTally } from './fuzz-util';

/** A case may use this much CPU time (measured as CPU time, so a loaded shared machine does not fake a hang)… */
const CPU_BOUND_MS = 10_000;
/** …and this much wall time (a read that blocks uses no CPU). */
const WALL_BOUND_MS = 60_000;
const HEAP_BOUND_BYTES = 512 * 1024 * 1024;
const openFds = () => readdirSync('/proc/self/fd').length;

export interface FileCase {
  tally: FuzzTally;
  /** Case folder prefix. */
  kind: string;
  name: string;
  bytes: Buffer;
  label: string;
  read: (file: string) => Promise<unknown>;
}

export async function runFileCase(c: FileCase): Promise<void> {
  const { dir, remove } = caseDir(c.kind);
  const { label } = c;
  try {
    const file = path.join(dir, c.name);
    await fs.writeFile(file, c.bytes);
    const fds = openFds();
    const heap = process.memoryUsage().heapUsed;
    let error: unknown;
    const cpu = process.cpuUsage();
    await within(
      c.read(file).then(
        () => undefined,
        (e: unknown) => void (error = e),
      ),
      WALL_BOUND_MS,
      label,
    );
    // A synchronous loop blocks the timer above; its CPU time still counts.
    const used = process.cpuUsage(cpu);
    if ((used.user + used.system) / 1000 > CPU_BOUND_MS)
      throw new FuzzHang(`${label}: took ${((used.user + used.system) / 1e6).toFixed(1)} s of CPU`);
    c.tally.memory(process.memoryUsage().rss);
    if (error !== undefined) {
      if (!(error instanceof EngineError))
        throw new Error(`${label}: a raw ${(error as Error)?.name ?? typeof error} escaped: ${String((error as Error)?.message ?? error)}`);
      assertNoStackTrace(error.message, label);
      if (!error.message.includes(file)) throw new Error(`${label}: message does not name the file: ${error.message}`);
    }
    const grew = process.memoryUsage().heapUsed - heap;
    if (grew > HEAP_BOUND_BYTES) throw new Error(`${label}: heap grew by ${(grew / 2 ** 20).toFixed(0)} MiB`);
    if (openFds() !== fds) throw new Error(`${label}: ${openFds() - fds} file descriptor(s) left open`);
    const left = readdirSync(dir);
    if (left.length !== 1 || left[0] !== c.name) throw new Error(`${label}: the case folder now holds ${left.join(', ')}`);
  } finally {
    remove();
  }
}
