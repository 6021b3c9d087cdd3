#!/usr/bin/env bash
# Makes sure Debian's chromium is at /usr/bin/chromium, for the real-browser test of report.html
# (tests/plot_report.rs). Installs it with apt-get when it is missing and this runs as root;
# otherwise says how to install it and fails, so the test cannot pass without a browser.
set -euo pipefail
bin=/usr/bin/chromium
if [ -x "$bin" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "p2sbench set-up: $bin is missing and this is not root; the report.html browser test needs it." >&2
  echo "  install it once as root:  apt-get install -y chromium" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "p2sbench set-up: $bin is missing and there is no apt-get; install chromium so that $bin exists." >&2
  exit 1
fi
echo "p2sbench set-up: installing chromium with apt-get (one time) for the report.html browser test" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y chromium >&2; then
  apt-get update >&2
  apt-get install -y chromium >&2
fi
test -x "$bin"
