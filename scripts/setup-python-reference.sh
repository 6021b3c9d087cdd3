#!/usr/bin/env bash
# Installs the Python references of tests/statistics.rs (numpy, scipy, statsmodels, pinned) once
# into the set-up's virtual environment ($P2SBENCH_CACHE/venv, created by setup-libtorch.sh when
# missing). A marker file names the pinned versions, so a second run does nothing and a change of
# pins installs again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${P2SBENCH_CACHE:-$HOME/.cache/p2sbench}"
venv="$cache/venv"
pins=(numpy==2.4.6 scipy==1.17.1 statsmodels==0.15.0 pandas==3.1.1 patsy==1.0.3)
marker="$venv/.pyref-$(IFS=-; echo "${pins[*]}" | tr '=' '_')-ok"
if [ ! -f "$marker" ]; then
  [ -x "$venv/bin/python" ] || "$here/setup-libtorch.sh" >/dev/null
  echo "p2sbench set-up: installing ${pins[*]} into $venv (one time)" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
  "$venv/bin/python" -c 'import numpy, scipy.stats, statsmodels.stats.power, statsmodels.stats.multitest' >&2
  touch "$marker"
fi
