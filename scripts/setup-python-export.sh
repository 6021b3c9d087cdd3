#!/usr/bin/env bash
# Installs what tests/export.rs opens exported models with, once, into the set-up's virtual
# environment ($P2SBENCH_CACHE/venv, created by setup-libtorch.sh when missing), all pinned:
# - onnxruntime and onnx (the ONNX runtime and checker);
# - insightface's Python package, whose model_zoo.get_model loads recognition models, with the
#   modules its import needs (opencv headless in place of the opencv-python it names, whose GUI
#   build wants libGL; scikit-image, requests, tqdm), and safetensors to read the weights;
# - arcface_torch's IResNet as PyPI ships it: modelscope 1.40.2's
#   models/cv/face_recognition/torchkit/backbone/arcface_backbone.py, which says it is adopted from
#   insightface's recognition/arcface_torch/backbones/iresnet.py (same modules and names; its
#   iresnetNN helpers are replaced by IResNet(IBasicBlock, layers)). Only that file is taken out of
#   the wheel (pip download, no dependencies), checked against its SHA-256, into
#   $P2SBENCH_CACHE/reference/ (P2SBENCH_ARCFACE_BACKBONE names it for the tests).
# A marker file names the pins, so a second run does nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${P2SBENCH_CACHE:-$HOME/.cache/p2sbench}"
venv="$cache/venv"
pins=(onnxruntime==1.32.0 onnx==1.23.2 opencv-python-headless==5.1.0.95 scikit-image==0.26.0 requests==2.34.2 tqdm==4.70.1 safetensors==0.8.0)
insightface=insightface==2.1
modelscope=modelscope==1.40.2
backbone_path=modelscope/models/cv/face_recognition/torchkit/backbone/arcface_backbone.py
backbone_sha256=f42c90545c80b848764fdaed7458cc6b1596610a8552b32de3d0096d8b342617
backbone="$cache/reference/modelscope-1.40.2/arcface_backbone.py"
marker="$venv/.pyexport-$(IFS=-; echo "${pins[*]}-$insightface-$modelscope" | tr '=' '_')-ok"
if [ ! -f "$marker" ]; then
  [ -x "$venv/bin/python" ] || "$here/setup-libtorch.sh" >/dev/null
  echo "p2sbench set-up: installing ${pins[*]} $insightface and $modelscope's IResNet file into $venv (one time)" >&2
  pip=("$venv/bin/pip" install --quiet --disable-pip-version-check)
  "${pip[@]}" "${pins[@]}" >&2
  "${pip[@]}" --no-deps "$insightface" >&2
  download="$(mktemp -d)"
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps "$modelscope" -d "$download" >&2
  mkdir -p "$(dirname "$backbone")"
  "$venv/bin/python" - "$download"/modelscope-*.whl "$backbone_path" "$backbone.partial" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, open(sys.argv[3], "wb") as out:
    out.write(wheel.read(sys.argv[2]))
PY
  echo "$backbone_sha256  $backbone.partial" | sha256sum --check --quiet >&2
  mv "$backbone.partial" "$backbone"
  rm -rf "$download"
  "$venv/bin/python" -c 'import onnxruntime, onnx, safetensors, cv2; from insightface.model_zoo import get_model' >&2
  touch "$marker"
fi
echo "$backbone"
