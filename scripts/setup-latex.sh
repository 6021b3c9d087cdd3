#!/usr/bin/env bash
# Makes sure pdflatex (with booktabs) and poppler's pdftoppm and pdftotext are installed, for the
# paper-output tests (tests/paper_output.rs: report's tables.tex compiled by a real LaTeX, plot's
# PDFs rendered and read back). Installs Debian's texlive-latex-base, texlive-latex-recommended
# (booktabs) and poppler-utils with apt-get when something is missing and this runs as root;
# otherwise says how to install them and fails, so the tests cannot pass without them.
set -euo pipefail
missing=()
command -v pdflatex >/dev/null || missing+=(texlive-latex-base)
if ! command -v kpsewhich >/dev/null || [ -z "$(kpsewhich booktabs.sty 2>/dev/null)" ]; then
  missing+=(texlive-latex-recommended)
fi
if ! command -v pdftoppm >/dev/null || ! command -v pdftotext >/dev/null; then
  missing+=(poppler-utils)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "p2sbench set-up: ${missing[*]} missing and this is not root; the paper-output tests need them." >&2
  echo "  install them once as root:  apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "p2sbench set-up: ${missing[*]} missing and there is no apt-get; install pdflatex with booktabs.sty, pdftoppm and pdftotext." >&2
  exit 1
fi
echo "p2sbench set-up: installing ${missing[*]} with apt-get (one time) for the paper-output tests" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
  apt-get update >&2
  apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi
command -v pdflatex >/dev/null
test -n "$(kpsewhich booktabs.sty)"
command -v pdftoppm >/dev/null
command -v pdftotext >/dev/null
