/**
 * A float64 matrix product in onnxruntime, for the least-squares refit's small dense algebra (a weight matrix times
 * a covariance, p up to a few thousand): one session with dynamic shapes, reused for every product of a merge.
 */
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../model/graph-builder';
import { DataType } from '../../model/onnx-proto';
import { createSession, type Session, type SessionOptions } from '../../model/runtime';

export class Gemm64 {
  private constructor(private readonly session: Session) {}

  static async create(opts: SessionOptions): Promise<Gemm64> {
    const b = new GraphBuilder();
    const x = b.input('a', ['m', 'k'], DataType.DOUBLE);
    const y = b.input('b', ['k', 'n'], DataType.DOUBLE);
    b.output(b.op('MatMul', [x, y]), 'product', DataType.DOUBLE);
    return new Gemm64(await createSession(b.encode('merge_studio_gemm64'), opts));
  }

  /** A (m×k) · B (k×n), row-major, in float64. */
  async matmul(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Promise<Float64Array> {
    const out = await this.session.run({ a: new ort.Tensor('float64', a, [m, k]), b: new ort.Tensor('float64', b, [k, n]) });
    return out.product!.data as Float64Array;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
