"""Benchmark: one predicted convolution layer on each of its paths against
torch's dense nn.Conv2d.

The paper's second CIFAR-10 conv layer: 48 -> 64 channels, 8x8 filters,
"same" padding, on 16x16 maps, batch 128; se dictionary at alpha 0.25 (768
filters, one column), built by skpred as PredictedConvNetClassifier builds
it. Forward and backward per batch (milliseconds, median of --repeats
after a warm-up), every path on the same input, multiply-adds per output
position beside it. Writes benchmarks/results/conv_layer.json (``--json``).

    python benchmarks/bench_conv_layer.py [--device cuda] [--batch 128]
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit  # noqa: E402


def timed(fn, device, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=None, help="where to write the JSON ('' for nowhere)")
    args = p.parse_args(argv)

    from skpred import KernelDictionary
    from skpred.nn import PredictedConv2d

    device = torch.device(args.device)
    c_in, c_out, k, side = 48, 64, 8, 16
    # The se dictionary on the filter's (rows, cols, channels) grid; its rows
    # reordered to torch's (channels, rows, cols) filter layout.
    built = KernelDictionary("se", alpha_fraction=0.25, image_shape=(k, k, c_in),
                             random_state=0).fit(np.zeros((1, k * k * c_in)))
    banks = [U.reshape(k, k, c_in, -1).transpose(2, 0, 1, 3).reshape(k * k * c_in, -1)
             for U in built.dictionaries_]
    torch.manual_seed(0)
    x = torch.randn(args.batch, c_in, side, side, device=device)
    dense = torch.nn.Conv2d(c_in, c_out, k, padding="same").to(device)
    layers = {path: PredictedConv2d(c_in, c_out, k, banks, padding="same", path=path).to(device)
              for path in ("pool", "dense", "separable", "auto")}

    def step(layer):
        def run():
            layer.zero_grad(set_to_none=True)
            layer(x).sum().backward()
        return run

    base = timed(step(dense), device, args.repeats)
    a = built.n_atoms_
    macs = {"nn.Conv2d": c_out * c_in * k * k, "pool": a * c_in * k * k + a * c_out,
            "dense": c_out * c_in * k * k, "separable": layers["separable"].separable_cost(),
            "auto": None}
    rows = [dict(path="nn.Conv2d", ms=base, ratio=1.0, macs_per_position=macs["nn.Conv2d"])]
    for path, layer in layers.items():
        ms = timed(step(layer), device, args.repeats)
        rows.append(dict(path=path, ms=ms, ratio=ms / base, macs_per_position=macs[path]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}; "
          f"48->64 channels, 8x8, 16x16 maps, batch {args.batch}, {a} se filters")
    table = [[r["path"], f"{r['ms']:.1f}", f"{r['ratio']:.2f}",
              f"{r['macs_per_position']:,}" if r["macs_per_position"] else "as chosen"]
             for r in rows]
    emit("conv_layer" if device.type == "cpu" else f"conv_layer_{device.type}",
         ["path", "ms / batch (fwd+bwd)", "x nn.Conv2d", "multiply-adds / position"], table,
         rows, f"python benchmarks/bench_conv_layer.py --device {args.device}", args.json)


if __name__ == "__main__":
    main()
