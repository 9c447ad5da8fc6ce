#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what it needs, builds,
# checks the gates (rustfmt, cargo-deny, clippy), then runs every test (unit,
# property, and integration tests against real peers: srt-live-transmit,
# ffprobe, GStreamer, ffmpeg) with per-test timeouts from .config/nextest.toml,
# and ends with each phase's wall time and the slowest tests.
#
#   EDGE_GATES=0 scripts/test.sh   skips the three gates (local iterations;
#                                  CI always runs them)
set -euo pipefail
cd "$(dirname "$0")/.."
# CI builds and tests with AWS support (MediaConnect/MediaLive against moto);
# EDGE_FEATURES= scripts/test.sh runs the suite without it.
export EDGE_FEATURES="${EDGE_FEATURES-edge-tests/aws}"
features=()
[[ -n "$EDGE_FEATURES" ]] && features=(--features "$EDGE_FEATURES")

# Wall time per phase, printed at the end (also when something failed).
phases=()
t_run=$SECONDS
phase_start=$SECONDS
phase_end() { phases+=("$(printf '%6ds  %s' $((SECONDS - phase_start)) "$1")"); phase_start=$SECONDS; }
print_phases() {
  echo
  echo "Phases (wall time):"
  ((${#phases[@]})) && printf '%s\n' "${phases[@]}"
  printf '%6ds  total\n' $((SECONDS - t_run))
}
trap print_phases EXIT

scripts/setup.sh
phase_end "setup (apt, venvs, cargo build --bins)"
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test: installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
fi

# ---- Gates, before the tests. All three run, then any failure stops here.
# clippy comes after setup's build: it shares that target dir, so the build
# scripts (aws-lc-sys's C build, libsrt/GStreamer probes) run once; only the
# check-mode metadata of the dependencies is extra.
if [[ "${EDGE_GATES:-1}" != 0 ]]; then
  failed=()
  echo "test: gate: cargo fmt --all --check"
  cargo fmt --all --check >/dev/null 2>&1 || {
    echo "test: rustfmt: $(cargo fmt --all --check 2>&1 | grep -c '^Diff in') hunks differ (cargo fmt --all --check shows them)"
    failed+=(fmt)
  }
  phase_end "gate: cargo fmt --check"
  echo "test: gate: cargo deny check bans licenses sources"
  .venv/bin/cargo-deny check --hide-inclusion-graph bans licenses sources || failed+=(deny)
  phase_end "gate: cargo deny"
  echo "test: gate: cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --locked "${features[@]}" -- -D warnings || failed+=(clippy)
  phase_end "gate: cargo clippy"
  if ((${#failed[@]})); then
    echo "test: gates failed: ${failed[*]}; no tests run" >&2
    exit 1
  fi
fi

export RUST_BACKTRACE=1
# The repeated-outage test runs 30 of its 10 s outages here (~6 min); the
# long local run (README, "Measured") sets EDGE_OUTAGE_CYCLES=100 (~20 min).
# The soak runs EDGE_SOAK_SECONDS=180 unless set (1800 for the local soak).
export EDGE_OUTAGE_CYCLES="${EDGE_OUTAGE_CYCLES:-30}"
rm -f target/debug/results.jsonl target/nextest/ci/junit.xml
rc=0
cargo nextest run --locked --workspace --profile ci "${features[@]}" "$@" || rc=$?
phase_end "nextest (build tests + run)"
# The slowest tests, also when some failed (nextest's JUnit report).
if [[ -f target/nextest/ci/junit.xml ]]; then
  python3 scripts/durations.py target/nextest/ci/junit.xml --top 30 || true
fi
((rc == 0)) || exit "$rc"
cargo test --locked --workspace --doc "${features[@]}"
phase_end "doc tests"
# The figures the fault, soak and interop tests recorded, as a table.
mkdir -p docs
cargo run -q --locked -p edge-tests "${features[@]}" --bin results > docs/results.md
phase_end "results table"
echo "test: figures written to docs/results.md"
