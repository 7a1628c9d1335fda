"""Peak memory of fit with and without early stopping, in units of X.

Each configuration runs in a fresh process: it builds X (float32, on the
CPU), records its resident memory, fits a small dense network for one epoch
and reports ``(peak RSS - RSS before fit) / X.nbytes``: the extra memory
the fit took, counted in copies of X. The one copy of X on the device is 1x;
a second copy for the validation split would show as about 2x.

    python benchmarks/bench_early_stopping_memory.py [--rows 200000]
"""

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, warnings
import numpy as np
from skpred import PredictedMLPClassifier

rows, early = int(sys.argv[1]), sys.argv[2] == "1"
rng = np.random.default_rng(0)
X = rng.random((rows, 784), dtype=np.float32)
y = (X[:, 0] > 0.5).astype(int)

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

# warm the allocator and torch's kernels on a small fit first
PredictedMLPClassifier((8,), dictionary=None, max_iter=1, device="cpu").fit(X[:500], y[:500])
before = rss()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    PredictedMLPClassifier((8,), dictionary=None, max_iter=1, batch_size=1000, device="cpu",
                           early_stopping=early, random_state=0).fit(X, y)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"extra": (peak - before) / X.nbytes, "x_mb": X.nbytes / 2**20}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    print("| early_stopping | X (MB) | extra peak memory, in copies of X |")
    print("|---|---|---|")
    for early in (False, True):
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.rows), str(int(early))],
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {early} | {result['x_mb']:.0f} | {result['extra']:.2f}x |")


if __name__ == "__main__":
    main()
