#!/usr/bin/env bash
# Runs one of the ingest examples against local peers that stand in for the
# AWS side, with live status, like scripts/demo.sh does for dual-srt.toml.
#
#   scripts/example.sh srt-listener     two srt-live-transmit callers pull from
#                                       the box's listeners (MediaLive SRT_CALLER)
#   scripts/example.sh medialive-rtmp   two ffmpeg RTMP servers take pipelines A
#                                       and B (MediaLive RTMP_PUSH)
#   scripts/example.sh rist             librist's ristreceiver takes the RIST
#                                       stream (a MediaConnect rist source)
#
# Each peer writes what it receives to a file under a temporary directory,
# and the script prints its size and what ffprobe makes of it at the end.
#   EXAMPLE_SECONDS=30 scripts/example.sh rist   stop by itself after 30 s
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:-}"
case "$name" in
  srt-listener | medialive-rtmp | rist) ;;
  *) echo "usage: scripts/example.sh srt-listener|medialive-rtmp|rist" >&2; exit 2 ;;
esac
EDGE_FEATURES= scripts/setup.sh --release

PASS=correct-horse-battery-staple
pids=()
dir=$(mktemp -d /tmp/edge-example.XXXXXX)
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for f in "$dir"/*.ts "$dir"/*.flv; do
    [[ -e "$f" ]] || continue
    printf '%s: %s bytes; ' "$(basename "$f")" "$(stat -c %s "$f")"
    ffprobe -v error -show_entries stream=codec_name -of csv=p=0 "$f" 2>/dev/null | sort -u | tr '\n' ' '
    echo
  done
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# The peers: what the AWS side runs, on this machine.
case "$name" in
  srt-listener)
    # MediaLive's SRT_CALLER input calls the box: the box listens on 9001 and
    # 9002 (examples/srt-listener.toml); the callers retry until it is up.
    for n in 1 2; do
      srt-live-transmit -q -a:yes "srt://127.0.0.1:900$n?mode=caller&latency=500&passphrase=$PASS&pbkeylen=16" \
        "file://con" >"$dir/caller-$n.ts" 2>/dev/null &
      pids+=($!)
    done
    ;;
  medialive-rtmp)
    for port in 1935 1936; do
      ffmpeg -nostdin -loglevel error -listen 1 -i "rtmp://127.0.0.1:$port/live/x" -c copy -f flv "$dir/server-$port.flv" &
      pids+=($!)
    done
    ;;
  rist)
    ristreceiver -p 0 -i "rist://@127.0.0.1:5000?buffer=1000" -o "udp://127.0.0.1:5010" >/dev/null 2>&1 &
    pids+=($!)
    # Simple profile (-p 0), as MediaConnect takes it; what it delivers, into a file.
    ffmpeg -nostdin -loglevel error -i "udp://127.0.0.1:5010?timeout=60000000" -c copy -f mpegts "$dir/rist.ts" &
    pids+=($!)
    ;;
esac

echo "edge-agent example: examples/$name.toml against local peers (received files in $dir); Ctrl-C to stop."
target/release/edge-agent run --config "examples/$name.toml" &
agent=$!
pids+=("$agent")
if [[ -n "${EXAMPLE_SECONDS:-}" ]]; then
  sleep "$EXAMPLE_SECONDS"
  kill -INT "$agent"
fi
wait "$agent" || true
