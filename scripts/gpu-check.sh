#!/bin/bash
# The GPU checks, run once per lease on the borrowed GPU machine (one H200, CUDA 13, PyTorch
# 2.11 at /opt/torch/.venv, no Rust) from the kit that scripts/gpu-kit.sh builds here:
#
#   bash gpu-check.sh                (a few minutes; OUT=<dir> for where the logs go)
#
# 1. parity on CUDA: tests/parity.rs's experiments trained by p2sbench and by
#    reference/parity.py, both on CUDA, every step's loss and final variable within relative 1e-4;
# 2. 500 steps of IResNet-18 in float16 with loss scaling (gpu/iresnet18_fp16.toml): done, not
#    diverged;
# 3. images/s of IResNet-50 under autocast in channels-last, p2sbench beside the same network in
#    PyTorch (bench/torch_backbone.py), interleaved (goal: ratio ≥ 0.95);
# 4. the first 300 steps of paper.toml's training on synthetic 112×112 identities
#    (gpu/paper_synthetic.toml).
# Each check has a time limit; summary.txt gets one line per check.
set -u
cd "$(dirname "$0")"
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
TORCH_LIB=${TORCH_LIB:-/opt/torch/.venv/lib/python3.12/site-packages/torch/lib}
PYTHON=${PYTHON:-/opt/torch/.venv/bin/python}
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for b in p2sbench parity backbones; do
    [ -x "bin/$b" ] || { xz -dkf "bin/$b.xz" && chmod +x "bin/$b"; }
done
say() { echo "$*" | tee -a "$OUT/summary.txt"; }
say "gpu-check $(date -u +%FT%TZ) on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"

P2SBENCH_PYTHON=$PYTHON P2SBENCH_PARITY_DEVICE=cuda P2SBENCH_REFERENCE_DIR=reference \
    timeout 240 bin/parity --test-threads=1 --nocapture >"$OUT/parity.log" 2>&1
say "1 parity on CUDA (rc $?): $(grep -E 'worst relative|test result' "$OUT/parity.log" | tr '\n' ' ')"

timeout 300 bin/p2sbench run gpu/iresnet18_fp16.toml --out "$OUT/results" >"$OUT/fp16.log" 2>&1
say "2 IResNet-18 float16, 527 steps (rc $?): $(grep -E ': (done|diverged|failed)' "$OUT/fp16.log" | tail -1)"

P2SBENCH_PYTHON=$PYTHON P2SBENCH_BENCH_DEVICE=cuda P2SBENCH_BENCH_AMP=1 P2SBENCH_BENCH_BATCH=128 \
    P2SBENCH_BENCH_BACKBONES=iresnet50 P2SBENCH_BENCH_SECONDS=4 P2SBENCH_BENCH_ROUNDS=5 \
    timeout 240 bin/backbones >"$OUT/throughput.log" 2>&1
say "3 IResNet-50 autocast throughput (rc $?): $(grep -E 'iresnet50' "$OUT/throughput.log")"

timeout 420 bin/p2sbench run gpu/paper_synthetic.toml --out "$OUT/results" >"$OUT/paper.log" 2>&1
say "4 paper.toml's training, 300 steps (rc $?): $(grep -E ': (done|diverged|failed)' "$OUT/paper.log" | tail -1)"
