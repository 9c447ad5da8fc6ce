#!/usr/bin/env bash
# edge-bench inside a QEMU guest that runs the image's kernel, for the
# figures that need a kernel feature the build machine lacks: the fq qdisc
# behind kernel pacing (SO_MAX_PACING_RATE, docs/fec.md#kernel-pacing-in-a-vm).
#
#   scripts/bench-vm.sh [fec|srt] [edge-bench options]     (default: fec)
#
# The guest is the image's rootfs plus ffmpeg and gst-launch-1.0 (the
# references) and perf (to see where a sender's CPU goes in this kernel;
# image/build.sh --rootfs-only --add-packages, cached) booted by
# image/qemu/run-in-rootfs.sh with a release edge-bench copied in. In one
# boot the bench runs twice: with fq as loopback's root qdisc (the agent's
# output reports `kernel-fq`), then without a qdisc (its userspace pacer),
# each beside the same references (EDGE_BENCH_VM_FQ_ONLY=1: the fq run only).
#
# Under TCG every instruction is emulated: absolute CPU figures are many
# times the host's, and only the ratios between senders measured in the
# same boot mean anything. Needs root (mmdebstrap, mkfs); 5-10 min warm.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
[[ $(id -u) -eq 0 ]] || { echo "bench-vm.sh: run as root (image/build.sh, run-in-rootfs.sh)" >&2; exit 1; }
bench="${1:-fec}"
(($#)) && shift
case "$bench" in fec|srt) ;; *) echo "bench-vm.sh: fec or srt, not $bench" >&2; exit 2 ;; esac

cargo build --release --locked -p edge-bench
rootfs=$(image/build.sh --rootfs-only --add-packages "ffmpeg gstreamer1.0-tools linux-perf")
[[ -d "$rootfs/boot" ]] || { echo "bench-vm.sh: image/build.sh named no rootfs" >&2; exit 1; }

work=$(mktemp -d /var/tmp/bench-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
# fq as the image's uplinks have it (systemd/network/80-wired-dhcp.network):
# quantum and initial quantum of one full-size frame.
cat > "$work/guest.sh" <<'EOF'
#!/bin/sh
bench="$1"; shift
echo "bench-vm: kernel $(uname -r), $(nproc) vCPUs under QEMU"
tc qdisc replace dev lo root fq quantum 1514 initial_quantum 1514 || exit 1
echo "bench-vm: == loopback root qdisc: fq (kernel pacing) =="
edge-bench "$bench" "$@" || exit 1
[ "$EDGE_BENCH_VM_FQ_ONLY" = 1 ] && exit 0
tc qdisc del dev lo root || exit 1
echo "bench-vm: == loopback root qdisc: none (the agent's userspace pacer) =="
edge-bench "$bench" "$@"
EOF
args=(--rootfs "$rootfs" --work "$work")
args+=(--add "${CARGO_TARGET_DIR:-target}/release/edge-bench:/usr/local/bin/edge-bench")
args+=(--add "$work/guest.sh:/run-in-rootfs/guest.sh")
status=0
timeout 3600 image/qemu/run-in-rootfs.sh "${args[@]}" -- \
  env EDGE_BENCH_VM_FQ_ONLY="${EDGE_BENCH_VM_FQ_ONLY:-0}" sh /run-in-rootfs/guest.sh "$bench" "$@" \
  | tee "$work/console.log" || status=$?
grep -q '^run-in-rootfs: exit 0' "$work/console.log" || status=1
exit "$status"
