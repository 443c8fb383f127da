#!/usr/bin/env python3
"""Train the two example encoders under examples/models (dev-time; the output is committed, the product never runs this).

    nice -n 10 python3 scripts/train-example-encoders.py              # check, train both, save, verify, probe
    python3 scripts/train-example-encoders.py --check-only            # only the transformers-equivalence check
    python3 scripts/train-example-encoders.py --probe-only            # re-run the Python linear probes on the saved models

Debian's torch 1.13 links the reference BLAS (slow for nn.Linear); the committed models were trained with
OpenBLAS swapped in for this process only, without installing it:
    apt-get download libopenblas0-serial && dpkg -x libopenblas0-serial_*.deb /tmp/ob
    LD_LIBRARY_PATH=/tmp/ob/usr/lib/x86_64-linux-gnu/openblas-serial nice -n 10 python3 scripts/train-example-encoders.py
(any BLAS gives the same recipe; bitwise-identical weights need the same torch and BLAS build).

Needs Debian's python3-torch (CPU) and numpy, plus espeak-ng and sox for the speech pre-training audio. No
transformers, no safetensors package: the HuBERT model below is written in plain torch with Hugging Face's module
names and semantics, and checked against test/fixtures/hf-reference/hubert-postln-a (made by transformers) before
anything is trained; the safetensors file is written by `write_safetensors` below.

Recipe (see examples/README.md): each encoder is a HubertModel (post-LN, group-norm conv front end, conv 7×128,
hidden 128, 4 layers, 4 heads, FFN 512, positional conv 16 taps / 8 groups) trained from its own random
initialisation (seed 1 for speech, seed 2 for music; transformers' init scheme) on its own domain only, with a
HuBERT/MERT-style masked-prediction objective on hand-made frame features (speech: 40 log-mel bands; music: a 73-band
semitone-spaced log spectrum + 12-bin chroma, in the spirit of MERT's CQT target), both level-free (per-frame mean
removed):
  - at every frame, the MSE of a linear regression of the standardised feature (MERT's reconstruction loss) plus
    0.25 × the cross-entropy of its k-means cluster (k = 64, HuBERT's iteration-1 target);
  - spans of 5 frames are masked (the projected features replaced by `masked_spec_embed`), ~40 % of frames;
    masked frames weigh α = 0.5, unmasked 1 − α (HuBERT's L = α·L_m + (1 − α)·L_u).
Why not HuBERT's α = 1 with cluster targets alone: for a budget of 600 steps of 8 × 0.64 s crops on a CPU, a dense
regression signal at every frame and band was chosen as the quickest teacher for a raw-waveform front end; the
cluster cross-entropy keeps HuBERT's discrete target in the objective. (α = 1 with clusters alone was tried only
before the oneDNN gradient fix below, when nothing trained, and not since.)
AdamW (lr 1e-3, 10 % warm-up, cosine decay, weight decay 0.01), gradient clipping at 1, no dropout.
The pre-training audio is generated here (other seeds, texts and voices than anything under examples/eval or
examples/probe): 500 espeak-ng phrases of 2-5 words in voices that the `voices` task does not use (speech), 500 clips of
1-4 notes or triads over 7 timbres (the 6 of the tasks + an inharmonic bell), midi 33-96 (music).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
# Debian's torch 1.13 (python3-torch) returns garbage weight gradients for conv1d through oneDNN (values of 1e4 to
# 1e13, or inf, at random); the native convolution is correct. Forward outputs were never affected.
torch.backends.mkldnn.enabled = False

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
_spec = importlib.util.spec_from_file_location('make_example_data', os.path.join(ROOT, 'scripts', 'make-example-data.py'))
assert _spec and _spec.loader
data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data)

SR = data.SR
HOP = 320  # samples per encoder frame (product of the conv strides)

# ----------------------------------------------------------------------------------------------------------------
# Config (the field set of a transformers HubertConfig, as in test/fixtures/hf-reference/hubert-postln-a)
# ----------------------------------------------------------------------------------------------------------------


def make_config(conv_dim: int = 128, hidden: int = 128, layers: int = 4, heads: int = 4, ffn: int = 512,
                pos_k: int = 16, pos_groups: int = 8) -> dict:
    return {
        'activation_dropout': 0.1, 'apply_spec_augment': True, 'architectures': ['HubertModel'],
        'attention_dropout': 0.1, 'bos_token_id': 1, 'classifier_proj_size': 256, 'conv_bias': False,
        'conv_dim': [conv_dim] * 7, 'conv_kernel': [10, 3, 3, 3, 3, 2, 2], 'conv_pos_batch_norm': False,
        'conv_stride': [5, 2, 2, 2, 2, 2, 2], 'ctc_loss_reduction': 'sum', 'ctc_zero_infinity': False,
        'do_stable_layer_norm': False, 'dtype': 'float32', 'eos_token_id': 2, 'feat_extract_activation': 'gelu',
        'feat_extract_norm': 'group', 'feat_proj_dropout': 0.0, 'feat_proj_layer_norm': True, 'final_dropout': 0.1,
        'hidden_act': 'gelu', 'hidden_dropout': 0.1, 'hidden_size': hidden, 'initializer_range': 0.02,
        'intermediate_size': ffn, 'layer_norm_eps': 1e-05, 'layerdrop': 0.1, 'mask_feature_length': 10,
        'mask_feature_min_masks': 0, 'mask_feature_prob': 0.0, 'mask_time_length': 10, 'mask_time_min_masks': 2,
        'mask_time_prob': 0.05, 'model_type': 'hubert', 'num_attention_heads': heads,
        'num_conv_pos_embedding_groups': pos_groups, 'num_conv_pos_embeddings': pos_k, 'num_feat_extract_layers': 7,
        'num_hidden_layers': layers, 'pad_token_id': 0, 'transformers_version': '5.17.0',
        'use_weighted_layer_sum': False, 'vocab_size': 32,
    }


# ----------------------------------------------------------------------------------------------------------------
# HubertModel in plain torch, module names as transformers' (state_dict keys = HF tensor names, except the
# positional conv's weight norm, held as weight_g/weight_v and renamed on save/load)
# ----------------------------------------------------------------------------------------------------------------


class ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, s: int, group_norm: bool, bias: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, k, stride=s, bias=bias)
        if group_norm:
            self.layer_norm = nn.GroupNorm(cout, cout, affine=True)
        self.group_norm = group_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.group_norm:
            x = self.layer_norm(x)
        return F.gelu(x)


class FeatureExtractor(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        dims = [1] + c['conv_dim']
        self.conv_layers = nn.ModuleList(
            ConvLayer(dims[i], dims[i + 1], c['conv_kernel'][i], c['conv_stride'][i], i == 0, c['conv_bias'])
            for i in range(c['num_feat_extract_layers']))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:  # [B, N] → [B, C, T]
        x = wav[:, None, :]
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(c['conv_dim'][-1], eps=c['layer_norm_eps'])
        self.projection = nn.Linear(c['conv_dim'][-1], c['hidden_size'])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(x))


class WeightNormConv(nn.Module):
    """Conv1d(D, D, K, padding K//2, groups G) with weight = g · v / ‖v‖, the norm over all dims but dim 2."""

    def __init__(self, d: int, k: int, groups: int) -> None:
        super().__init__()
        self.k, self.groups = k, groups
        self.weight_v = nn.Parameter(torch.empty(d, d // groups, k))
        self.weight_g = nn.Parameter(torch.empty(1, 1, k))
        self.bias = nn.Parameter(torch.zeros(d))

    def weight(self) -> torch.Tensor:
        return self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight(), self.bias, padding=self.k // 2, groups=self.groups)


class PosConvEmbed(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        self.conv = WeightNormConv(c['hidden_size'], c['num_conv_pos_embeddings'], c['num_conv_pos_embedding_groups'])
        self.remove = 1 if c['num_conv_pos_embeddings'] % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D]
        y = self.conv(x.transpose(1, 2))
        if self.remove:
            y = y[:, :, :-self.remove]
        return F.gelu(y).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        split = lambda y: y.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731
        q = split(self.q_proj(x)) * self.head_dim ** -0.5
        k, v = split(self.k_proj(x)), split(self.v_proj(x))
        a = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return self.out_proj((a @ v).transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    def __init__(self, d: int, ffn: int) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(d, ffn)
        self.output_dense = nn.Linear(ffn, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        d = c['hidden_size']
        self.attention = Attention(d, c['num_attention_heads'])
        self.layer_norm = nn.LayerNorm(d, eps=c['layer_norm_eps'])
        self.feed_forward = FeedForward(d, c['intermediate_size'])
        self.final_layer_norm = nn.LayerNorm(d, eps=c['layer_norm_eps'])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class Encoder(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        self.pos_conv_embed = PosConvEmbed(c)
        self.layer_norm = nn.LayerNorm(c['hidden_size'], eps=c['layer_norm_eps'])
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c['num_hidden_layers']))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer_norm(x + self.pos_conv_embed(x))
        hidden = [x]
        for layer in self.layers:
            x = layer(x)
            hidden.append(x)
        return hidden


class HubertModel(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        assert c['model_type'] == 'hubert' and not c['do_stable_layer_norm'] and c['feat_extract_norm'] == 'group'
        self.config = c
        self.feature_extractor = FeatureExtractor(c)
        self.feature_projection = FeatureProjection(c)
        self.encoder = Encoder(c)
        self.masked_spec_embed = nn.Parameter(torch.empty(c['hidden_size']).uniform_())

    def forward(self, wav: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """wav [B, N] → (conv features [B, T, C], hidden_states: L+1 tensors [B, T, D], as transformers')."""
        feats = self.feature_extractor(wav).transpose(1, 2)
        x = self.feature_projection(feats)
        if mask is not None:
            x = torch.where(mask[..., None], self.masked_spec_embed.to(x.dtype), x)
        return feats, self.encoder(x)


def init_like_transformers(model: HubertModel, seed: int) -> None:
    """HubertPreTrainedModel._init_weights: Linear N(0, 0.02), LayerNorm/GroupNorm (1, 0), conv kaiming normal,
    positional conv N(0, 2/sqrt(K·D)) with g = ‖v‖, masked_spec_embed U(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    std = model.config['initializer_range']
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * std)
                m.bias.zero_()
            elif isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, nn.Conv1d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    bound = 1 / math.sqrt(fan_in)
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 2 * bound - bound)
            elif isinstance(m, WeightNormConv):
                k, d = m.k, m.weight_v.shape[0]
                m.weight_v.copy_(torch.randn(m.weight_v.shape, generator=g) * (2 * math.sqrt(1.0 / (k * d))))
                m.weight_g.copy_(m.weight_v.norm(dim=(0, 1), keepdim=True))
                m.bias.zero_()
        model.masked_spec_embed.copy_(torch.rand(model.masked_spec_embed.shape, generator=g))


# ----------------------------------------------------------------------------------------------------------------
# safetensors without the safetensors package
# ----------------------------------------------------------------------------------------------------------------

POS_G, POS_V = 'encoder.pos_conv_embed.conv.weight_g', 'encoder.pos_conv_embed.conv.weight_v'
HF_G = 'encoder.pos_conv_embed.conv.parametrizations.weight.original0'
HF_V = 'encoder.pos_conv_embed.conv.parametrizations.weight.original1'


def hf_state(model: HubertModel) -> dict[str, np.ndarray]:
    out = {}
    for k, v in model.state_dict().items():
        k = {POS_G: HF_G, POS_V: HF_V}.get(k, k)
        out[k] = v.detach().to(torch.float32).cpu().numpy()
    return out


def load_hf_state(model: HubertModel, tensors: dict[str, np.ndarray]) -> None:
    renamed = {{HF_G: POS_G, HF_V: POS_V, 'encoder.pos_conv_embed.conv.weight_g': POS_G,
                'encoder.pos_conv_embed.conv.weight_v': POS_V}.get(k, k): torch.from_numpy(v.copy())
               for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(renamed, strict=False)
    if missing or unexpected:
        raise RuntimeError(f'missing {missing}, unexpected {unexpected}')


def write_safetensors(path: str, tensors: dict[str, np.ndarray]) -> None:
    header: dict = {'__metadata__': {'format': 'pt'}}
    offset = 0
    names = sorted(tensors)
    for name in names:
        t = np.ascontiguousarray(tensors[name], dtype='<f4')
        header[name] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [offset, offset + t.nbytes]}
        offset += t.nbytes
    hb = json.dumps(header, separators=(',', ':')).encode('utf-8')
    hb += b' ' * ((8 - len(hb) % 8) % 8)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(hb)))
        f.write(hb)
        for name in names:
            f.write(np.ascontiguousarray(tensors[name], dtype='<f4').tobytes())
    os.replace(tmp, path)


def read_safetensors(path: str) -> dict[str, np.ndarray]:
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        if info['dtype'] != 'F32':
            raise ValueError(f'{path}: {name} is {info["dtype"]}, this reader handles F32 only')
        a, b = info['data_offsets']
        out[name] = np.frombuffer(blob[a:b], dtype='<f4').reshape(info['shape'])
    return out


def save_model(model: HubertModel, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'config.json'), 'w') as f:
        json.dump(model.config, f, indent=2, sort_keys=True)
        f.write('\n')
    write_safetensors(os.path.join(folder, 'model.safetensors'), hf_state(model))


def load_model(folder: str) -> HubertModel:
    with open(os.path.join(folder, 'config.json')) as f:
        c = json.load(f)
    m = HubertModel(c)
    load_hf_state(m, read_safetensors(os.path.join(folder, 'model.safetensors')))
    return m.eval()


# ----------------------------------------------------------------------------------------------------------------
# Check against transformers' own output
# ----------------------------------------------------------------------------------------------------------------


def check_against_reference() -> None:
    folder = os.path.join(ROOT, 'test', 'fixtures', 'hf-reference', 'hubert-postln-a')
    model = load_model(folder)
    with open(os.path.join(folder, 'reference.json')) as f:
        ref = json.load(f)
    wav = torch.tensor(ref['input'], dtype=torch.float32)[None]
    with torch.no_grad():
        feats, hidden = model(wav)
    worst = float((feats[0] - torch.tensor(ref['conv_features'])).abs().max())
    for k, h in enumerate(hidden):
        worst = max(worst, float((h[0] - torch.tensor(ref['hidden_states'][k])).abs().max()))
    scale = max(float(torch.tensor(ref['last_hidden_state']).abs().max()), 1.0)
    print(f'transformers check (hubert-postln-a): max |diff| = {worst:.2e} (scale {scale:.2f})')
    if not worst < 1e-4 * scale:
        sys.exit('the torch HubertModel here does not match transformers; refusing to train')


# ----------------------------------------------------------------------------------------------------------------
# Pre-training audio and targets
# ----------------------------------------------------------------------------------------------------------------

PRETRAIN_WORDS = (
    'the of and to in is was he for it with as his on be at by had not are but from or have an they which one you '
    'were her all she there would their we him been has when who will more no if out so said what up its about into '
    'than them can only other new some could time these two may then do first any my now such like our over man me '
    'even most made after also did many before must through back years where much your way well down should because '
    'each just those people how too little state good very make world still own see men work long get here between '
    'both life being under never day same another know while last might us great old year off come since against go '
    'came right used take three house water morning garden window yellow seven river mountain quiet bright simple '
    'morning paper letter winter summer table answer number green blue orange purple music station doctor'
).split()


def conv_frames(n: int, c: dict) -> int:
    for k, s in zip(c['conv_kernel'], c['conv_stride']):
        n = (n - k) // s + 1
    return n


def stft_power(x: np.ndarray, n_fft: int, win: int, frames: int) -> np.ndarray:
    """|STFT|² with frame i centred on sample 320·i + 200 (the centre of encoder frame i's 400-sample field)."""
    left = n_fft // 2 - 200
    need = left + (frames - 1) * HOP + n_fft
    xp = np.zeros(max(need, left + len(x)), dtype=np.float32)
    xp[left:left + len(x)] = x
    spec = torch.stft(torch.from_numpy(xp), n_fft=n_fft, hop_length=HOP, win_length=win,
                      window=torch.hann_window(win), center=False, return_complex=True)
    return (spec.abs() ** 2).numpy().T[:frames]  # [frames, n_fft/2+1]


def mel_filterbank(n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    hz2mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    mel2hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    freqs = np.arange(n_fft // 2 + 1) * SR / n_fft
    pts = mel2hz(np.linspace(hz2mel(fmin), hz2mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, c, hi = pts[i], pts[i + 1], pts[i + 2]
        fb[i] = np.maximum(0, np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)))
    return fb.T.astype(np.float32)  # [bins, mels]


def semitone_filterbank(n_fft: int, lo_midi: int = 36, hi_midi: int = 108) -> np.ndarray:
    freqs = np.arange(1, n_fft // 2 + 1) * SR / n_fft
    mu = 69 + 12 * np.log2(freqs / 440.0)
    width = 12 * np.log2((freqs + SR / n_fft) / freqs)  # one FFT bin, in semitones
    sigma = np.maximum(0.5, 0.5 * width)
    fb = np.zeros((n_fft // 2 + 1, hi_midi - lo_midi + 1), dtype=np.float32)
    for j, m in enumerate(range(lo_midi, hi_midi + 1)):
        w = np.exp(-0.5 * ((mu - m) / sigma) ** 2)
        fb[1:, j] = w / max(w.sum(), 1e-9)
    return fb


SPEECH_FB = mel_filterbank(512, 40, 60.0, 7600.0)
MUSIC_FB = semitone_filterbank(2048)


def frame_features(x: np.ndarray, domain: str, frames: int) -> np.ndarray:
    # Level-free: the log spectra lose their per-frame mean (like dropping c0 from MFCCs). The encoder cannot know a
    # clip's absolute level (random gain in training, group norm over time in conv block 0), so absolute-level
    # targets would be unlearnable noise.
    if domain == 'speech':
        logmel = np.log(stft_power(x, 512, 400, frames) @ SPEECH_FB + 1e-6)
        return logmel - logmel.mean(1, keepdims=True)
    semis = stft_power(x, 2048, 2048, frames) @ MUSIC_FB  # [frames, 73]
    chroma = np.zeros((frames, 12), dtype=np.float32)
    for j in range(semis.shape[1]):
        chroma[:, (36 + j) % 12] += semis[:, j]
    chroma = chroma / (chroma.sum(1, keepdims=True) + 1e-6)
    logsemis = np.log(semis + 1e-6)
    return np.concatenate([logsemis - logsemis.mean(1, keepdims=True), chroma * 4.0], axis=1)


def pretraining_audio(domain: str, clips: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    if domain == 'speech':
        for _ in range(clips):
            words = [PRETRAIN_WORDS[int(rng.integers(len(PRETRAIN_WORDS)))] for _ in range(int(rng.integers(2, 6)))]
            voice = data.PRETRAIN_VOICES[int(rng.integers(len(data.PRETRAIN_VOICES)))]
            x = data.speak(' '.join(words), voice, int(rng.integers(120, 231)), int(rng.integers(20, 81)))
            out.append(data.normalise_peak(x[: int(2.0 * SR)], float(rng.uniform(0.3, 0.9))))
    else:
        for _ in range(clips):
            out.append(data.synth_event_sequence(float(rng.uniform(1.0, 2.0)), rng, data.TIMBRES + ['bell'], (33, 96)))
    return out


def kmeans(x: np.ndarray, k: int, seed: int, iters: int = 25) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xt = torch.from_numpy(x)
    centres = [xt[int(rng.integers(len(xt)))]]
    for _ in range(1, k):  # k-means++
        d = torch.cdist(xt, torch.stack(centres)).min(1).values ** 2
        p = (d / d.sum()).numpy().astype(np.float64)
        centres.append(xt[int(rng.choice(len(xt), p=p / p.sum()))])
    c = torch.stack(centres)
    for _ in range(iters):
        assign = torch.cdist(xt, c).argmin(1)
        for j in range(k):
            members = xt[assign == j]
            if len(members):
                c[j] = members.mean(0)
    return c.numpy()


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------


def span_mask(b: int, t: int, rng: np.random.Generator, span: int = 5, start_p: float = 0.1) -> torch.Tensor:
    """HuBERT-style time masks: each frame starts a masked span of `span` frames with probability start_p."""
    m = np.zeros((b, t), dtype=bool)
    for i in range(b):
        starts = np.nonzero(rng.random(t) < start_p)[0]
        if len(starts) == 0:
            starts = np.array([int(rng.integers(max(1, t - span)))])
        for s in starts:
            m[i, s:s + span] = True
    return torch.from_numpy(m)


STEPS = 600


def train_encoder(domain: str, seed: int, steps: int, out_dir: str, clips: int = 500, crop_frames: int = 32,
                  batch: int = 8, k: int = 64, lr: float = 1e-3, alpha: float = 0.5, ce_weight: float = 0.25,
                  log_every: int = 50, clip: float = 1.0, mask_start_p: float = 0.1) -> dict:
    t0 = time.time()
    config = make_config()
    audio = pretraining_audio(domain, clips, seed=10_000 + seed)
    seconds = sum(len(a) for a in audio) / SR
    feats = [frame_features(a, domain, conv_frames(len(a), config)) for a in audio]
    allf = np.concatenate(feats)
    mean, std = allf.mean(0), allf.std(0) + 1e-5
    z = [((f - mean) / std).astype(np.float32) for f in feats]
    allz = np.concatenate(z)
    sub = allz[np.random.default_rng(seed).choice(len(allz), size=min(len(allz), 20000), replace=False)]
    centres = torch.from_numpy(kmeans(sub, k, seed))
    labels = [torch.cdist(torch.from_numpy(f), centres).argmin(1) for f in z]
    print(f'[{domain}] {len(audio)} pre-training clips, {seconds:.0f} s, {len(allz)} frames, '
          f'k-means k={k} ({time.time() - t0:.0f} s)', flush=True)

    torch.manual_seed(seed)
    model = HubertModel(config)
    init_like_transformers(model, seed)
    d, fdim = config['hidden_size'], allz.shape[1]
    cls_head = nn.Linear(d, k)
    reg_head = nn.Linear(d, fdim)
    params = list(model.parameters()) + list(cls_head.parameters()) + list(reg_head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    rng = np.random.default_rng(seed)
    n_samples = HOP * (crop_frames - 1) + 400
    usable = [i for i, f in enumerate(z) if len(f) >= crop_frames]
    model.train()
    log = []
    for step in range(steps):
        wavs, zt, lt = [], [], []
        for _ in range(batch):
            i = usable[int(rng.integers(len(usable)))]
            j = int(rng.integers(len(z[i]) - crop_frames + 1))
            seg = audio[i][j * HOP: j * HOP + n_samples]
            wavs.append(torch.from_numpy(np.pad(seg, (0, n_samples - len(seg))) * rng.uniform(0.3, 1.0)))
            zt.append(torch.from_numpy(z[i][j:j + crop_frames]))
            lt.append(labels[i][j:j + crop_frames])
        wav, zt_, lt_ = torch.stack(wavs).float(), torch.stack(zt), torch.stack(lt)
        mask = span_mask(batch, crop_frames, rng, start_p=mask_start_p)
        _, hidden = model(wav, mask)
        h = hidden[-1]
        logits, recon = cls_head(h), reg_head(h)
        ce_all = F.cross_entropy(logits.transpose(1, 2), lt_, reduction='none')  # [B, T]
        mse_all = ((recon - zt_) ** 2).mean(-1)
        um = ~mask
        ce, mse = ce_all[mask].mean(), mse_all[mask].mean()
        # Per frame: MSE on the standardised target feature + ce_weight · cluster cross-entropy; masked frames weigh
        # alpha, unmasked 1 - alpha (HuBERT's L = α·L_m + (1−α)·L_u). See the module docstring for why.
        per_frame = mse_all + ce_weight * ce_all
        loss = alpha * per_frame[mask].mean() + (1 - alpha) * per_frame[um].mean()
        opt.zero_grad()
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        sched.step()
        with torch.no_grad():
            acc = float((logits[mask].argmax(1) == lt_[mask]).float().mean())
            acc_u = float((logits[um].argmax(1) == lt_[um]).float().mean())
        log.append((float(ce), float(mse), acc, float(ce_all[um].mean()), acc_u, float(mse_all[um].mean())))
        if (step + 1) % log_every == 0 or step == 0:
            recent = np.array(log[-log_every:]).mean(0)
            print(f'[{domain}] step {step + 1}/{steps} ce {recent[0]:.3f} mse {recent[1]:.3f} '
                  f'masked cluster acc {recent[2]:.3f} | unmasked ce {recent[3]:.3f} mse {recent[5]:.3f} acc {recent[4]:.3f} '
                  f'({time.time() - t0:.0f} s)', flush=True)
    model.eval()
    save_model(model, out_dir)
    final = np.array(log[-50:]).mean(0)
    return {'domain': domain, 'seed': seed, 'steps': steps, 'batch': batch, 'crop_frames': crop_frames,
            'pretrain_clips': len(audio), 'pretrain_seconds': round(seconds, 1), 'k': k, 'lr': lr, 'alpha': alpha,
            'final_ce': round(float(final[0]), 4), 'final_mse': round(float(final[1]), 4),
            'final_masked_cluster_acc': round(float(final[2]), 4),
            'final_unmasked_ce': round(float(final[3]), 4), 'final_unmasked_cluster_acc': round(float(final[4]), 4),
            'final_unmasked_mse': round(float(final[5]), 4), 'ce_weight': ce_weight, 'chance_ce': round(math.log(k), 4),
            'seconds': round(time.time() - t0, 1), 'model': model}


def verify_saved(model: HubertModel, folder: str) -> None:
    reloaded = load_model(folder)
    wav = torch.from_numpy(np.random.default_rng(0).normal(0, 0.3, size=(2, 12000)).astype(np.float32))
    with torch.no_grad():
        _, a = model(wav)
        _, b = reloaded(wav)
    diff = max(float((x - y).abs().max()) for x, y in zip(a, b))
    print(f'reload check {os.path.relpath(folder, ROOT)}: max |diff| over hidden states = {diff:.1e}')
    if diff != 0.0:
        sys.exit('reloaded model differs from the trained one')


# ----------------------------------------------------------------------------------------------------------------
# Linear probes in Python (a cross-check of the engine's evaluation; not used by the product)
# ----------------------------------------------------------------------------------------------------------------

TASKS = ['keywords', 'voices', 'pitch', 'timbre', 'chords']


def read_split(folder: str) -> tuple[list[np.ndarray], list[str]]:
    import wave
    xs, ys = [], []
    with open(os.path.join(folder, 'labels.csv')) as f:
        next(f)
        for line in f:
            name, label = line.rstrip('\n').split(',')
            with wave.open(os.path.join(folder, name)) as w:
                xs.append(np.frombuffer(w.readframes(w.getnframes()), dtype='<i2').astype(np.float32) / 32768.0)
            ys.append(label)
    return xs, ys


def pooled(model: HubertModel, xs: list[np.ndarray]) -> np.ndarray:
    out = []
    with torch.no_grad():
        for x in xs:
            _, hidden = model(torch.from_numpy(x)[None])
            out.append(torch.stack([h[0].mean(0) for h in hidden]).numpy())
    return np.stack(out)  # [n, L+1, D]


def probe_accuracy(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, classes: int,
                   l2: float = 1e-3, iters: int = 300) -> float:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a, b = torch.from_numpy((xtr - mu) / sd), torch.from_numpy((xte - mu) / sd)
    w = torch.zeros(a.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], max_iter=iters, line_search_fn='strong_wolfe')
    yt = torch.from_numpy(ytr)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(a @ w + bias, yt) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return float(((b @ w + bias).argmax(1).numpy() == yte).mean())


def probe_models(models: dict[str, HubertModel]) -> dict:
    results: dict = {}
    for task in TASKS:
        base = os.path.join(ROOT, 'examples', 'eval', task)
        xtr, ltr = read_split(os.path.join(base, 'train'))
        xte, lte = read_split(os.path.join(base, 'test'))
        names = sorted(set(ltr))
        ytr, yte = np.array([names.index(v) for v in ltr]), np.array([names.index(v) for v in lte])
        for mname, model in models.items():
            ftr, fte = pooled(model, xtr), pooled(model, xte)
            per_layer = [probe_accuracy(ftr[:, l], ytr, fte[:, l], yte, len(names)) for l in range(ftr.shape[1])]
            results.setdefault(mname, {})[task] = [round(v, 3) for v in per_layer]
            print(f'probe {task:9s} {mname:16s} per layer (hidden_states 0..L): '
                  + ' '.join(f'{v:.2f}' for v in per_layer), flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--check-only', action='store_true')
    ap.add_argument('--probe-only', action='store_true', help='only run the Python probes on the saved models')
    ap.add_argument('--no-probe', action='store_true', help='train and save, skip the Python probes')
    ap.add_argument('--domains', default='speech,music', help='which encoders to train (default: %(default)s)')
    ap.add_argument('--steps', type=int, default=STEPS)
    args = ap.parse_args()
    check_against_reference()
    if args.check_only:
        return
    folders = {'speech': os.path.join(ROOT, 'examples', 'models', 'speech-encoder'),
               'music': os.path.join(ROOT, 'examples', 'models', 'music-encoder')}
    seeds = {'speech': 1, 'music': 2}
    if not args.probe_only:
        for domain in args.domains.split(','):
            result = train_encoder(domain, seeds[domain], args.steps, folders[domain])
            model = result.pop('model')
            verify_saved(model, folders[domain])
            print(json.dumps(result), flush=True)
            with open(os.path.join(ROOT, 'examples', 'models', f'training-{domain}.json'), 'w') as f:
                json.dump(result, f, indent=2)
                f.write('\n')
    if args.no_probe:
        return
    models = {f'{d}-encoder': load_model(folders[d]) for d in ('speech', 'music')}
    rand = HubertModel(make_config())
    init_like_transformers(rand, 3)
    models['random-init'] = rand.eval()
    results = probe_models(models)
    with open(os.path.join(ROOT, 'examples', 'models', 'python-probes.json'), 'w') as f:
        json.dump(results, f, indent=2)
        f.write('\n')


if __name__ == '__main__':
    main()
