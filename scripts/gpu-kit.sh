#!/bin/bash
# Builds the kit for the borrowed GPU machine (../shared/GPU.md): p2sbench, the parity test and
# the backbone benchmark compiled here against the libtorch of the machine's PyTorch 2.11
# (tch 0.24 pairs with it), stripped and xz-compressed, with scripts/gpu-check.sh, reference/,
# bench/torch_backbone.py and gpu/*.toml: about 25 MiB, under the 64 MiB that may be carried.
#
#   scripts/gpu-kit.sh [KIT_DIR]       (default target/gpu-kit; carry it, run `bash gpu-check.sh`)
#
# The first run downloads the torch 2.11 wheel (531 MB, PyPI) into $P2SBENCH_CACHE/gpu and builds
# in a copy of the repository there (a few minutes cold). The CUDA libraries libtorch_cuda needs
# are not installed here, hence --allow-shlib-undefined; on the device LD_LIBRARY_PATH points at
# its torch/lib.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${1:-$ROOT/target/gpu-kit}
CACHE=${P2SBENCH_CACHE:-$HOME/.cache/p2sbench}
WORK=$CACHE/gpu
TORCH=2.11.0
mkdir -p "$WORK"
if [ ! -f "$WORK/libtorch/torch/lib/libtorch_cpu.so" ]; then
    "$CACHE/venv/bin/python" -m pip download --no-deps "torch==$TORCH" --python-version 3.11 \
        --only-binary=:all: --platform manylinux_2_28_x86_64 -d "$WORK/wheel"
    rm -rf "$WORK/libtorch"
    (cd "$WORK" && unzip -q wheel/torch-"$TORCH"*.whl 'torch/lib/*' 'torch/include/*' 'torch/share/*' -d libtorch)
fi
rm -rf "$WORK/src" && mkdir -p "$WORK/src"
tar -C "$ROOT" --exclude=./target --exclude=./.git -cf - . | tar -C "$WORK/src" -xf -
sed -i 's/^tch = .*/tch = "0.24"/; s/^torch-sys = .*/torch-sys = "0.24"/' "$WORK/src/Cargo.toml"
rm -f "$WORK/src/Cargo.lock"
export LIBTORCH=$WORK/libtorch/torch CARGO_TARGET_DIR=$WORK/target
export RUSTFLAGS="-C link-arg=-Wl,--allow-shlib-undefined"
cd "$WORK/src"
cargo build --release --bin p2sbench
# The test and bench executables: cargo names them with a hash; its JSON messages say which.
built() {
    local name=$1
    shift
    cargo "$@" --no-run --message-format=json | grep "\"name\":\"$name\"" \
        | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1
}
PARITY=$(built parity test --release --test parity)
BACKBONES=$(built backbones bench --bench backbones)
[ -x "$PARITY" ] && [ -x "$BACKBONES" ] || { echo "gpu-kit: no parity test or backbone bench built" >&2; exit 1; }
rm -rf "$KIT" && mkdir -p "$KIT/bin" "$KIT/bench" "$KIT/gpu"
for pair in "p2sbench:$WORK/target/release/p2sbench" "parity:$PARITY" "backbones:$BACKBONES"; do
    name=${pair%%:*}
    strip -s -o "$KIT/bin/$name" "${pair#*:}"
    xz -9 -T0 "$KIT/bin/$name"
done
cp -r "$ROOT/reference" "$KIT/reference"
cp "$ROOT/bench/torch_backbone.py" "$KIT/bench/"
cp "$ROOT"/gpu/*.toml "$KIT/gpu/"
cp "$ROOT/scripts/gpu-check.sh" "$KIT/"
du -sh "$KIT"
