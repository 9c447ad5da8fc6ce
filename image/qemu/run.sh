#!/usr/bin/env bash
# Boots an edge-agent disk image in QEMU the way a box boots: UEFI (OVMF) ->
# systemd-boot -> slot A. One script for people and for tests/tests/vm_boot.rs.
#
#   image/qemu/run.sh DISK [--vars FILE] [--smbios-serial S] [--fwd IP:PORT=COMMAND]...
#
#   --fwd            a guestfwd: guest TCP connections to IP:PORT are handed
#                    to a new COMMAND each (stdin/stdout), e.g.
#                    "10.0.2.100:1883=socat - TCP:127.0.0.1:1883"
#   --vars           writable copy of OVMF_VARS (default: a fresh temp copy);
#                    holds systemd-boot's one-shot entry across reboots
#   --smbios-serial  the DMI serial the box reports (first-boot identity)
#
# Serial console on stdout. The disk is opened with snapshot=on: writes
# (also across guest reboots) go to a temporary overlay and DISK is never
# changed. exec: the caller's PID is QEMU's, so it can kill it by PID.
set -euo pipefail
disk="$1"; shift
vars="" serial="" fwds=()
while (($#)); do
  case "$1" in
    --vars) vars="$2"; shift 2 ;;
    --smbios-serial) serial="$2"; shift 2 ;;
    --fwd) fwds+=("$2"); shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ -z "$vars" ]]; then
  vars=$(mktemp --suffix=.ovmf-vars)
fi
[[ -s "$vars" ]] || cp /usr/share/OVMF/OVMF_VARS_4M.fd "$vars"

# restrict=on: DHCP still works, and only the guestfwd rules are reachable;
# qemu-system(1): restrict "does not affect any explicitly set forwarding
# rules". Nothing else leaves the VM (no UDP at all: SRT is tunnelled).
net="user,id=n0,restrict=on"
for f in "${fwds[@]}"; do
  net+=",guestfwd=tcp:${f%%=*}-cmd:${f#*=}"
done

# TCG: KVM is unusable on the build machines (nested PVM;
# docs/image.md#boot-tests). ENCODER_QEMU_ACCEL=kvm for a machine where it works.
accel="${ENCODER_QEMU_ACCEL:-tcg}"
smbios=()
[[ -n "$serial" ]] && smbios=(-smbios "type=1,serial=$serial")

cpu="${EDGE_QEMU_CPU:-qemu64}"
exec qemu-system-x86_64 -accel "$accel" -M q35 -cpu "$cpu" -m 1024 -smp 2 \
  -display none -serial stdio -monitor none \
  -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
  -drive "if=pflash,format=raw,file=$vars" \
  -netdev "$net" -device virtio-net-pci,netdev=n0 \
  -drive "if=virtio,format=raw,file=$disk,snapshot=on" \
  "${smbios[@]}"
