#!/usr/bin/env python3
"""Dev-time float64 reference for align.method paper (numpy + scipy, no torch).

Re-implements, step by step, what the released code of Ritter-Gutierrez et al. (ASRU 2025; github
FabianRitter/speech-ssl-merging, s3prl/) computes from hooked features, with scipy's linear_sum_assignment (the
solver that code calls):
  model_merger_new.py ModelMerge.compute_metrics   per-batch standardisation (batch mean, unbiased std + 1e-7)
  metric_calculators.py CovarianceMetric          float64 sums of z and z z^T; cov = E[zz^T] - E[z]E[z]^T; diag += 1e-9
  model_merger_new.py ModelMerge.cov_to_corr      cov / clamp(sqrt(diag) (x) sqrt(diag), min=1e-7)
  matching_functions.py match_tensors_permute      FFN: signed assignment (no_absval=True)
  matching_functions.py match_tensors_permute_MHA  attention: head-pair assignments, then the head map

Input (JSON on stdin): {"heads": H, "taps": {name: {"kind": "ffn"|"attn", "batches": [{"A": [[units x frames]],
"B": [[...]]}, ...]}}}. Output (stdout): {name: {"corr": [[anchor x other]], "perm": [gather]}}.
scripts/check-paper-reference.ts feeds it the tapped activations of an encoder pair and compares with the engine.
"""
import json
import sys

import numpy as np
from scipy.optimize import linear_sum_assignment


def correlation(batches):
    s = None
    outer = None
    total = 0
    for b in batches:
        zs = []
        for x in (np.asarray(b["A"], dtype=np.float64), np.asarray(b["B"], dtype=np.float64)):
            mean = x.mean(axis=1, keepdims=True)
            if x.shape[1] > 1:
                std = x.std(axis=1, ddof=1, keepdims=True)
                zs.append((x - mean) / (std + 1e-7))
            else:
                zs.append(x - mean)
        z = np.nan_to_num(np.concatenate(zs, axis=0))
        s = z.sum(axis=1) if s is None else s + z.sum(axis=1)
        outer = z @ z.T if outer is None else outer + z @ z.T
        total += z.shape[1]
    e = s / total
    cov = outer / total - np.outer(e, e)
    cov[np.diag_indices_from(cov)] += 1e-9
    std = np.sqrt(np.diag(cov))
    corr = cov / np.clip(np.nan_to_num(np.outer(std, std)), 1e-7, None)
    om = corr.shape[0] // 2
    return corr[:om, om:]


def match_units(c):
    _, col = linear_sum_assignment(c, maximize=True)
    return col


def match_heads(c, heads):
    om = c.shape[0]
    q = om // heads
    costs = np.zeros((heads, heads))
    store = {}
    for j in range(heads):
        for k in range(heads):
            sub = c[q * j:q * (j + 1), q * k:q * (k + 1)]
            r, col = linear_sum_assignment(sub, maximize=True)
            costs[j, k] = sub[r, col].sum()
            store[j, k] = col
    _, outer = linear_sum_assignment(costs, maximize=True)
    return np.concatenate([store[j, outer[j]] + q * outer[j] for j in range(heads)])


def main():
    req = json.load(sys.stdin)
    out = {}
    for name, tap in req["taps"].items():
        c = correlation(tap["batches"])
        perm = match_heads(c, req["heads"]) if tap["kind"] == "attn" else match_units(c)
        out[name] = {"corr": c.tolist(), "perm": [int(v) for v in perm]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
