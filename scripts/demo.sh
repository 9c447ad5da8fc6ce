#!/usr/bin/env bash
# The demo: the test pattern encoded and pushed over SRT to two local libsrt
# receivers standing in for the primary and backup MediaConnect flows, with
# live per-output status. Ctrl-C stops everything.
#
#   DEMO_SECONDS=30 scripts/demo.sh    stop by itself after 30 s
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --release

PASS=correct-horse-battery-staple
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Two libsrt listeners, as MediaConnect srt-listener sources are: each relays
# what it receives to a local UDP port you can play.
for n in 1 2; do
  srt-live-transmit -q -s:0 \
    "srt://:900$n?mode=listener&latency=500&passphrase=$PASS&pbkeylen=16" \
    "udp://127.0.0.1:500$n" >/dev/null 2>&1 &
  pids+=($!)
done

cat <<MSG
edge-agent demo: test pattern -> H.264 + AAC -> MPEG-TS -> SRT (AES-128)
  primary -> srt://127.0.0.1:9001 (listener) -> udp://127.0.0.1:5001
  backup  -> srt://127.0.0.1:9002 (listener) -> udp://127.0.0.1:5002
Watch either stream in another terminal:
  ffplay -fflags nobuffer udp://127.0.0.1:5001      (or VLC: udp://@127.0.0.1:5001)
Try: kill one listener (kill ${pids[0]}) and watch the backup carry on.
Status every 2 s below; Ctrl-C to stop.

MSG

target/release/edge-agent run --config examples/dual-srt.toml &
agent=$!
pids+=("$agent")
if [[ -n "${DEMO_SECONDS:-}" ]]; then
  sleep "$DEMO_SECONDS"
  kill -INT "$agent"
fi
wait "$agent"
