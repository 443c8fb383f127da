#!/usr/bin/env python3
"""Checks a model.onnx written by `output_onnx: true` with the ONNX project's own checker, as tools that consume
ONNX files (converters, optimisers, other runtimes) check it.

Dev-time only (the product never runs Python). On Debian: apt-get install python3-onnx, then
    /usr/bin/python3 scripts/check-onnx-model.py OUTPUT_FOLDER

What it checks, each a failure when it does not hold:
  1. onnx.checker.check_model(full_check=True): a valid model (IR version, opset, every node against its schema);
  2. the interface: one input `input_values`, float32 [batch, samples]; the outputs `last_hidden_state` and
     `hidden_states.0` … `hidden_states.<num_hidden_layers>` (config.json beside it), in that order;
  3. strict shape inference agrees with the declared outputs: float32 [batch, frames, hidden_size].
The numbers themselves are checked against the engine's forward by test/unit/onnx-export.test.ts.
"""
import json
import os
import sys

import onnx

FLOAT = onnx.TensorProto.FLOAT


def fail(msg: str) -> None:
    print(f'FAIL {msg}')
    sys.exit(1)


def signature(value: onnx.ValueInfoProto) -> tuple:
    t = value.type.tensor_type
    return value.name, t.elem_type, [d.dim_param or d.dim_value for d in t.shape.dim]


def main() -> None:
    if len(sys.argv) != 2:
        fail('usage: check-onnx-model.py OUTPUT_FOLDER')
    folder = sys.argv[1]
    for name in ('config.json', 'model.onnx'):
        if not os.path.isfile(os.path.join(folder, name)):
            fail(f'no {name} in {folder} (a run with output_onnx: true writes both)')
    with open(os.path.join(folder, 'config.json')) as f:
        config = json.load(f)
    hidden, layers = config['hidden_size'], config['num_hidden_layers']
    model = onnx.load(os.path.join(folder, 'model.onnx'))

    onnx.checker.check_model(model, full_check=True)
    print(f'ok   onnx.checker (full check), IR {model.ir_version}, opset {[o.version for o in model.opset_import]}')

    inputs = [signature(i) for i in model.graph.input]
    if inputs != [('input_values', FLOAT, ['batch', 'samples'])]:
        fail(f'inputs {inputs}')
    names = ['last_hidden_state', *(f'hidden_states.{k}' for k in range(layers + 1))]
    want = [(n, FLOAT, ['batch', 'frames', hidden]) for n in names]
    if [signature(o) for o in model.graph.output] != want:
        fail(f'outputs {[signature(o) for o in model.graph.output]}, expected {want}')
    print(f'ok   input_values float32 [batch, samples] → {len(names)} outputs float32 [batch, frames, {hidden}]')

    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    if [signature(o) for o in inferred.graph.output] != want:
        fail(f'shape inference gives {[signature(o) for o in inferred.graph.output]}')
    print('ok   strict shape inference agrees')


if __name__ == '__main__':
    main()
