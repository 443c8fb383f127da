#!/usr/bin/env python3
"""Generate the example audio under examples/ (dev-time; the output is committed, the product never runs this).

    python3 scripts/make-example-data.py            # writes examples/probe/** and examples/eval/**
    python3 scripts/make-example-data.py --test-per-class 50 --out examples/large
                                                    # examples/large/eval/**: the same train, a 5x larger test split
    python3 scripts/make-example-data.py --test-per-class 50 --probe-seconds 120 --out examples/large
                                                    # ... and examples/large/probe/**: 6x the probe audio

Needs `espeak-ng` and `sox` (Debian packages) and numpy. Deterministic: every random draw comes from a numpy
Generator seeded per split, and espeak-ng is deterministic for a given voice, rate, pitch and text.

Layout written (16 kHz mono 16-bit PCM WAV everywhere):

    examples/probe/speech/*.wav      unlabeled spoken phrases, for alignment statistics
    examples/probe/music/*.wav       unlabeled note/chord sequences, for alignment statistics
    examples/eval/<task>/{train,test}/*.wav + labels.csv (header `file,label`)
        keywords  speech: which of 10 words (SUPERB keyword spotting in miniature)
        voices    speech: which of 8 espeak-ng voices said a (number/colour) word (speaker ID in miniature)
        pitch     music: pitch class of one note, 12 classes, octave random (NSynth pitch in miniature)
        timbre    music: which of 6 synthetic instruments (NSynth instrument family in miniature)
        chords    music: chord quality of a root-position triad (major, minor, diminished, augmented)

The synthesis functions (`speak`, `synth_note`, `synth_event_sequence`, ...) are also imported by
scripts/train-example-encoders.py to make the encoders' pre-training audio, with other seeds and, for speech,
other texts and voices, so that no evaluation clip is ever seen in pre-training.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import wave

import numpy as np

SR = 16000
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

# ----------------------------------------------------------------------------------------------------------------
# Speech (espeak-ng)
# ----------------------------------------------------------------------------------------------------------------

KEYWORDS = ['yes', 'no', 'up', 'down', 'left', 'right', 'on', 'off', 'stop', 'go']

# The 8 voices of the voice-identity task: an accent and a variant each.
VOICE_ID_VOICES = [
    'en-us+m1', 'en-us+m3', 'en-us+f1', 'en-us+f4',
    'en-gb+m2', 'en-gb+f2', 'en-gb-scotland+m6', 'en-029+f3',
]
# Words the voice-identity clips say (none of them a keyword, so the two speech tasks do not share a cue).
VOICE_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine',
               'red', 'green', 'blue', 'black', 'white', 'yellow', 'purple', 'orange']

ACCENTS = ['en-us', 'en-gb', 'en-gb-x-rp', 'en-gb-scotland', 'en-029', 'en-gb-x-gbclan']
VARIANTS = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'f1', 'f2', 'f3', 'f4', 'klatt', 'klatt2', 'klatt3']
ALL_VOICES = [f'{a}+{v}' for a in ACCENTS for v in VARIANTS]
# Voices never used for an evaluation clip: the speech encoder's pre-training draws from these only.
PRETRAIN_VOICES = [v for v in ALL_VOICES if v not in VOICE_ID_VOICES]
# Keyword clips use any voice (the keyword task is about words; its voices may overlap pre-training's). Only the
# voice-identity task's voices are kept out of pre-training.
KEYWORD_VOICES = ALL_VOICES


def speak(text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
    """espeak-ng → sox (resample to 16 kHz) → float32 in [-1, 1], leading/trailing silence trimmed."""
    esp = subprocess.run(['espeak-ng', '-v', voice, '-s', str(rate), '-p', str(pitch), '--stdout', text],
                         check=True, capture_output=True)
    # -D: no dither when requantising to 16 bits (sox dithers with a time-seeded generator: not repeatable)
    sx = subprocess.run(['sox', '-D', '-t', 'wav', '-', '-t', 'raw', '-r', str(SR), '-e', 'signed-integer', '-b', '16',
                         '-c', '1', '-'], input=esp.stdout, check=True, capture_output=True)
    x = np.frombuffer(sx.stdout, dtype='<i2').astype(np.float32) / 32768.0
    return trim_silence(x)


def trim_silence(x: np.ndarray, threshold_db: float = -40.0, pad: int = 320) -> np.ndarray:
    """Trim to the span of 10 ms frames whose RMS is within threshold_db of the loudest frame, plus `pad`."""
    hop = 160
    n = len(x) // hop
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[:n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms / rms.max()) > threshold_db)[0]
    start = max(0, loud[0] * hop - pad)
    end = min(len(x), (loud[-1] + 1) * hop + pad)
    return x[start:end]


def fade(x: np.ndarray, ms: float = 5.0) -> np.ndarray:
    n = min(len(x) // 2, int(SR * ms / 1000))
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        x = x.copy()
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def normalise_peak(x: np.ndarray, peak: float) -> np.ndarray:
    m = float(np.max(np.abs(x)))
    return (x * (peak / m)).astype(np.float32) if m > 0 else x.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Music (numpy additive synthesis)
# ----------------------------------------------------------------------------------------------------------------

TIMBRES = ['sine', 'square', 'saw', 'triangle', 'pluck', 'organ']
PITCH_CLASSES = ['C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B']
CHORD_QUALITIES = {'major': [0, 4, 7], 'minor': [0, 3, 7], 'diminished': [0, 3, 6], 'augmented': [0, 4, 8]}


def midi_to_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


def harmonic_amplitudes(timbre: str, f0: float) -> tuple[np.ndarray, np.ndarray]:
    """(harmonic numbers, amplitudes) of a band-limited timbre below Nyquist."""
    kmax = max(1, int((SR / 2 - 200) // f0))
    k = np.arange(1, kmax + 1, dtype=np.float64)
    if timbre == 'sine':
        a = (k == 1).astype(np.float64)
    elif timbre == 'square':
        a = np.where(k % 2 == 1, 1.0 / k, 0.0)
    elif timbre == 'saw':
        a = 1.0 / k
    elif timbre == 'triangle':
        a = np.where(k % 2 == 1, (-1.0) ** ((k - 1) // 2) / k ** 2, 0.0)
    elif timbre == 'pluck':
        a = 1.0 / k ** 1.2
    elif timbre == 'organ':
        drawbar = {1: 1.0, 2: 0.8, 3: 0.6, 4: 0.5, 6: 0.35, 8: 0.3}
        a = np.array([drawbar.get(int(h), 0.0) for h in k])
    elif timbre == 'bell':  # only in pre-training: inharmonic partials
        k = np.array([1.0, 2.76, 5.40, 8.93])
        k = k[k * f0 < SR / 2 - 200]
        a = np.array([1.0, 0.6, 0.4, 0.25])[:len(k)]
    else:
        raise ValueError(timbre)
    return k, a


def envelope(timbre: str, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    if timbre in ('pluck', 'bell'):
        attack = rng.uniform(0.002, 0.008)
        env = np.minimum(t / attack, 1.0) * np.exp(-t * rng.uniform(4.0, 9.0))
    else:
        attack = rng.uniform(0.005, 0.04)
        decay = rng.uniform(0.03, 0.12)
        sustain = rng.uniform(0.5, 0.9)
        release = rng.uniform(0.03, 0.08)
        env = np.where(t < attack, t / attack,
                       np.where(t < attack + decay, 1.0 - (1.0 - sustain) * (t - attack) / decay, sustain))
        tail = t > t[-1] - release
        env = env * np.where(tail, np.clip((t[-1] - t) / release, 0.0, 1.0), 1.0)
    return env.astype(np.float64)


def synth_tone(midis: list[float], timbre: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One note or a chord (several midi numbers) of one timbre, with an envelope, slight detune and noise."""
    n = int(round(seconds * SR))
    t = np.arange(n) / SR
    y = np.zeros(n)
    for m in midis:
        f0 = midi_to_hz(m + rng.uniform(-0.08, 0.08))  # up to ±8 cents
        k, a = harmonic_amplitudes(timbre, f0)
        phases = rng.uniform(0, 2 * np.pi, size=len(k))
        if timbre == 'pluck':  # upper harmonics die away faster
            damp = np.exp(-np.outer(k - 1, t) * rng.uniform(1.5, 3.0))
            y += (a[:, None] * damp * np.sin(2 * np.pi * f0 * np.outer(k, t) + phases[:, None])).sum(0)
        else:
            y += (a[:, None] * np.sin(2 * np.pi * f0 * np.outer(k, t) + phases[:, None])).sum(0)
    y *= envelope(timbre, n, rng)
    y += rng.normal(0.0, 1e-3 * np.abs(y).max(), size=n)
    return normalise_peak(y, rng.uniform(0.3, 0.8))


def synth_event_sequence(seconds: float, rng: np.random.Generator, timbres: list[str],
                         midi_range: tuple[int, int]) -> np.ndarray:
    """A clip of 1-4 back-to-back events (a note or a triad), random timbre each: probe and pre-training music."""
    n = int(round(seconds * SR))
    events = int(rng.integers(1, 5))
    cuts = np.sort(rng.choice(np.arange(1, 20), size=events - 1, replace=False)) / 20.0 if events > 1 else np.array([])
    bounds = np.concatenate([[0.0], cuts, [1.0]]) * n
    out = np.zeros(n, dtype=np.float32)
    for i in range(events):
        a, b = int(bounds[i]), int(bounds[i + 1])
        timbre = timbres[int(rng.integers(len(timbres)))]
        root = float(rng.integers(midi_range[0], midi_range[1] + 1))
        if rng.random() < 0.35:
            quality = list(CHORD_QUALITIES)[int(rng.integers(4))]
            midis = [root + s for s in CHORD_QUALITIES[quality]]
        else:
            midis = [root]
        out[a:b] = synth_tone(midis, timbre, (b - a) / SR, rng)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------

def write_wav(path: str, x: np.ndarray) -> None:
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype('<i2')
    with wave.open(path, 'wb') as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


def write_split(folder: str, rows: list[tuple[str, np.ndarray, str]]) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'labels.csv'), 'w', newline='\n') as f:
        f.write('file,label\n')
        for name, audio, label in rows:
            write_wav(os.path.join(folder, name), audio)
            f.write(f'{name},{label}\n')


class Unique:
    """Refuses a second draw of the same synthesis parameters, so no clip appears in two splits."""

    def __init__(self) -> None:
        self.seen: set[tuple] = set()

    def take(self, key: tuple) -> bool:
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


# Clip length caps and counts (see examples/README.md for the size budget).
SPEECH_MAX_SECONDS = 0.8
MUSIC_SECONDS = 0.3
TRAIN_PER_CLASS = 20
TEST_PER_CLASS = 10
# (split, clips per class) in draw order: train first, so a larger test split (--test-per-class) keeps the same train.
Splits = tuple[tuple[str, int], ...]
SPLITS: Splits = (('train', TRAIN_PER_CLASS), ('test', TEST_PER_CLASS))


def speech_clip(text: str, voice: str, rate: int, pitch: int, rng: np.random.Generator) -> np.ndarray:
    x = speak(text, voice, rate, pitch)[: int(SPEECH_MAX_SECONDS * SR)]
    return normalise_peak(fade(x), float(rng.uniform(0.3, 0.8)))


def make_keywords(out: str, uniq: Unique, splits: Splits = SPLITS) -> None:
    rng = np.random.default_rng(1001)
    for split, per_class in splits:
        rows = []
        for word in KEYWORDS:
            i = 0
            while i < per_class:
                voice = KEYWORD_VOICES[int(rng.integers(len(KEYWORD_VOICES)))]
                rate, pitch = int(rng.integers(130, 221)), int(rng.integers(25, 76))
                if not uniq.take(('speech', word, voice, rate, pitch)):
                    continue
                rows.append((f'{word}-{i:03d}.wav', speech_clip(word, voice, rate, pitch, rng), word))
                i += 1
        write_split(os.path.join(out, 'keywords', split), rows)


def make_voices(out: str, uniq: Unique, splits: Splits = SPLITS) -> None:
    rng = np.random.default_rng(1002)
    for split, per_class in splits:
        rows = []
        for v, voice in enumerate(VOICE_ID_VOICES):
            i = 0
            while i < per_class:
                word = VOICE_WORDS[int(rng.integers(len(VOICE_WORDS)))]
                rate, pitch = int(rng.integers(140, 201)), int(rng.integers(35, 66))
                if not uniq.take(('speech', word, voice, rate, pitch)):
                    continue
                label = voice.replace('+', '_')
                rows.append((f'voice{v}-{i:03d}.wav', speech_clip(word, voice, rate, pitch, rng), label))
                i += 1
        write_split(os.path.join(out, 'voices', split), rows)


def make_pitch(out: str, splits: Splits = SPLITS) -> None:
    rng = np.random.default_rng(2001)
    for split, per_class in splits:
        rows = []
        for pc, name in enumerate(PITCH_CLASSES):
            for i in range(per_class):
                octave_choices = [m for m in range(45, 85) if m % 12 == pc]
                midi = octave_choices[int(rng.integers(len(octave_choices)))]
                timbre = TIMBRES[int(rng.integers(len(TIMBRES)))]
                safe = name.replace('#', 's')
                rows.append((f'{safe}-{i:03d}.wav', synth_tone([midi], timbre, MUSIC_SECONDS, rng), name))
        write_split(os.path.join(out, 'pitch', split), rows)


def make_timbre(out: str, splits: Splits = SPLITS) -> None:
    rng = np.random.default_rng(2002)
    for split, per_class in splits:
        rows = []
        for timbre in TIMBRES:
            for i in range(per_class):
                midi = int(rng.integers(45, 85))
                rows.append((f'{timbre}-{i:03d}.wav', synth_tone([midi], timbre, MUSIC_SECONDS, rng), timbre))
        write_split(os.path.join(out, 'timbre', split), rows)


def make_chords(out: str, splits: Splits = SPLITS) -> None:
    rng = np.random.default_rng(2003)
    for split, per_class in splits:
        rows = []
        for quality, steps in CHORD_QUALITIES.items():
            for i in range(per_class):
                root = int(rng.integers(48, 73))
                timbre = TIMBRES[int(rng.integers(len(TIMBRES)))]
                rows.append((f'{quality}-{i:03d}.wav', synth_tone([root + s for s in steps], timbre, MUSIC_SECONDS, rng),
                             quality))
        write_split(os.path.join(out, 'chords', split), rows)


PROBE_PHRASES = [
    'the weather is mild today', 'please bring the map', 'a small boat crossed the river', 'she sold the old car',
    'we will meet at noon', 'the garden needs water', 'turn the page slowly', 'his coffee was cold',
    'they built a wooden bridge', 'listen to the wind', 'the train arrives late', 'my brother plays chess',
    'open the window wide', 'birds sing at dawn', 'the lamp is broken', 'count the silver coins',
    'a quiet village in winter', 'the children laughed', 'paint the fence white', 'dinner is almost ready',
    'the clock struck nine', 'she writes long letters', 'bread and butter', 'the road was wet',
]


def make_probe_speech(out: str, uniq: Unique, seconds_total: float = 20.0) -> None:
    rng = np.random.default_rng(3001)
    folder = os.path.join(out, 'speech')
    os.makedirs(folder, exist_ok=True)
    total, i = 0.0, 0
    while total < seconds_total:
        text = PROBE_PHRASES[i % len(PROBE_PHRASES)]
        voice = ALL_VOICES[int(rng.integers(len(ALL_VOICES)))]
        rate, pitch = int(rng.integers(150, 211)), int(rng.integers(30, 71))
        if not uniq.take(('speech', text, voice, rate, pitch)):
            continue
        x = normalise_peak(fade(speak(text, voice, rate, pitch)[: int(1.6 * SR)]), float(rng.uniform(0.3, 0.8)))
        write_wav(os.path.join(folder, f'phrase-{i:03d}.wav'), x)
        total += len(x) / SR
        i += 1


def make_probe_music(out: str, seconds_total: float = 20.0, clip_seconds: float = 1.25) -> None:
    rng = np.random.default_rng(3002)
    folder = os.path.join(out, 'music')
    os.makedirs(folder, exist_ok=True)
    for i in range(int(np.ceil(seconds_total / clip_seconds))):
        write_wav(os.path.join(folder, f'seq-{i:03d}.wav'), synth_event_sequence(clip_seconds, rng, TIMBRES, (40, 88)))


def same_files(a: str, b: str) -> list[str]:
    """Names of the files that differ between two folders (missing on either side included)."""
    names = sorted(set(os.listdir(a)) | set(os.listdir(b)))
    differ = []
    for n in names:
        pa, pb = os.path.join(a, n), os.path.join(b, n)
        if not (os.path.isfile(pa) and os.path.isfile(pb)):
            differ.append(n)
            continue
        with open(pa, 'rb') as fa, open(pb, 'rb') as fb:
            if fa.read() != fb.read():
                differ.append(n)
    return differ


def make_large_test(out: str, per_class: int, probe_seconds: float | None = None) -> None:
    """eval/<task>/{train,test} under `out` with `per_class` test clips per class, for measuring methods (the
    experiments script's --eval-root), and with `probe_seconds` also <out>/probe with that many seconds of each
    domain (its --probe-root), disjoint from every eval clip. Train is drawn first, exactly as for the bundled
    example, and must come out byte-identical to it (else this espeak-ng differs from the one that made the bundle,
    and the split would not be the same task); test continues the same generators for more clips, disjoint from
    train. Nothing is committed: the bundle keeps its small test split so that `npm start` stays quick."""
    bundled = os.path.join(ROOT, 'examples', 'eval')
    eval_out = os.path.join(out, 'eval')
    if os.path.realpath(eval_out) == os.path.realpath(bundled):
        sys.exit('--test-per-class writes a separate eval folder: give --out another folder than examples/')
    shutil.rmtree(eval_out, ignore_errors=True)
    splits: Splits = (('train', TRAIN_PER_CLASS), ('test', per_class))
    uniq = Unique()
    make_keywords(eval_out, uniq, splits)
    make_voices(eval_out, uniq, splits)
    make_pitch(eval_out, splits)
    make_timbre(eval_out, splits)
    make_chords(eval_out, splits)
    for task in sorted(os.listdir(bundled)):
        differ = same_files(os.path.join(bundled, task, 'train'), os.path.join(eval_out, task, 'train'))
        if differ:
            sys.exit(f'{task}/train differs from the bundled one ({len(differ)} files, e.g. {differ[0]}): '
                     'this espeak-ng or numpy is not the one that made examples/eval')
    clips = sum(len(os.listdir(os.path.join(eval_out, t, 'test'))) - 1 for t in os.listdir(eval_out))
    print(f'wrote {eval_out}: train identical to the bundled one, {clips} test clips ({per_class} per class)')
    if probe_seconds:
        probe_out = os.path.join(out, 'probe')
        shutil.rmtree(probe_out, ignore_errors=True)
        make_probe_speech(probe_out, uniq, probe_seconds)
        make_probe_music(probe_out, probe_seconds)
        print(f'wrote {probe_out}: {probe_seconds:g} s of speech and of music')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=os.path.join(ROOT, 'examples'), help='examples folder (default: %(default)s)')
    ap.add_argument('--test-per-class', type=int, default=TEST_PER_CLASS,
                    help='test clips per class; any other value than %(default)s writes only <out>/eval, '
                         'with the bundled train split (for scripts/run-example-experiments.mjs --eval-root)')
    ap.add_argument('--probe-seconds', type=float,
                    help='with --test-per-class: also <out>/probe with this many seconds of speech and of music '
                         '(the bundle has 20; for --probe-root)')
    args = ap.parse_args()
    for tool in ('espeak-ng', 'sox'):
        if shutil.which(tool) is None:
            sys.exit(f'{tool} not found: apt-get install espeak-ng sox')
    if args.test_per_class != TEST_PER_CLASS:
        if not 1 <= args.test_per_class <= 999:
            sys.exit('--test-per-class must be 1 … 999')
        if args.probe_seconds is not None and not 1 <= args.probe_seconds <= 3600:
            sys.exit('--probe-seconds must be 1 … 3600')
        make_large_test(args.out, args.test_per_class, args.probe_seconds)
        return
    for sub in ('probe', 'eval'):
        shutil.rmtree(os.path.join(args.out, sub), ignore_errors=True)
    uniq = Unique()
    make_keywords(os.path.join(args.out, 'eval'), uniq)
    make_voices(os.path.join(args.out, 'eval'), uniq)
    make_pitch(os.path.join(args.out, 'eval'))
    make_timbre(os.path.join(args.out, 'eval'))
    make_chords(os.path.join(args.out, 'eval'))
    make_probe_speech(os.path.join(args.out, 'probe'), uniq)
    make_probe_music(os.path.join(args.out, 'probe'))
    total = 0
    for dirpath, _, files in os.walk(args.out):
        for f in files:
            if f.endswith('.wav') or f.endswith('.csv'):
                total += os.path.getsize(os.path.join(dirpath, f))
    print(f'wrote {args.out}/probe and {args.out}/eval: {total / 1e6:.2f} MB of audio and labels')


if __name__ == '__main__':
    main()
