"""bench:forward's reference: torchaudio's HuBERT-base (random weights, eval, inference mode) on the same audio
length, every layer's output (as merge-studio forward returns). Prints the marker line bench/peak-rss.ts reads, with
the process's own VmHWM and getrusage maxRSS. Run with OMP_WAIT_POLICY=PASSIVE (Debian's torch spins otherwise)."""
import json
import resource
import sys
import time

import torch
import torchaudio

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 0
if threads:
    torch.set_num_threads(threads)
torch.manual_seed(0)
model = torchaudio.models.hubert_base().eval()
audio = (torch.rand(1, int(seconds * 16000)) - 0.5) * 0.2
with torch.inference_mode():
    # One call, no warm-up: `merge-studio forward` runs once too (its wall time includes loading and the session).
    t = time.perf_counter()
    feats, _ = model.extract_features(audio)
    sec = time.perf_counter() - t
with open('/proc/self/status') as f:
    hwm = next(int(l.split()[1]) * 1024 for l in f if l.startswith('VmHWM:'))
params = sum(p.numel() for p in model.parameters())
print('@@bench-child@@' + json.dumps({'result': {'seconds': sec, 'layers': len(feats), 'params': params},
                                      'vmHwm': hwm, 'maxRss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
