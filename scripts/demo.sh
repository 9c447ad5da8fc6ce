#!/usr/bin/env bash
# The demo: the test pattern encoded and pushed over SRT to two local libsrt
# receivers standing in for the primary and backup MediaConnect flows, with
# live per-output status. Ctrl-C stops everything.
#
#   DEMO_SECONDS=30 scripts/demo.sh    stop by itself after 30 s
set -euo pipefail
cd "$(dirname "$0")/.."
# The demo needs no AWS: skip the SDK crates, which add many minutes to a
# cold release build (plain `scripts/setup.sh --release` includes them).
EDGE_FEATURES= scripts/setup.sh --release

PASS=correct-horse-battery-staple
pids=()
demo_dir=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n "$demo_dir" ]]; then rm -rf "$demo_dir"; fi
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

# A front-panel board simulated on a pty: prints its LEDs and tally when
# they change; USR1 presses its button long (toggles streaming).
demo_dir=$(mktemp -d /tmp/edge-demo.XXXXXX)
target/release/panel-sim "$demo_dir/panel" &
pids+=($!)
panel_pid=$!
config="$demo_dir/agent.toml"
{ cat examples/dual-srt.toml; printf '\n[panel]\nport = "%s"\n' "$demo_dir/panel"; } > "$config"

cat <<MSG
edge-agent demo: test pattern -> H.264 + AAC -> MPEG-TS -> SRT (AES-128)
  primary -> srt://127.0.0.1:9001 (listener) -> udp://127.0.0.1:5001
  backup  -> srt://127.0.0.1:9002 (listener) -> udp://127.0.0.1:5002
Watch either stream in another terminal:
  ffplay -fflags nobuffer udp://127.0.0.1:5001      (or VLC: udp://@127.0.0.1:5001)
Try: kill one listener (kill ${pids[0]}) and watch the backup carry on and its LED change;
     kill -USR1 <agent pid> to pull the input cable (slate on air, NO SIGNAL) and again to plug it back;
     kill -USR1 $panel_pid for a long press on the panel button (stops/starts the stream).
Status every 2 s below; Ctrl-C to stop.

MSG

target/release/edge-agent run --config "$config" &
agent=$!
echo "agent pid $agent"
pids+=("$agent")
if [[ -n "${DEMO_SECONDS:-}" ]]; then
  sleep "$DEMO_SECONDS"
  kill -INT "$agent"
fi
wait "$agent"
