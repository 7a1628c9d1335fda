#!/usr/bin/env bash
# The device checks for a lent GPU machine, as one short script (about 5
# minutes on an H100/H200): the gpu-marked tests, then the GPU benchmarks
# whose numbers the README and the performance issue are missing. Run from
# the repository root with the virtual environment built (`make install`;
# on the GPU machine install a CUDA build of torch into it first).
#   bash benchmarks/gpu_session.sh [OUTDIR]
set -uo pipefail
out=${1:-gpu_results}
mkdir -p "$out"
py=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
# 1. the gpu tests (20: fit/pickle/load on CUDA against the CPU)
timeout 300 $py -m pytest -m gpu -q tests/test_gpu.py 2>&1 | tail -5 | tee "$out/pytest_gpu.txt"
# 2. one predicted conv layer on each path (pool, dense, separable) against nn.Conv2d
timeout 120 $py benchmarks/bench_conv_layer.py --device cuda --json "$out/bench_conv_layer.json" \
    2>&1 | grep -v Warning | tee "$out/bench_conv_layer.txt"
# 3. the paper's MLP per epoch against a bare torch loop (dense, SE-Emp 1 and 10 columns)
timeout 240 $py benchmarks/bench_gpu.py --json "$out/gpu_mlp.json" 2>&1 | tail -12 \
    | tee "$out/bench_gpu.txt"
# 4. the paper's CIFAR-10 net per epoch (dense and se a=0.25 against a bare loop)
timeout 180 $py benchmarks/bench_conv.py --paper --device cuda --n 10000 \
    --json "$out/conv_paper_cuda.json" 2>&1 | tail -8 | tee "$out/bench_conv.txt"
# The JSON files go to benchmarks/results/ (with a <!-- bench: NAME --> block
# in the README for each), then: python benchmarks/update_readme.py
