#!/usr/bin/env bash
# mmdebstrap --customize-hook: runs once per cached rootfs, with the rootfs
# directory as $1 (mmdebstrap(1), "--customize-hook"). Only things that do
# not depend on the agent go here; the agent, its units and configuration are
# added at assembly time (image/build.sh) so changing them never rebuilds
# the rootfs. Editing this file changes the cache key.
set -euo pipefail
root="$1"

# DHCP on wired ports through systemd-networkd (config from systemd/network).
chroot "$root" systemctl enable systemd-networkd.service
# No timers that reach out or churn the disk on a box nobody watches
# (docs/image.md#rootfs).
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer \
  e2scrub_all.timer fstrim.timer 2>/dev/null || true
# Empty machine-id: every box gets its own on first boot (machine-id(5)),
# and systemd.firstboot=off on the kernel command line skips the prompt.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Journal in RAM only, bounded (docs/image.md#journal): the root slot is
# replaced by updates, the data partition (1 GiB) must keep room for the
# agent's state and RAUC's status, and flash should not wear on a log nobody
# reads on site; the fleet controller gets the agent's events over MQTT.
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\nRuntimeMaxFileSize=8M\nRateLimitIntervalSec=30s\nRateLimitBurst=2000\n' \
  > "$root/etc/systemd/journald.conf.d/edge.conf"
# fq as every interface's root qdisc (docs/image.md#qdisc): the agent's RTP
# outputs pace with SO_MAX_PACING_RATE, which only fq honours. Applied when
# networkd brings a link up, after systemd-sysctl has run.
mkdir -p "$root/etc/sysctl.d"
printf 'net.core.default_qdisc = fq\n' > "$root/etc/sysctl.d/60-edge-fq.conf"
# NTP: DHCP's servers (networkd hands them to timesyncd) and, when
# provisioning names none, Debian's pool. Provisioning may set its own
# (/data/provision/timesyncd.conf, docs/image.md#time).
# resolv.conf must point at resolved's stub (the package links it; make sure).
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
# Documentation and apt lists are dead weight in an appliance slot.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/var/lib/apt/lists/*

# ---- Slot diet. Every update writes the whole slot, and the bundle crosses a
# venue's uplink: under QEMU TCG, RAUC copied ~3 MB/s and the slot was 1.6 GB.
# Translations and icon themes: a headless box shows no UI in any language.
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf "$root"/usr/share/icons/*
# Kernel modules for hardware an encoder box never carries: Wi-Fi, Bluetooth,
# InfiniBand, ISDN, staging and comedi drivers, SCSI targets, cluster file
# systems. Capture (media), GPU (VA-API), Ethernet, USB, sound, storage stay.
for kdir in "$root"/usr/lib/modules/*/kernel; do
  rm -rf "$kdir"/drivers/net/wireless "$kdir"/drivers/infiniband "$kdir"/drivers/staging \
    "$kdir"/drivers/isdn "$kdir"/drivers/bluetooth "$kdir"/net/bluetooth "$kdir"/net/mac80211 \
    "$kdir"/net/wireless "$kdir"/drivers/comedi "$kdir"/drivers/target "$kdir"/fs/ocfs2 "$kdir"/fs/nfsd
  # The rest xz-compressed as the kernel's own build would (kmod(8) loads
  # .ko.xz; the initrd was made above with its own uncompressed copies).
  find "$kdir" -name '*.ko' -print0 | xargs -0 -r -n 64 -P "$(nproc)" xz --check=crc32 --lzma2=dict=1MiB
  chroot "$root" depmod -a "$(basename "$(dirname "$kdir")")"
done
