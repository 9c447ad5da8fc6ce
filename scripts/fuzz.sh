#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/, cargo-fuzz + libFuzzer on the stable
# toolchain) and runs each for SECONDS (default 20) from its committed seed
# corpus, one target at a time; fails on any crash, or a timeout, and
# prints the executions per target. docs/fuzzing.md has the why and how.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# The corpus grows into a temporary directory (the committed one is only
# read) and crash inputs go to $EDGE_FUZZ_ARTIFACTS (default: a temporary
# directory, kept and printed when something crashed), so a run never
# writes to the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (cargo install --locked cargo-fuzz, ~2 min)"
  cargo install --locked cargo-fuzz >/dev/null
fi

# -s none: the project's code is safe Rust (unsafe_code = "deny"), so what
# a fuzzer can find is a panic, an overflow (overflow checks and debug
# assertions are on: cargo fuzz's default) or a hang, and AddressSanitizer
# needs nightly (-Zsanitizer) and halves the speed. 16 codegen units: the
# agent's dependency tree builds in ~5 min instead of ~12 on two cores.
build=(cargo fuzz build --sanitizer none --codegen-units 16)
echo "fuzz: ${build[*]}"
# The dependency versions fuzzed are the ones the agent ships with: the fuzz
# workspace's lock file starts from the main one each time (cargo adds
# libfuzzer-sys and drops what the targets do not use; it is not committed).
cp Cargo.lock fuzz/Cargo.lock
# The fuzz workspace is outside the gates: scripts/test.sh's clippy wrapper
# (exported for the main build) must not apply here.
(cd fuzz && unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS && CARGO_INCREMENTAL=0 "${build[@]}")
bin=fuzz/target/x86_64-unknown-linux-gnu/release

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

work=$(mktemp -d)
artifacts="${EDGE_FUZZ_ARTIFACTS:-$work/artifacts}"
failed=()
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$artifacts/$t"
  log="$work/$t.log"
  echo "fuzz: $t for ${seconds}s"
  rc=0
  dict=()
  [[ -f "fuzz/dict/$t.dict" ]] && dict=(-dict="fuzz/dict/$t.dict")
  # New inputs go to the first directory (temporary); the committed seeds
  # are only read. -timeout: an input that takes 10 s is a hang.
  "$bin/$t" "$work/corpus/$t" "fuzz/corpus/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$t/" "${dict[@]}" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | tr -dc '0-9')
  corpus=$(find "$work/corpus/$t" -type f | wc -l)
  line=$(printf '%-14s %10s execs  %5s edges  %5s new inputs' "$t" "${execs:-?}" "${cov:-?}" "$corpus")
  if ((rc != 0)); then
    line+="  CRASH (exit $rc)"
    failed+=("$t")
    grep -E '^(thread|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)' "$log" | head -n 20 || true
    tail -n 5 "$log"
  fi
  summary+=("$line")
done

echo
echo "Fuzzing, ${seconds}s per target:"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: crashed: ${failed[*]}; inputs kept in $artifacts (make each a regression test: docs/fuzzing.md)" >&2
  exit 1
fi
rm -rf "$work"
