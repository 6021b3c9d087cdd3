# p2sbench: `make demo` runs the quickstart experiment, `make test` runs the test suite,
# `make test-slurm` runs the job-array test against a one-node Slurm cluster it starts,
# `make fuzz` fuzzes every parser of outside input (FUZZ_SECONDS per target or FUZZ_RUNS executions,
# FUZZ_TARGETS to pick).
# All install libtorch (PyPI torch==2.13.0) once into $(P2SBENCH_CACHE) (default ~/.cache/p2sbench);
# `make test` also installs Debian's chromium (as root) for the report.html browser test, pdflatex
# (booktabs) and poppler-utils for the paper-output test (tables.tex compiled, PDFs rendered), and
# numpy, scipy and statsmodels (pinned) into the same venv for tests/statistics.rs's cross-checks,
# and onnxruntime, onnx, insightface and arcface_torch's IResNet file (pinned, from PyPI) for
# tests/export.rs (scripts/setup-python-export.sh).
SHELL := /bin/bash
export P2SBENCH_CACHE ?= $(HOME)/.cache/p2sbench
# `make install` puts the release binary in $(PREFIX)/bin.
PREFIX ?= $(HOME)/.local
LIBTORCH_DIR = $(shell scripts/setup-libtorch.sh)
CARGO_ENV = LIBTORCH=$(LIBTORCH_DIR)

.PHONY: demo test test-slurm bench build install uninstall lint setup browser latex pyref pyexport fuzz
setup:
	@scripts/setup-libtorch.sh >/dev/null

browser:
	@scripts/setup-chromium.sh

latex:
	@scripts/setup-latex.sh

# The Python references of tests/statistics.rs, in the set-up's venv.
pyref: setup
	@scripts/setup-python-reference.sh

# What tests/export.rs and the ONNX benchmark open exported models with, in the set-up's venv.
pyexport: setup
	@scripts/setup-python-export.sh >/dev/null

build: setup
	$(CARGO_ENV) cargo build --release

# The binary finds libtorch in $(P2SBENCH_CACHE) through its rpath: keep that cache.
install: setup
	$(CARGO_ENV) cargo install --path . --locked --force --root $(PREFIX)
	strip --strip-debug $(PREFIX)/bin/p2sbench  # p2sbench's own line tables
	@echo "installed $(PREFIX)/bin/p2sbench"
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) ;; *) echo "note: $(PREFIX)/bin is not on your PATH; add it, e.g.: echo 'export PATH=\"$(PREFIX)/bin:\$$PATH\"' >> ~/.bashrc" ;; esac

uninstall:
	cargo uninstall --root $(PREFIX) p2sbench

demo: setup
	$(CARGO_ENV) cargo run -- run experiments/quickstart.toml --out results

test: setup browser latex pyref pyexport
	$(CARGO_ENV) cargo test -- --test-threads=1

# The job-array test against a real Slurm: installs slurm-wlm and munge (as root) when missing,
# starts a one-node cluster, runs tests/cluster.rs's ignored test, stops every daemon it started.
test-slurm: setup
	$(CARGO_ENV) scripts/test-slurm.sh

bench: setup pyexport
	$(CARGO_ENV) cargo bench --bench datagen --bench train_step --bench jobs --bench megaface --bench ijbc --bench loader --bench backbones --bench report --bench bookkeeping --bench partial_fc --bench recordio_open --bench onnx_runtime

lint: setup
	cargo fmt --check
	$(CARGO_ENV) cargo clippy --all-targets -- -D warnings

# cargo-fuzz (installed when missing) on the stable toolchain; see README "Fuzzing".
FUZZ_SECONDS ?= 600
FUZZ_RUNS ?=
FUZZ_TARGETS ?=
fuzz: setup
	$(CARGO_ENV) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_RUNS=$(FUZZ_RUNS) scripts/fuzz.sh $(FUZZ_TARGETS)
