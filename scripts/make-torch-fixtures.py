#!/usr/bin/env python3
"""Writes test/fixtures/torch: small checkpoints made by a real torch.save, for the PyTorch reader's tests.

Dev-time only (the product never runs Python). On Debian: apt-get install python3-torch, then
    /usr/bin/python3 scripts/make-torch-fixtures.py
Deterministic: re-running rewrites the same tensors (zip timestamps aside).

Outputs
  state-{f32,f16,bf16}.bin, state-f32-p4.bin, state-f32-p5.bin  plain state dicts (protocol 2 unless named)
  state-f32-bigendian.bin  state-f32 re-zipped by Python's zipfile: byteorder "big", swapped storages, deflated data.pkl
  noncontig.bin        transposed / sliced / strided / expanded / permuted views, a scalar, an empty and an int64 tensor
  sharded/             pytorch_model.bin.index.json + two shards of the f32 state dict
  expected.json        every tensor above, contiguous row-major, as float64 lists
  hubert-bin/          test/fixtures/hf-reference/hubert-postln-a re-saved through torch with Hub-style names:
                       `hubert.` prefix and pos-conv `weight_g`/`weight_v` (the .bin twin of that safetensors model)
  mert-v1-style/       the same weights, first layer only, named as MERT's MERTModel names them (no prefix, weight_g/v,
                       masked_spec_embed) with a MERT-v1-95M-style config (mert_model, 24 kHz) and preprocessor_config
  hostile/             evil-reduce.bin (a __reduce__ to os.system), unknown-global.bin (argparse.Namespace),
                       offset-past-end.bin (a view past its storage), expand-bomb.bin (a stride-0 view of 8 GiB),
                       truncated.bin, legacy.bin (pre-1.6 format), deflated-storage.bin (a compressed storage entry)
"""
import argparse
import array
import collections
import json
import os
import shutil
import struct
import sys
import zipfile

import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'torch')
REF = os.path.join(ROOT, 'test', 'fixtures', 'hf-reference', 'hubert-postln-a')
# What the hostile pickle would create if it were ever run; the tests assert it never appears.
MARKER = '/tmp/merge-studio-torch-fixture-pwned'

SAFETENSORS_DTYPES = {'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16, 'I64': torch.int64}


def read_safetensors(path):
    """A tiny safetensors reader (no safetensors package needed)."""
    with open(path, 'rb') as f:
        data = f.read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = collections.OrderedDict()
    for name, e in header.items():
        if name == '__metadata__':
            continue
        b, end = e['data_offsets']
        raw = bytearray(data[8 + n + b:8 + n + end])
        out[name] = torch.frombuffer(raw, dtype=SAFETENSORS_DTYPES[e['dtype']]).reshape(e['shape']).clone()
    return out


def swap32(data):
    a = array.array('f', data)
    a.byteswap()
    return a.tobytes()


def state_dict():
    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict()
    sd['encoder.layers.0.attention.q_proj.weight'] = torch.randn(4, 3, generator=g)
    sd['encoder.layers.0.attention.q_proj.bias'] = torch.randn(4, generator=g)
    sd['feature_extractor.conv_layers.0.conv.weight'] = torch.randn(2, 1, 5, generator=g)
    sd['encoder.layer_norm.weight'] = torch.linspace(-1, 1, 7)
    return sd


def noncontig():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = collections.OrderedDict()
    sd['base'] = base
    sd['transposed'] = base.t()
    sd['sliced'] = base[1:3, 2:5]
    sd['strided'] = base[:, ::2]
    sd['expanded'] = torch.tensor([1.0, 2.0, 3.0]).expand(4, 3)
    sd['permuted'] = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5).permute(2, 0, 1)
    sd['row_of_big'] = torch.arange(100, dtype=torch.float32).reshape(10, 10)[7]
    sd['half_transposed'] = torch.arange(6, dtype=torch.float16).reshape(2, 3).t()
    sd['scalar'] = torch.tensor(3.5)
    sd['empty'] = torch.zeros(0, 3)
    sd['int64'] = torch.arange(5)
    for k, v in sd.items():
        if k not in ('base', 'row_of_big', 'scalar', 'empty', 'int64') and v.is_contiguous():
            raise SystemExit(f'{k} should be a non-contiguous view')
    return sd


def expected(sd):
    return {k: {'dtype': str(v.dtype).replace('torch.', ''), 'shape': list(v.shape), 'values': v.contiguous().flatten().double().tolist()} for k, v in sd.items()}


class Evil:
    def __reduce__(self):
        return (os.system, (f'touch {MARKER}',))


class PastEnd:
    """A tensor view whose offset runs past its storage: torch never writes one, a hostile file can."""

    def __init__(self):
        self.storage = torch.zeros(8).storage()

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, (self.storage, 100, (4,), (1,), False, collections.OrderedDict()))


class ExpandBomb:
    """A 4-byte storage viewed with stride 0 as 2**31 elements: 8 GiB if materialised."""

    def __init__(self):
        self.storage = torch.zeros(1).storage()

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, (self.storage, 0, (2 ** 31,), (0,), False, collections.OrderedDict()))


def save(obj, *parts, **kw):
    path = os.path.join(OUT, *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(obj, path, **kw)
    return path


def main():
    argparse.ArgumentParser(description=__doc__).parse_args()
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    exp = {}

    sd = state_dict()
    save(sd, 'state-f32.bin')
    save(sd, 'state-f32-p4.bin', pickle_protocol=4)
    save(sd, 'state-f32-p5.bin', pickle_protocol=5)
    exp['state-f32'] = expected(sd)
    half = collections.OrderedDict((k, v.half()) for k, v in sd.items())
    save(half, 'state-f16.bin')
    exp['state-f16'] = expected(half)
    bf = collections.OrderedDict((k, v.bfloat16()) for k, v in sd.items())
    save(bf, 'state-bf16.bin')
    exp['state-bf16'] = expected(bf)

    nc = noncontig()
    save(nc, 'noncontig.bin')
    exp['noncontig'] = expected(nc)

    names = list(sd)
    shards = [collections.OrderedDict((k, sd[k]) for k in names[:2]), collections.OrderedDict((k, sd[k]) for k in names[2:])]
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = f'pytorch_model-{i + 1:05d}-of-{len(shards):05d}.bin'
        save(shard, 'sharded', fname)
        weight_map.update({k: fname for k in shard})
    with open(os.path.join(OUT, 'sharded', 'pytorch_model.bin.index.json'), 'w') as f:
        json.dump({'metadata': {'total_size': sum(v.numel() * 4 for v in sd.values())}, 'weight_map': weight_map}, f, indent=2)

    # Written by Python's zipfile rather than torch: a big-endian archive (byteorder "big", storages byte-swapped)
    # with a deflated data.pkl; and one whose storage is deflated, which torch never writes.
    src = os.path.join(OUT, 'state-f32.bin')
    with zipfile.ZipFile(src) as z:
        entries = {i.filename: z.read(i.filename) for i in z.infolist()}
    big = os.path.join(OUT, 'state-f32-bigendian.bin')
    with zipfile.ZipFile(big, 'w', zipfile.ZIP_STORED) as z:
        for name, data in entries.items():
            if '/data/' in name:
                data = swap32(data)
            z.writestr(name.replace('state-f32/', 'state-f32-bigendian/'), data,
                       compress_type=zipfile.ZIP_DEFLATED if name.endswith('data.pkl') else zipfile.ZIP_STORED)
        z.writestr('state-f32-bigendian/byteorder', 'big')
    os.makedirs(os.path.join(OUT, 'hostile'), exist_ok=True)
    with zipfile.ZipFile(os.path.join(OUT, 'hostile', 'deflated-storage.bin'), 'w', zipfile.ZIP_STORED) as z:
        for name, data in entries.items():
            z.writestr(name.replace('state-f32/', 'deflated-storage/'), data,
                       compress_type=zipfile.ZIP_DEFLATED if '/data/' in name else zipfile.ZIP_STORED)

    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump(exp, f)

    # The .bin twin of the transformers reference model, with the names Hub checkpoints use.
    ref = read_safetensors(os.path.join(REF, 'model.safetensors'))
    hub = collections.OrderedDict()
    for k, v in ref.items():
        k = k.replace('parametrizations.weight.original0', 'weight_g').replace('parametrizations.weight.original1', 'weight_v')
        hub['hubert.' + k] = v
    os.makedirs(os.path.join(OUT, 'hubert-bin'))
    shutil.copy(os.path.join(REF, 'config.json'), os.path.join(OUT, 'hubert-bin', 'config.json'))
    save(hub, 'hubert-bin', 'pytorch_model.bin')

    # MERT-v1-95M-style: MERTModel is the top-level module, so its names carry no prefix.
    mert = collections.OrderedDict()
    mert['masked_spec_embed'] = torch.zeros(ref['encoder.layer_norm.weight'].shape[0])
    for k, v in hub.items():
        k = k[len('hubert.'):]
        if k.startswith('encoder.layers.') and not k.startswith('encoder.layers.0.'):
            continue
        mert[k] = v
    with open(os.path.join(REF, 'config.json')) as f:
        cfg = json.load(f)
    cfg.update({
        'architectures': ['MERTModel'],
        'auto_map': {'AutoConfig': 'configuration_MERT.MERTConfig', 'AutoModel': 'modeling_MERT.MERTModel'},
        'model_type': 'mert_model',
        'num_hidden_layers': 1,
        'feature_extractor_cqt': False,
        'feature_extractor_cqt_bins': 336,
        'deepnorm': False,
        'attention_relax': -1.0,
        'sample_rate': 24000,
    })
    os.makedirs(os.path.join(OUT, 'mert-v1-style'))
    with open(os.path.join(OUT, 'mert-v1-style', 'config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(OUT, 'mert-v1-style', 'preprocessor_config.json'), 'w') as f:
        json.dump({'do_normalize': True, 'feature_extractor_type': 'Wav2Vec2FeatureExtractor', 'feature_size': 1, 'padding_side': 'right',
                   'padding_value': 0, 'return_attention_mask': True, 'sampling_rate': 24000}, f, indent=2)
    save(mert, 'mert-v1-style', 'pytorch_model.bin')

    # Hostile files: each must be refused without running anything.
    small = collections.OrderedDict(weight=torch.ones(2))
    save({'weight': torch.ones(2), 'payload': Evil()}, 'hostile', 'evil-reduce.bin')
    save({'weight': torch.ones(2), 'args': argparse.Namespace(lr=0.1)}, 'hostile', 'unknown-global.bin')
    save({'weight': PastEnd()}, 'hostile', 'offset-past-end.bin')
    save({'weight': ExpandBomb()}, 'hostile', 'expand-bomb.bin')
    full = save(small, 'hostile', 'full.bin')
    with open(full, 'rb') as f:
        data = f.read()
    os.remove(full)
    with open(os.path.join(OUT, 'hostile', 'truncated.bin'), 'wb') as f:
        f.write(data[: len(data) * 2 // 3])
    save(small, 'hostile', 'legacy.bin', _use_new_zipfile_serialization=False)

    for dirpath, _, files in sorted(os.walk(OUT)):
        for name in sorted(files):
            p = os.path.join(dirpath, name)
            with open(p, 'rb') as f:
                zip64 = b'PK\x06\x06' in f.read()
            print(f'{os.path.relpath(p, ROOT)}  {os.path.getsize(p)} bytes{"  (zip64 directory)" if zip64 else ""}')
    print(f'torch {torch.__version__}')


if __name__ == '__main__':
    sys.exit(main())
