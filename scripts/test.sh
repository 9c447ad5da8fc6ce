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

# A one-off build: incremental state is ~1.5 GB of disk nobody reuses.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Free disk where the build goes, in GiB (printed at the start and the end:
# CI machines come with whatever disk they have, and the suite needs ~12 GiB).
disk_free() { df -BG --output=avail . 2>/dev/null | tail -n 1 | tr -dc '0-9'; }
disk_start=$(disk_free)
echo "test: ${disk_start:-?} GiB free on $(df --output=target . 2>/dev/null | tail -n 1)"
if [[ -n "$disk_start" ]] && ((disk_start < 14)); then
  echo "test: warning: under 14 GiB free; the build (~7 GiB) and the image tests (~3 GiB) may run out" >&2
fi

# A report from an earlier run must not stand in for this one's.
rm -f target/nextest/ci/junit.xml
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
  echo "Disk: ${disk_start:-?} GiB free at the start, $(disk_free) GiB at the end; target/ holds $(du -sh target 2>/dev/null | cut -f1)"
}
rootfs_pid=""
on_exit() {
  # A failed build leaves no background rootfs build behind.
  [[ -n "$rootfs_pid" ]] && kill "$rootfs_pid" 2>/dev/null
  print_phases
  # Last line: the nextest run's counts (JUnit), as "N passed, N failed".
  if [[ -f target/nextest/ci/junit.xml ]]; then python3 scripts/durations.py target/nextest/ci/junit.xml --summary || true; fi
}
trap on_exit EXIT

scripts/setup.sh --no-build
phase_end "setup (apt, venvs)"
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test: installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
fi

# ---- Gates, before the tests: rustfmt and cargo-deny first (seconds, no
# build), then clippy, which is the build itself. `cargo clippy` would
# type-check every dependency a second time in check mode, 5-10 min on a
# cold 2-core tree; instead every build below runs clippy-driver as the
# workspace crates' compiler (RUSTC_WORKSPACE_WRAPPER, the mechanism cargo
# clippy uses), so the same lints with -D warnings run once, on the
# workspace crates only, and the dependencies are compiled once. The build
# covers every target (--all-targets; the tests then reuse it), so it is
# `cargo clippy --workspace --all-targets --locked $features -- -D warnings`
# plus codegen. EDGE_GATES=0: no gates (local iterations).
gates="${EDGE_GATES:-1}"
if [[ "$gates" != 0 ]]; then
  failed=()
  echo "test: gate: cargo fmt --all --check"
  if ! cargo fmt --all --check >/dev/null 2>&1; then
    echo "test: rustfmt: $(cargo fmt --all --check 2>/dev/null | grep -c '^Diff in') hunks differ (cargo fmt --all --check shows them)"
    failed+=(fmt)
  fi
  echo "test: gate: cargo deny check bans licenses sources"
  .venv/bin/cargo-deny check --hide-inclusion-graph bans licenses sources || failed+=(deny)
  phase_end "gates: rustfmt, cargo-deny"
  if ((${#failed[@]})); then
    echo "test: gates failed: ${failed[*]}; not building, no tests run" >&2
    exit 1
  fi
  RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
  [[ -x "$RUSTC_WORKSPACE_WRAPPER" ]] || { echo "test: clippy-driver missing (rustup component add clippy)" >&2; exit 1; }
  export RUSTC_WORKSPACE_WRAPPER
  # clippy-driver's argument list, as cargo clippy passes it.
  export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
fi
# The image's rootfs (mmdebstrap: downloads, dpkg, 5 min cold) fills its
# cache beside the cargo build instead of inside the first QEMU test, which
# runs alone on the machine. Root only, like the QEMU tests themselves.
if [[ $(id -u) -eq 0 ]] && command -v mmdebstrap >/dev/null; then
  mkdir -p target
  image/build.sh --rootfs-only --out target/rootfs-prebuild >target/rootfs-prebuild.log 2>&1 &
  rootfs_pid=$!
fi
echo "test: build${RUSTC_WORKSPACE_WRAPPER:+ + gate: clippy -D warnings}"
cargo build --locked --workspace --all-targets "${features[@]}"
phase_end "build --all-targets${RUSTC_WORKSPACE_WRAPPER:+ (with clippy)}"
if [[ -n "$rootfs_pid" ]]; then
  # Never two rootfs builds at once: the QEMU tests would start their own.
  wait "$rootfs_pid" || { echo "test: rootfs prebuild failed (the QEMU tests retry):"; tail -n 20 target/rootfs-prebuild.log; }
  rootfs_pid=""
  phase_end "wait for the image rootfs"
fi

export RUST_BACKTRACE=1
# The repeated-outage test runs 30 of its 10 s outages here (~6 min); the
# long local run (README, "Measured") sets EDGE_OUTAGE_CYCLES=100 (~20 min).
# The soak runs EDGE_SOAK_SECONDS=180 unless set (1800 for the local soak).
export EDGE_OUTAGE_CYCLES="${EDGE_OUTAGE_CYCLES:-30}"
rm -f target/debug/results.jsonl
rc=0
cargo nextest run --locked --workspace --profile ci "${features[@]}" "$@" || rc=$?
phase_end "nextest (build tests + run)"
# The slowest tests, also when some failed (nextest's JUnit report).
if [[ -f target/nextest/ci/junit.xml ]]; then
  python3 scripts/durations.py target/nextest/ci/junit.xml --top 30 || true
fi
((rc == 0)) || exit "$rc"
# Coverage-guided fuzzing of the parsers (docs/fuzzing.md): each target for
# EDGE_FUZZ_SECONDS from its committed corpus; any crash fails the run.
scripts/fuzz.sh "${EDGE_FUZZ_SECONDS:-10}"
phase_end "fuzz ($(ls fuzz/fuzz_targets/*.rs | wc -l) targets x ${EDGE_FUZZ_SECONDS:-10} s)"
cargo test --locked --workspace --doc "${features[@]}"
phase_end "doc tests"
# The figures the fault, soak and interop tests recorded, as a table.
mkdir -p docs
cargo run -q --locked -p edge-tests "${features[@]}" --bin results > docs/results.md
phase_end "results table"
echo "test: figures written to docs/results.md"
