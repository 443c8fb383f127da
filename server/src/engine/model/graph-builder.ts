/**
 * A small ONNX graph builder: nodes with generated unique value names, float initializers that reference the
 * weights' memory (no copy until protobuf encoding), int64/scalar constants deduplicated, typed graph inputs/outputs.
 *
 * With `precision: 'fp16'` the graph computes in half precision while its interface stays float32: weights and float
 * scalars become float16 initializers, each float input is cast to float16 where it enters and each float output is
 * cast back where it leaves, and `float32(v)` marks values that must be reduced in float32 (statistics).
 */
import type { Precision } from '../recipe/schema';
import { toHalf } from './half';
import { AttributeType, DataType, ModelProto } from './onnx-proto';
import type { Tensor } from './tensor';

export const OPSET = 17;

/**
 * Weights a graph takes as inputs instead of holding them: `linear`, the torch Linear weights (nearly all of an
 * encoder's, which onnxruntime's CPU MatMul reads in place); `all`, every weight, so that the graph holds none and
 * layers of the same shape build the same graph (model/pair-graph.ts runs them in one session).
 */
export type FeedWeights = 'linear' | 'all';

/** An attribute value: integer, integer list, string, or a float wrapped as {f}. */
export type Attr = number | number[] | string | { f: number };

type Dim = number | string;

export class GraphBuilder {
  private readonly nodes: object[] = [];
  private readonly initializers: object[] = [];
  private readonly inputs: object[] = [];
  private readonly outputs: object[] = [];
  private readonly outputNames = new Set<string>();
  private readonly constants = new Map<string, string>();
  private readonly used = new Set<string>();
  private counter = 0;
  /** float16 compute (GPU backends only: onnxruntime's CPU backend has no half kernels for these ops). */
  readonly half: boolean;
  /** Which weights become graph inputs fed at run time (see weightTransposed and weight); float32 graphs only. */
  private readonly feed: FeedWeights | undefined;
  private readonly feeds = new Map<string, Tensor>();

  constructor(opts: { precision?: Precision; feedWeights?: FeedWeights } = {}) {
    this.half = opts.precision === 'fp16';
    this.feed = this.half ? undefined : opts.feedWeights;
  }

  /** A fresh value name derived from a hint. */
  fresh(hint: string): string {
    let name = hint;
    while (this.used.has(name)) name = `${hint}_${++this.counter}`;
    this.used.add(name);
    return name;
  }

  /** A graph input; float32 unless `elemType` says otherwise (e.g. DataType.DOUBLE for float64 small solves). */
  input(name: string, dims: Dim[], elemType: number = DataType.FLOAT): string {
    this.used.add(name);
    this.inputs.push({ name, type: tensorType(elemType, dims) });
    if (this.half && elemType === DataType.FLOAT) return this.op('Cast', [name], { to: DataType.FLOAT16 }, `${name}_f16`);
    return name;
  }

  /** `value` in float32: a Cast in a half-precision graph (sums and moments must not accumulate in float16). */
  float32(value: string): string {
    return this.half ? this.op('Cast', [value], { to: DataType.FLOAT }, `${value}_f32`) : value;
  }

  /**
   * Declares `value` as a graph output called `name` (adding an Identity when the name differs or is taken). `dims`
   * declares its shape (symbolic names allowed): a model file for others needs it (onnx.checker requires it);
   * the engine's own sessions do without.
   */
  output(value: string, name: string = value, elemType: number = DataType.FLOAT, dims?: Dim[]): string {
    let out = value;
    if (this.half && elemType === DataType.FLOAT) {
      // A Cast float32 → float32 (a value already marked float32) is removed by onnxruntime's optimiser.
      out = this.fresh(name === value ? `${name}_out` : name);
      this.nodes.push({ opType: 'Cast', input: [value], output: [out], name: `${out}/cast`, attribute: [attribute('to', DataType.FLOAT)] });
    } else if (name !== value || this.outputNames.has(value)) {
      out = this.fresh(name);
      this.nodes.push({ opType: 'Identity', input: [value], output: [out], name: `${out}/identity` });
    }
    this.outputNames.add(out);
    this.outputs.push({ name: out, type: tensorType(elemType, dims) });
    return out;
  }

  /**
   * A float32 initializer holding a view of the tensor's memory (float16 bits, a converted copy, in a half graph), or
   * with `feedWeights: 'all'` a graph input over that memory (see weightFeeds).
   */
  weight(hint: string, t: Tensor): string {
    const name = this.fresh(hint);
    if (this.feed === 'all') return this.feedInput(name, t);
    const d = this.half ? toHalf(t.data) : t.data;
    this.initializers.push({
      name,
      dims: [...t.shape],
      dataType: this.half ? DataType.FLOAT16 : DataType.FLOAT,
      rawData: new Uint8Array(d.buffer, d.byteOffset, d.byteLength),
    });
    return name;
  }

  /**
   * A float32 initializer holding the transpose of a 2-D tensor (torch Linear weights [out, in] → [in, out] for
   * MatMul). The copy lives only until encode(); a Transpose node on the constant would instead leave onnxruntime
   * holding both layouts while it folds.
   */
  weightTransposed(hint: string, t: Tensor): string {
    if (this.feed) {
      // A graph input over the caller's memory: onnxruntime's CPU backend reads it in place at each run (its MatMul
      // takes the Transpose as a transposed operand), so the session holds no copy of the weight; see weightFeeds.
      const name = this.feedInput(this.fresh(hint), t);
      return this.op('Transpose', [name], { perm: [1, 0] }, `${name}_t`);
    }
    const [rows, cols] = t.shape as [number, number];
    const out = new Float32Array(rows * cols);
    const src = t.data;
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      for (let c = 0; c < cols; c++) out[c * rows + r] = src[base + c]!;
    }
    return this.weight(hint, { shape: [cols, rows], data: out });
  }

  /** The weights the graph takes as inputs (`feedWeights`), by input name: feed them with every run. */
  get weightFeeds(): ReadonlyMap<string, Tensor> {
    return this.feeds;
  }

  private feedInput(name: string, t: Tensor): string {
    this.inputs.push({ name, type: tensorType(DataType.FLOAT, [...t.shape]) });
    this.feeds.set(name, t);
    return name;
  }

  int64s(values: readonly number[]): string {
    const key = `i64:${values.join(',')}`;
    const hit = this.constants.get(key);
    if (hit) return hit;
    const name = this.fresh(`const_i64_${values.join('_').replace(/-/g, 'm')}`);
    const raw = new BigInt64Array(values.map((v) => BigInt(v)));
    this.initializers.push({ name, dims: [values.length], dataType: DataType.INT64, rawData: new Uint8Array(raw.buffer) });
    this.constants.set(key, name);
    return name;
  }

  scalar(value: number): string {
    const key = `f32:${value}`;
    const hit = this.constants.get(key);
    if (hit) return hit;
    const name = this.fresh(`const_f32_${this.constants.size}`);
    const raw = this.half ? new Uint8Array(toHalf(new Float32Array([value])).buffer) : new Uint8Array(new Float32Array([value]).buffer);
    this.initializers.push({ name, dims: [], dataType: this.half ? DataType.FLOAT16 : DataType.FLOAT, rawData: raw });
    this.constants.set(key, name);
    return name;
  }

  op(opType: string, inputs: string[], attrs: Record<string, Attr> = {}, hint = opType.toLowerCase()): string {
    return this.opN(opType, inputs, 1, attrs, hint)[0]!;
  }

  opN(opType: string, inputs: string[], nOutputs: number, attrs: Record<string, Attr> = {}, hint = opType.toLowerCase()): string[] {
    const outputs = Array.from({ length: nOutputs }, (_, i) => this.fresh(nOutputs > 1 ? `${hint}_${i}` : hint));
    this.nodes.push({
      opType,
      input: inputs,
      output: outputs,
      name: `${outputs[0]}/${opType}`,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outputs;
  }

  /** Serialises the graph as an ONNX ModelProto. */
  encode(graphName = 'merge_studio'): Uint8Array {
    const model = ModelProto.fromObject({
      irVersion: 8,
      producerName: 'merge-studio',
      producerVersion: '0.1.0',
      opsetImport: [{ domain: '', version: OPSET }],
      graph: { name: graphName, node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs },
    });
    return ModelProto.encode(model).finish();
  }
}

function tensorType(elemType: number, dims: Dim[] | undefined): object {
  const tensor: Record<string, unknown> = { elemType };
  if (dims) tensor.shape = { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  return { tensorType: tensor };
}

function attribute(name: string, v: Attr): object {
  if (typeof v === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: AttributeType.INTS, ints: v };
  if (typeof v === 'object') return { name, type: AttributeType.FLOAT, f: v.f };
  if (!Number.isInteger(v)) throw new TypeError(`attribute ${name}: ${v} is not an integer; wrap floats as {f: value}`);
  return { name, type: AttributeType.INT, i: v };
}
