#!/usr/bin/env python3
"""Checks that a merged output folder is a drop-in replacement for its anchor, in plain PyTorch.

Dev-time only (the product never runs Python). On Debian: apt-get install python3-torch, then
    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/check-output-loads.py [OUTPUT] [ANCHOR] [OTHER]
(defaults: the example run, `npm start`: examples/out/speech-music, examples/models/speech-encoder, …/music-encoder).

What it checks, each a failure when it does not hold:
  1. the output holds exactly the anchor's tensor names, with the anchor's shapes (nothing dropped, nothing added);
  2. the plain-torch HuBERT module of scripts/train-example-encoders.py (the module whose forward matches transformers'
     HubertModel, checked there against the hf-reference fixture) loads it with load_state_dict(strict=True): no
     missing and no unexpected keys, and its forward gives finite hidden states;
  3. masked_spec_embed is merged in the hidden space: λ·anchor + (1 − λ)·other[residual permutation] (λ from the
     report, the permutation from permutations.json; identity when the residual stream was not permuted);
  4. config.json and, when the anchor has one, preprocessor_config.json are copied.
"""
import importlib.util
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
_spec = importlib.util.spec_from_file_location('train_example_encoders', os.path.join(ROOT, 'scripts', 'train-example-encoders.py'))
assert _spec and _spec.loader
tee = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tee)


def fail(msg: str) -> None:
    print(f'FAIL {msg}')
    sys.exit(1)


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, 'examples', 'out', 'speech-music')
    anchor = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, 'examples', 'models', 'speech-encoder')
    other = sys.argv[3] if len(sys.argv) > 3 else os.path.join(ROOT, 'examples', 'models', 'music-encoder')
    merged = tee.read_safetensors(os.path.join(out, 'model.safetensors'))
    a = tee.read_safetensors(os.path.join(anchor, 'model.safetensors'))
    b = tee.read_safetensors(os.path.join(other, 'model.safetensors'))

    # 1. the anchor's names and shapes
    missing, extra = sorted(set(a) - set(merged)), sorted(set(merged) - set(a))
    if missing or extra:
        fail(f'tensor names differ from the anchor: missing {missing}, unexpected {extra}')
    for k in a:
        if tuple(a[k].shape) != tuple(merged[k].shape):
            fail(f'{k} is {merged[k].shape} in the output, {a[k].shape} in the anchor')
    print(f'ok   {len(merged)} tensors, the same names and shapes as the anchor')

    # 2. strict load into the plain-torch module, then a forward pass
    with open(os.path.join(out, 'config.json')) as f:
        config = json.load(f)
    model = tee.HubertModel(config)
    renamed = {{tee.HF_G: tee.POS_G, tee.HF_V: tee.POS_V}.get(k, k): torch.from_numpy(v.copy()) for k, v in merged.items()}
    result = model.load_state_dict(renamed, strict=True)
    print(f'ok   load_state_dict(strict=True): {result}')
    model.eval()
    with torch.no_grad():
        wav = torch.from_numpy(np.random.default_rng(0).standard_normal((1, config.get('sampling_rate', 16000)), dtype=np.float32))
        _, hidden = model(wav)
    if not all(torch.isfinite(h).all() for h in hidden):
        fail('the forward pass gave non-finite hidden states')
    print(f'ok   forward: {len(hidden)} hidden states of shape {tuple(hidden[-1].shape)}, all finite')

    # 3. masked_spec_embed merged in the hidden space
    if 'masked_spec_embed' in a and 'masked_spec_embed' in b:
        with open(os.path.join(out, 'report.json')) as f:
            report = json.load(f)
        lam = report['merge']['lambda']
        if not isinstance(lam, (int, float)):
            fail(f'this check needs a scalar merge.lambda, the report has {lam!r}')
        with open(os.path.join(out, 'permutations.json')) as f:
            groups = json.load(f)['groups']
        perm = np.array(groups['residual']) if 'residual' in groups else np.arange(a['masked_spec_embed'].shape[0])
        expected = lam * a['masked_spec_embed'] + (1 - lam) * b['masked_spec_embed'][perm]
        err = float(np.max(np.abs(expected - merged['masked_spec_embed'])))
        if err > 1e-6:
            fail(f'masked_spec_embed is not λ·anchor + (1 − λ)·other[residual]: max |difference| {err:.3g}')
        print(f'ok   masked_spec_embed = {lam}·anchor + {1 - lam:g}·other[{"residual permutation" if "residual" in groups else "identity"}] (max |diff| {err:.1e})')

    # 4. configs copied
    for name in ('config.json', 'preprocessor_config.json'):
        if os.path.exists(os.path.join(anchor, name)) and not os.path.exists(os.path.join(out, name)):
            fail(f'{name} of the anchor was not copied')
    print('ok   config.json' + (' and preprocessor_config.json' if os.path.exists(os.path.join(anchor, 'preprocessor_config.json')) else '') + ' copied')


if __name__ == '__main__':
    main()
