#!/usr/bin/env bash
# Installs libtorch once, from PyPI's pinned torch==2.13.0 wheel (the version tch 0.26 requires),
# into a virtual environment in a cache outside the repository, and prints its torch/ directory.
# Later clones reuse the cache. Override the location with P2SBENCH_CACHE.
set -euo pipefail
cache="${P2SBENCH_CACHE:-$HOME/.cache/p2sbench}"
venv="$cache/venv"
torch_version="2.13.0"
marker="$venv/.torch-$torch_version-ok"
if [ ! -f "$marker" ]; then
  echo "p2sbench set-up: installing torch==$torch_version into $venv (one time, ~5 GB)" >&2
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "torch==$torch_version" >&2
  touch "$marker"
fi
"$venv/bin/python" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("torch").origin))'
