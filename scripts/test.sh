#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what it needs, builds,
# then runs every test (unit, property, and integration tests against real
# peers: srt-live-transmit, ffprobe, GStreamer, ffmpeg) with per-test
# timeouts from .config/nextest.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test: installing cargo-nextest"
  cargo install --locked cargo-nextest >/dev/null
fi
export RUST_BACKTRACE=1
rm -f target/debug/results.jsonl
cargo nextest run --locked --workspace --profile ci "$@"
cargo test --locked --workspace --doc
# The figures the fault, soak and interop tests recorded, as a table.
mkdir -p docs
cargo run -q --locked -p edge-tests --bin results > docs/results.md
echo "test: figures written to docs/results.md"
