"""Dev-time comparison for bench/lap.bench.ts: time scipy.optimize.linear_sum_assignment (maximise) on matrices
written by the bench as raw little-endian float64, n×n row-major. Usage: lap_scipy.py [--repeat=K] FILE:N ...
Prints one JSON line per matrix: best CPU time (process_time) and best wall time of K runs."""
import json
import sys
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

args = sys.argv[1:]
repeat = 1
if args and args[0].startswith("--repeat="):
    repeat = int(args.pop(0).split("=", 1)[1])

for arg in args:
    path, n = arg.rsplit(":", 1)
    n = int(n)
    s = np.fromfile(path, dtype="<f8").reshape(n, n)
    seconds = float("inf")
    wall = float("inf")
    for _ in range(repeat):  # best of `repeat`: the machine is shared, the minimum is the least disturbed run
        t0 = time.process_time()
        w0 = time.perf_counter()
        rows, cols = linear_sum_assignment(s, maximize=True)
        seconds = min(seconds, time.process_time() - t0)
        wall = min(wall, time.perf_counter() - w0)
    print(json.dumps({"path": path, "seconds": seconds, "wall": wall, "total": float(s[rows, cols].sum())}), flush=True)
