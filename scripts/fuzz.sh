#!/usr/bin/env bash
# `make fuzz`: builds the cargo-fuzz targets of fuzz/ and runs each for FUZZ_SECONDS (or until
# FUZZ_RUNS executions, when set), one at a time on one core, then prints the executions per
# target (libFuzzer's final stats). A crash stops that target, leaves its input in
# fuzz/artifacts/<target>/ and makes the script exit 1 after the others ran; keep the input in
# fuzz/regressions/<target>/ once the parser is fixed.
#
# Needs LIBTORCH (the Makefile sets it). cargo-fuzz passes nightly flags; RUSTC_BOOTSTRAP=1 lets
# the stable toolchain accept them. Usage: scripts/fuzz.sh [target ...] (default: all targets).
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-600}"
run_limit=()
[ -n "${FUZZ_RUNS:-}" ] && run_limit=(-runs="$FUZZ_RUNS")
export RUSTC_BOOTSTRAP=1
export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Debug assertions (-a) make integer overflow a panic. No sanitizer (-s none): the parsers are safe
# Rust (no `unsafe` in them), so ASan would only slow the build and the runs; panics, aborts,
# allocations beyond -rss_limit_mb and hangs are what libFuzzer reports.
build=(-a -s none --codegen-units 16)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked || exit 1
cargo fuzz build "${build[@]}" || exit 1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

mkdir -p logs
failed=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "fuzzing $t for ${seconds}s (log: fuzz/logs/$t.log)"
  # corpus/<t> (git-ignored) collects what the fuzzer finds; seeds/<t> and regressions/<t> start it.
  dirs=("corpus/$t" "seeds/$t")
  [ -d "regressions/$t" ] && dirs+=("regressions/$t")
  if ! cargo fuzz run "${build[@]}" "$t" "${dirs[@]}" -- \
      -max_total_time="$seconds" "${run_limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"logs/$t.log" 2>&1; then
    failed+=("$t")
    grep -E "^(==[0-9]+==ERROR|thread .* panicked|.*Test unit written to)" "logs/$t.log" | head -5
  fi
done

echo
printf '%-16s %14s %10s %s\n' target executions exec/s result
for t in "${targets[@]}"; do
  runs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "logs/$t.log" | tail -1)
  rate=$(grep -oP 'stat::average_exec_per_sec:\s*\K[0-9]+' "logs/$t.log" | tail -1)
  result=ok
  [[ " ${failed[*]} " == *" $t "* ]] && result="CRASH (fuzz/artifacts/$t/)"
  printf '%-16s %14s %10s %s\n' "$t" "${runs:-?}" "${rate:-?}" "$result"
done
[ ${#failed[@]} -eq 0 ]
