#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what it needs, builds,
# then runs every test (unit, property, and integration tests against real
# peers: srt-live-transmit, ffprobe, GStreamer, ffmpeg) with per-test
# timeouts from .config/nextest.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
# CI builds and tests with AWS support (MediaConnect/MediaLive against moto);
# EDGE_FEATURES= scripts/test.sh runs the suite without it.
export EDGE_FEATURES="${EDGE_FEATURES-edge-tests/aws}"
features=()
[[ -n "$EDGE_FEATURES" ]] && features=(--features "$EDGE_FEATURES")
scripts/setup.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test: installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
fi
export RUST_BACKTRACE=1
rm -f target/debug/results.jsonl
cargo nextest run --locked --workspace --profile ci "${features[@]}" "$@"
cargo test --locked --workspace --doc "${features[@]}"
# The figures the fault, soak and interop tests recorded, as a table.
mkdir -p docs
cargo run -q --locked -p edge-tests "${features[@]}" --bin results > docs/results.md
echo "test: figures written to docs/results.md"
