/**
 * onnxruntime-node sessions on a chosen backend. `auto` prefers CUDA (when its libraries are installed), then WebGPU
 * (when an adapter is present), then the CPU. Availability is probed once per process with a one-node model, so an
 * unavailable backend gives a clear message instead of a native error deep inside a job.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { EngineError, describeError } from '../errors';
import { GraphBuilder } from './graph-builder';

import { DEVICES, PRECISIONS, type Device, type Precision } from '../recipe/schema';

export { DEVICES, PRECISIONS, type Device, type Precision };
export type Backend = Exclude<Device, 'auto'>;

export interface BackendStatus {
  backend: Backend;
  available: boolean;
  /** Why it is unavailable, or what was found. */
  detail: string;
}

export interface SessionOptions {
  device?: Device;
  /** Intra-op threads for the CPU backend (default: onnxruntime's choice, all cores). */
  threads?: number;
  /** Arithmetic of graphs built for this session (GraphBuilder); fp16 is refused on the CPU backend. Default fp32. */
  precision?: Precision;
  /**
   * Whether idle CPU threads spin while they wait for work (default: onnxruntime's, yes). Off for many short runs on
   * a shared machine: evaluation embeddings with 2 threads, 3.2 → 1.8 CPU-s and 9.4 → 5.2 s wall per system.
   */
  spinning?: boolean;
  /**
   * onnxruntime's CPU memory arena for this session (default off). A session that runs many times on the same shapes
   * then reuses its buffers instead of taking fresh pages from the kernel each run (measured here: a first touch of a
   * page costs ~25 µs, 0.5 s per 75 MiB); off by default because each session's arena keeps its peak while it lives.
   */
  memoryArena?: boolean;
  /**
   * onnxruntime's memory pattern (default on without the arena): one block per run for all intermediate tensors.
   * Without an arena that block is allocated afresh at every run and, larger than glibc's largest mmap threshold
   * (32 MiB), comes as fresh pages each time; off, each tensor is its own allocation, reused from the heap where the
   * engine's malloc settings (process-env.ts) keep freed memory.
   */
  memoryPattern?: boolean;
}

export interface Session {
  readonly backend: Backend;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /**
   * `outputs`: the outputs to compute, or all of them by name with, where given, a tensor of the output's shape for
   * onnxruntime to write into instead of allocating (null: allocated as usual). Either way the results are fresh copies.
   */
  run(
    feeds: Record<string, ort.Tensor>,
    outputs?: readonly string[] | Record<string, ort.Tensor | null>,
  ): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

// Failures surface as exceptions with a message; onnxruntime's own log would repeat them as native noise on stderr.
if (!process.env.MERGE_STUDIO_DEBUG) ort.env.logLevel = 'fatal';

const probes = new Map<Backend, Promise<BackendStatus>>();

/** Whether a backend can run a session here (probed once per process). */
export function probeBackend(backend: Backend): Promise<BackendStatus> {
  let p = probes.get(backend);
  if (!p) {
    p = doProbe(backend);
    probes.set(backend, p);
  }
  return p;
}

async function doProbe(backend: Backend): Promise<BackendStatus> {
  const listed = ort.listSupportedBackends?.().find((b) => b.name === backend);
  if (!listed) return { backend, available: false, detail: 'not built into this onnxruntime-node' };
  // A listed but unbundled provider (CUDA) is loaded at session creation: try it rather than guess.
  const b = new GraphBuilder();
  const x = b.input('x', [2]);
  b.output(b.op('Add', [x, x]), 'y');
  // GPU providers are tried in a child process first: their native libraries write to this process's stderr
  // (Dawn's Vulkan warnings, XDG_RUNTIME_DIR errors) where no setting silences them; a child's stderr is captured.
  if (backend !== 'cpu' && !process.env.MERGE_STUDIO_DEBUG) {
    const child = await probeInChild(backend, b.encode());
    if (child && !child.available) return { backend, available: false, detail: explainUnavailable(backend, child.detail) };
  }
  try {
    const s = await ort.InferenceSession.create(b.encode(), { executionProviders: [backend] });
    const out = await s.run({ x: new ort.Tensor('float32', new Float32Array([1, 2]), [2]) });
    const y = out.y?.data as Float32Array;
    await s.release();
    if (!y || y[0] !== 2 || y[1] !== 4) return { backend, available: false, detail: 'a test session returned wrong values' };
    return { backend, available: true, detail: backend === 'cpu' ? `${ort.env.versions?.common ?? ''} CPU`.trim() : 'test session ran' };
  } catch (e) {
    return { backend, available: false, detail: explainUnavailable(backend, firstLine(e)) };
  }
}

/** The reason, with what to do where onnxruntime's own words do not say it. */
function explainUnavailable(backend: Backend, detail: string): string {
  if (backend === 'cuda' && /Failed to load shared library|libonnxruntime_providers_cuda|libcudart|libcublas|libcudnn/i.test(detail)) {
    return `${detail}: onnxruntime's CUDA provider or the CUDA 12/cuDNN 9 libraries are not installed (README, Backends: npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12)`;
  }
  return detail;
}

/**
 * Runs the one-node test session on a backend in a child Node process, its stderr captured and dropped. Undefined
 * when the child itself could not run (then the caller probes in this process).
 */
async function probeInChild(backend: Backend, model: Uint8Array): Promise<{ available: boolean; detail: string } | undefined> {
  // The copy this bundle loads (dist/ beside node_modules); from the working folder where `require` is not defined (tests).
  let ortPath: string;
  try {
    ortPath = require.resolve('onnxruntime-node');
  } catch {
    try {
      ortPath = createRequire(path.join(process.cwd(), 'package.json')).resolve('onnxruntime-node');
    } catch {
      return undefined;
    }
  }
  const script = `const ort = require(${JSON.stringify(ortPath)}); ort.env.logLevel = 'fatal';
(async () => {
  try {
    const s = await ort.InferenceSession.create(Buffer.from(process.argv[1], 'base64'), { executionProviders: [${JSON.stringify(backend)}] });
    const y = (await s.run({ x: new ort.Tensor('float32', new Float32Array([1, 2]), [2]) })).y.data;
    process.stdout.write(JSON.stringify(y[0] === 2 && y[1] === 4 ? { available: true, detail: 'test session ran' } : { available: false, detail: 'a test session returned wrong values' }));
  } catch (e) {
    process.stdout.write(JSON.stringify({ available: false, detail: String(e && e.message || e) }));
  }
  process.exit(0);
})();`;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['-e', script, Buffer.from(model).toString('base64')],
      { timeout: 60_000, maxBuffer: 1 << 20 },
      (_err, stdout) => {
        try {
          const r = JSON.parse(stdout) as { available: boolean; detail: string };
          resolve({ available: r.available, detail: r.available ? r.detail : firstLine(new Error(r.detail)) });
        } catch {
          resolve(undefined);
        }
      },
    );
  });
}

const HINTS: Record<Backend, string> = {
  cpu: '',
  webgpu:
    "WebGPU needs a GPU with a Vulkan driver (on Linux: the Vulkan loader, libvulkan1; NVIDIA's driver also needs glvnd: libglvnd0 libgl1 libglx0 libegl1)",
  cuda: 'CUDA needs an NVIDIA GPU with CUDA 12 and onnxruntime-node installed with its CUDA libraries (see README: Backends)',
};

/** Resolves `auto` to the best available backend; refuses an explicitly requested backend that is unavailable. */
export async function resolveBackend(device: Device = 'auto'): Promise<Backend> {
  if (device === 'auto') {
    for (const candidate of ['cuda', 'webgpu'] as const) {
      if ((await probeBackend(candidate)).available) return candidate;
    }
    return 'cpu';
  }
  if (!DEVICES.includes(device))
    throw new EngineError('backend-unavailable', `unknown device "${String(device)}" (use one of ${DEVICES.join(', ')})`);
  const status = await probeBackend(device);
  if (!status.available) {
    throw new EngineError(
      'backend-unavailable',
      `backend ${device} is not available here: ${status.detail}${HINTS[device] ? `. ${HINTS[device]}` : ''}. Run \`merge-studio doctor\` for details.`,
    );
  }
  return device;
}

export async function createSession(model: Uint8Array, opts: SessionOptions = {}): Promise<Session> {
  const backend = await resolveBackend(opts.device ?? 'auto');
  assertPrecisionRuns(backend, opts.precision);
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [backend],
    graphOptimizationLevel: 'all',
    // Measured (bench:align, HuBERT-base pair): with the CPU arena, peak RSS grew by ~1.6 GiB per statistics batch
    // (8.3 GiB after 4 batches); without it, 4.4 GiB and 20 % faster. Forward speed is unchanged.
    enableCpuMemArena: opts.memoryArena === true,
  };
  // With the arena, tensors are taken from it one by one: the memory pattern's one block per run held ~100 MiB more
  // at bench:align's peak for the same speed.
  if (opts.memoryArena || opts.memoryPattern === false) options.enableMemPattern = false;
  if (opts.threads && opts.threads > 0) options.intraOpNumThreads = opts.threads;
  if (opts.spinning === false) options.extra = { session: { 'intra_op.allow_spinning': '0' } };
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(model, options);
  } catch (e) {
    throw new EngineError('runtime-error', `onnxruntime could not create a ${backend} session: ${firstLine(e)}`, undefined, { cause: e });
  }
  return {
    backend,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds, outputs) {
      try {
        return (await (outputs ? session.run(feeds, outputs as ort.InferenceSession.FetchesType) : session.run(feeds))) as Record<
          string,
          ort.Tensor
        >;
      } catch (e) {
        if (/requires f16 but the device does not support it/.test(describeError(e)))
          throw new EngineError(
            'backend-unavailable',
            `this ${backend} adapter has no float16 shader support (WebGPU feature shader-f16), which runtime.precision fp16 needs: use precision fp32`,
            undefined,
            { cause: e },
          );
        throw new EngineError('runtime-error', `onnxruntime (${backend}) failed: ${firstLine(e)}`, undefined, { cause: e });
      }
    },
    release: () => session.release(),
  };
}

/** Refuses float16 graphs on the CPU backend, whose float16 kernels do not cover Conv, MatMul or LayerNormalization. */
export function assertPrecisionRuns(backend: Backend, precision: Precision | undefined): void {
  if (precision === 'fp16' && backend === 'cpu')
    throw new EngineError(
      'backend-unavailable',
      'runtime.precision fp16 needs a GPU backend (webgpu or cuda): onnxruntime has no float16 kernels for these layers on the CPU. Use precision fp32 with the cpu device.',
    );
}

export function versions(): Record<string, string> {
  return { onnxruntime: String(ort.env.versions?.common ?? 'unknown'), node: process.versions.node };
}

/** The useful part of an onnxruntime error: its first line without the source location and assertion text. */
function firstLine(e: unknown): string {
  const line = describeError(e).trim();
  const tail = line.split(/ was false\. |: \[ONNXRuntimeError\] : \d+ : [A-Z_]+ : |OrtSessionOptionsAppendExecutionProvider_\w+: /).at(-1)!;
  return tail.replace(/^\/onnxruntime_src\/\S+ /, '').trim();
}

export { ort };
