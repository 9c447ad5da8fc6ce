#!/usr/bin/env bash
# Boots a rootfs tree (the image's cached rootfs, image/build.sh
# --rootfs-only) under QEMU with its own kernel and runs ONE command as
# root in place of systemd, then powers off. For measurements that need the
# image's kernel rather than the build machine's: fq and SO_MAX_PACING_RATE
# (docs/fec.md#kernel-pacing-in-a-vm), which the build machine's kernel
# lacks. Not a box: no systemd, no agent service, no network but loopback.
#
#   image/qemu/run-in-rootfs.sh --rootfs DIR --work DIR [--add SRC:DEST]... -- COMMAND [ARG]...
#
#   --rootfs  the tree to boot (read only: the disk is built from a
#             hard-link copy, and only new files are added to that copy)
#   --work    scratch directory for the copy and the ext4 disk (~1.5 GB);
#             the caller deletes it
#   --add     a host file copied to DEST in the guest (executable bits kept)
#
# Serial console on stdout; the command's output is on it, then the line
# `run-in-rootfs: exit N` with its exit status. QEMU exits when the guest
# powers off; exec: the caller's PID is QEMU's, so it can kill it by PID.
set -euo pipefail
rootfs="" work="" adds=()
while (($#)); do
  case "$1" in
    --rootfs) rootfs="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --add) adds+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) echo "run-in-rootfs.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -d "$rootfs/boot" && -n "$work" && $# -gt 0 ]] || { echo "usage: run-in-rootfs.sh --rootfs DIR --work DIR [--add SRC:DEST]... -- COMMAND..." >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "run-in-rootfs.sh: run as root (the rootfs is root's; mkfs.ext4 -d keeps owners)" >&2; exit 1; }

stage="$work/stage"
rm -rf "$stage"
mkdir -p "$work"
# A hard-link copy: seconds for 1.2 GB. Only new files go into it (below),
# so the cache's inodes are never written.
cp -al "$rootfs" "$stage"
mkdir -p "$stage/run-in-rootfs"
for a in "${adds[@]}"; do
  dest="$stage/${a#*:}"
  mkdir -p "$(dirname "$dest")"
  rm -f "$dest"
  cp "${a%%:*}" "$dest"
done

# The command, quoted for the guest's shell.
cmd=$(printf '%q ' "$@")
cat > "$stage/run-in-rootfs/init" <<EOF
#!/bin/sh
# PID 1 of a run-in-rootfs.sh guest. initramfs-tools has mounted /dev,
# /proc, /sys and /run; the rest of a box's start-up is not wanted here.
mount -t tmpfs tmpfs /tmp
ip link set lo up
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
cd /run-in-rootfs
$cmd
echo "run-in-rootfs: exit \$?"
sync
echo o > /proc/sysrq-trigger
sleep 60
EOF
chmod 755 "$stage/run-in-rootfs/init"

mib=$(du -s --block-size=1M "$stage" | cut -f1)
disk="$work/root.ext4"
rm -f "$disk"
mkfs.ext4 -q -F -d "$stage" -L scratch "$disk" "$((mib + mib / 5 + 256))M"
kernel=$(find "$stage/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n 1)
initrd=$(find "$stage/boot" -maxdepth 1 -name 'initrd.img-*' | sort | tail -n 1)
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
rm -rf "$stage"

# TCG as in run.sh (docs/image.md#boot-tests); -cpu max so the guest has the
# host's instruction set extensions (the media tools pick code paths by it).
# loglevel=1: the command's output shares the serial line with the kernel's
# console, and a kernel warning (TCG's late timers make some) must not land
# in the middle of a line a caller parses.
accel="${ENCODER_QEMU_ACCEL:-tcg}"
exec qemu-system-x86_64 -accel "$accel" -M q35 -cpu "${EDGE_QEMU_CPU:-max}" -m 2048 -smp 2 \
  -display none -serial stdio -monitor none -no-reboot -nic none \
  -kernel "$work/vmlinuz" -initrd "$work/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 init=/run-in-rootfs/init panic=-1 quiet loglevel=1" \
  -drive "if=virtio,format=raw,file=$disk"
