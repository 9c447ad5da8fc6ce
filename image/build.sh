#!/usr/bin/env bash
# Builds a flashable A/B disk image of edge-agent from Debian packages.
#
#   image/build.sh [--binary PATH] [--out DIR] [--provision DIR] [--extra DIR] [--compress]
#
#   --binary     edge-agent to install (default: release build if present, else
#                debug, from $CARGO_TARGET_DIR or target/)
#   --out        output directory (default image/build; gitignored)
#   --provision  fleet provisioning for the data partition: agent.toml.in
#                (@DEVICE_ID@ is replaced on each box) and optional tls/
#                (default image/provision)
#   --extra      a directory tree copied over the root slot (tests add helpers)
#   --compress   also write disk.img.zst (zstd -10, ~14 s)
#   --bundle     also write bundle.raucb, a signed RAUC bundle of the slot
#   --version V  the bundle's version (default: the agent's git describe)
#   --rootfs-only  only fill the rootfs cache (no --binary needed) and print
#                its path on stdout: CI starts it beside the cargo build so
#                the QEMU tests find it
#   --add-packages "P..."  with --rootfs-only: a separate cache entry with
#                these Debian packages too (scripts/bench-vm.sh adds ffmpeg
#                and gst-launch-1.0 to measure beside them); never a slot
#   --bundle-only  only the bundle (implies --bundle): no ESP, no disk.img, for
#                update tests that never boot this build
#   --slim       leave the media stack (GStreamer, codecs, Mesa) out of the
#                slot (image/slim.py): for test bundles whose agent never
#                starts, so they move half a slot under emulation
#
# Signing: EDGE_RAUC_KEY / EDGE_RAUC_CERT (PEM files or a PKCS#11 URI for the
# key) name the release key, kept outside the repository. EDGE_RELEASE=1
# marks a release build: it fails without them. Otherwise a development key
# is made once under the cache directory's keys/ and used for both the
# image's keyring and its bundles, with a warning; the bundle's manifest
# records which (its description). image/lib/signing.sh, image/README.md.
#
# Outputs in --out: disk.img (GPT: esp, root-a, root-b, data), vmlinuz +
# initrd.img (direct QEMU boot); with --bundle also bundle.raucb (it carries the
# slot image, root.ext4, which is then deleted: build machines are short of disk).
# Steps and why: image/README.md. Needs root (mmdebstrap, chroot).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"

binary="" out="$here/build" provision="$here/provision" extra="" compress=0 bundle=0 bundle_only=0 version="" slim=0 rootfs_only=0
add_packages=""
while (($#)); do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --provision) provision="$2"; shift 2 ;;
    --extra) extra="$2"; shift 2 ;;
    --compress) compress=1; shift ;;
    --bundle) bundle=1; shift ;;
    --bundle-only) bundle=1 bundle_only=1; shift ;;
    --version) version="$2"; shift 2 ;;
    --slim) slim=1; shift ;;
    --rootfs-only) rootfs_only=1; shift ;;
    --add-packages) add_packages="$2"; shift 2 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ -z "$binary" ]]; then
  tdir="${CARGO_TARGET_DIR:-$repo/target}"
  for b in "$tdir/release/edge-agent" "$tdir/debug/edge-agent"; do
    [[ -x "$b" ]] && { binary="$b"; break; }
  done
fi
((rootfs_only)) || [[ -x "$binary" ]] || { echo "build.sh: no edge-agent binary (cargo build -p agent, or --binary)" >&2; exit 1; }
[[ -z "$add_packages" ]] || ((rootfs_only)) || { echo "build.sh: --add-packages is for --rootfs-only (a tool rootfs, never a slot)" >&2; exit 2; }
[[ "$add_packages" =~ ^[a-z0-9.+\ -]*$ ]] || { echo "build.sh: --add-packages takes Debian package names" >&2; exit 2; }
((rootfs_only)) || [[ -f "$provision/agent.toml.in" ]] || { echo "build.sh: $provision/agent.toml.in missing" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "build.sh: run as root (mmdebstrap chroots, files owned by uid 930)" >&2; exit 1; }

# Partition sizes: fixed for the life of a box, so slots leave room to grow
# (the trixie rootfs is 1157 MB; a 1 GiB slot is too small with the full
# GStreamer runtime: docs/image.md#slot-size). The slot *file system* is
# only as large as its content plus 15 %, which keeps bundles and RAUC writes small; RAUC grows it to the
# partition on install (system.conf resize=true). The data partition holds
# a downloaded bundle while it installs (agent/src/firmware.rs): a full
# trixie bundle is 566 MB, which 512 MiB could not hold (docs/image.md#data-size).
SLOT_SIZE=2G ESP_SIZE=128M DATA_SIZE=1G

mkdir -p "$out"
# The rootfs cache lives outside --out's per-build files so tests with their
# own --out share one cache (EDGE_IMAGE_CACHE overrides).
cache="${EDGE_IMAGE_CACHE:-$here/build/cache}"
mkdir -p "$cache"
log="$out/build.log"
: > "$log"

# ---- progress display: one line per step with its duration; a running
# clock on a terminal, a line every 15 s otherwise (CI logs).
step_no=0 steps=7 t_all=$SECONDS
step() {
  local name="$1"; shift
  step_no=$((step_no + 1))
  local t0=$SECONDS ticker
  local every=15 fmt='      %s: %ds\n'
  if [[ -t 2 ]]; then every=1 fmt='\r%s ... %ds'; else printf '[%d/%d] %s ...\n' "$step_no" "$steps" "$name" >&2; fi
  # The trap ends the pending sleep too, so no orphan keeps stderr open.
  ( trap 'kill "${s:-}" 2>/dev/null; exit 0' TERM
    while :; do sleep "$every" & s=$!; wait "$s"; printf "$fmt" "[$step_no/$steps] $name" $((SECONDS - t0)) >&2; done ) &
  ticker=$!
  # In the background, not under `||`: bash ignores errexit in a function
  # called from an `||` list, which would hide a failing command in a step.
  local rc=0 pid
  "$@" >>"$log" 2>&1 &
  pid=$!
  wait "$pid" || rc=$?
  kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null || true
  if ((rc)); then
    printf '\n[%d/%d] %s FAILED (exit %d); last lines of %s:\n' "$step_no" "$steps" "$name" "$rc" "$log" >&2
    tail -n 30 "$log" >&2
    exit "$rc"
  fi
  printf '\r[%d/%d] %s done in %ds\n' "$step_no" "$steps" "$name" $((SECONDS - t0)) >&2
}

# Signing key (image/lib/signing.sh): the release key from the environment;
# EDGE_RELEASE=1 without it fails; else a development key, with a warning.
# shellcheck source=image/lib/signing.sh
source "$here/lib/signing.sh"
select_signing_key "$cache" "$log" || exit 1

# ---- 1. rootfs, cached by the hash of everything that goes into it.
packages=$(grep -v '^\s*#' "$here/packages.list" | xargs | tr ' ' ',')
# A rootfs with added packages is its own cache entry ("rootfs+more-"), so
# neither evicts the other.
prefix=rootfs
if [[ -n "$add_packages" ]]; then
  prefix=rootfs+more
  packages+=",$(echo "$add_packages" | xargs | tr ' ' ',')"
fi
rootfs_key=$( { cat "$here/packages.list" "$here"/hooks/*; [[ -z "$add_packages" ]] || echo "$add_packages"; mmdebstrap --version; } | sha256sum | cut -c1-16)
rootfs="$cache/$prefix-$rootfs_key"
make_rootfs() {
  rm -rf "$rootfs.tmp"
  # --variant=apt: only Essential + apt + the list; no Recommends, so nothing
  # the list does not name (docs/image.md#rootfs). Debian 13 (trixie) for
  # libsrt 1.5.4, GStreamer 1.26, RAUC 1.13 and current VA drivers;
  # non-free-firmware for GPU/NIC firmware and microcode, non-free for
  # Intel's VA driver with its encoders (docs/image.md#base).
  # force-unsafe-io: no fsync per file; a crash just means rebuilding the cache.
  mmdebstrap --variant=apt --mode=root --include="$packages" --dpkgopt=force-unsafe-io \
    --customize-hook="$here/hooks/customize.sh \"\$1\"" \
    trixie "$rootfs.tmp" \
    "deb http://deb.debian.org/debian trixie main non-free-firmware non-free" \
    "deb http://deb.debian.org/debian trixie-updates main non-free-firmware non-free" \
    "deb http://deb.debian.org/debian-security trixie-security main non-free-firmware non-free"
  mv "$rootfs.tmp" "$rootfs"
  # Keep only the newest cache entry: each is ~700 MB.
  find "$cache" -maxdepth 1 -name "$prefix-*" ! -name "$prefix-$rootfs_key" -exec rm -rf {} +
}
if [[ -d "$rootfs" ]]; then
  step "rootfs (cached, key $rootfs_key)" true
else
  step "rootfs (mmdebstrap, 1-3 min; key $rootfs_key)" make_rootfs
fi
if ((rootfs_only)); then
  printf 'image: rootfs cache %s ready in %ds\n' "$rootfs" $((SECONDS - t_all)) >&2
  # Its path alone on stdout, for the tools that boot the tree
  # (tests/src/vm.rs, scripts/bench-vm.sh).
  printf '%s\n' "$rootfs"
  exit 0
fi

# The slot's version: the bundle's, and for a release also /etc/edge-release,
# against which the root update helper refuses downgrades (docs/image.md
# #downgrades). Only a release version (v1.2.3, 1.2.3-rc1) is recorded: a
# development name (`good`, a commit hash) cannot be ordered, and recording
# one would make every later bundle count as a downgrade.
[[ -n "$version" ]] || version=$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)
release_version=""
[[ "$version" =~ ^v?[0-9]{1,18}(\.[0-9]{1,18})+([-+~][0-9A-Za-z.+~-]{0,64})?$ ]] && release_version="$version"

# ---- 2. stage: a copy of the cached rootfs plus the agent and its units.
stage="$out/stage"
make_stage() {
  rm -rf "$stage"
  # A hard-link copy of the cache (seconds, where a real copy of 1.3 GB takes
  # minutes on a busy disk). Every later write must therefore replace files,
  # never write into them: cp --remove-destination, rm before install;
  # systemd-sysusers and systemctl enable already replace/symlink.
  cp -al "$rootfs" "$stage"
  rm -f "$stage/usr/bin/edge-agent"
  # Debug builds carry ~100 MB of DWARF; the box needs none of it.
  install -D -m 0755 "$binary" "$stage/usr/bin/edge-agent"
  strip --strip-debug "$stage/usr/bin/edge-agent"
  # GStreamer's plugin registry, built now instead of on the box: the first
  # start would otherwise load every plugin once, which takes minutes under
  # QEMU TCG and tens of seconds on a small box. Read-only and never
  # rescanned (GST_REGISTRY_UPDATE=no in the agent's image drop-in): the
  # plugins only change with the slot, and each slot carries its own.
  mkdir -p "$stage/usr/lib/edge-agent"
  rm -f "$stage/usr/lib/edge-agent/gstreamer-registry.bin"
  chroot "$stage" env GST_REGISTRY=/usr/lib/edge-agent/gstreamer-registry.bin /usr/bin/edge-agent probe >/dev/null
  chmod 0644 "$stage/usr/lib/edge-agent/gstreamer-registry.bin"
  local unitdir="$stage/usr/lib/systemd/system"
  rm -f "$stage"/etc/systemd/network/80-wired-dhcp.network
  install -m 0644 "$repo"/systemd/edge-agent.service "$repo"/systemd/edge-agent-config.path "$unitdir/"
  install -D -m 0644 "$repo/systemd/sysusers.d/edge-agent.conf" "$stage/usr/lib/sysusers.d/edge-agent.conf"
  install -D -m 0644 "$repo/systemd/tmpfiles.d/edge-agent.conf" "$stage/usr/lib/tmpfiles.d/edge-agent.conf"
  install -D -m 0644 "$repo/systemd/network/80-wired-dhcp.network" "$stage/etc/systemd/network/80-wired-dhcp.network"
  install -D -m 0644 "$repo/systemd/systemd-networkd-wait-online.service.d/edge-agent.conf" \
    "$stage/etc/systemd/system/systemd-networkd-wait-online.service.d/edge-agent.conf"
  # Image-only files: fstab, provisioning, RAUC config (image/overlay/);
  # then --extra, which may replace anything above (tests swap the agent).
  cp -a --remove-destination "$here/overlay/." "$stage/"
  [[ -n "$extra" ]] && cp -a --remove-destination "$extra/." "$stage/"
  # Removing only unlinks the stage's hard links: the cache keeps its files.
  if ((slim)); then python3 "$here/slim.py" "$stage"; fi
  rm -f "$stage/etc/edge-release"
  [[ -n "$release_version" ]] && printf '%s\n' "$release_version" >"$stage/etc/edge-release"
  rm -f "$stage/etc/rauc/keyring.pem"
  install -D -m 0644 "$keyring" "$stage/etc/rauc/keyring.pem"
  # The pinned uid 930 must exist in the slot before first boot so files on
  # the shared data partition match (systemd-sysusers(8) --root).
  systemd-sysusers --root="$stage"
  systemctl --root="$stage" enable edge-agent.service edge-agent-config.path edge-provision.service \
    edge-mark-good.service edge-update.path
  # Units an --extra tree brings are enabled too (symlinks are masks: skip).
  [[ -n "$extra" && -d "$extra/etc/systemd/system" ]] && for u in "$extra"/etc/systemd/system/*.service; do
    [[ -L "$u" ]] || systemctl --root="$stage" enable "$(basename "$u")"
  done
  true
}
step "stage (agent $(basename "$(dirname "$binary")"), units, overlay)" make_stage

# ---- 3. slot and data file systems, built from directories without mounting
# (mkfs.ext4(8) -d), so no loop devices or privileges beyond file ownership.
make_fs() {
  cp "$stage"/boot/vmlinuz-* "$out/vmlinuz"
  cp "$stage"/boot/initrd.img-* "$out/initrd.img"
  rm -f "$out/root.ext4" "$out/data.ext4"
  local mib
  mib=$(du -s --block-size=1M "$stage" | cut -f1)
  mib=$(( (mib * 115 / 100 / 64 + 1) * 64 ))
  mkfs.ext4 -q -F -L root -d "$stage" "$out/root.ext4" "${mib}M"
  local data="$out/data-tree"
  rm -rf "$data"
  mkdir -p "$data/state" "$data/provision"
  cp -a "$provision/." "$data/provision/"
  chown -R 0:0 "$data/provision"
  chmod -R go-rwx "$data/provision"
  # /var/lib/edge-agent is bind-mounted from here (overlay/etc/fstab).
  chown 930:930 "$data/state"
  chmod 0700 "$data/state"
  mkfs.ext4 -q -F -L data -d "$data" "$out/data.ext4" "$DATA_SIZE"
}
step "file systems (root slot ext4, data $DATA_SIZE)" make_fs

# ---- 4. ESP: systemd-boot, an entry per slot, kernel + initrd of slot A.
# Built as a vfat file and filled with mtools: repart 252 mounts the target to
# CopyFiles= and the build hosts have no vfat module (docs/image.md#toolchain).
make_esp() {
  if ((bundle_only)); then return 0; fi
  local esp="$out/esp.vfat"
  rm -f "$esp"
  truncate -s "$ESP_SIZE" "$esp"
  mkfs.vfat -F 32 -n ESP "$esp"
  mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/a ::/b
  # The removable-media path: found by any UEFI without NVRAM boot entries.
  mcopy -i "$esp" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
  mcopy -i "$esp" "$out/vmlinuz" ::/a/vmlinuz
  mcopy -i "$esp" "$out/initrd.img" ::/a/initrd.img
  mcopy -i "$esp" "$here/esp/loader.conf" ::/loader/loader.conf
  mcopy -i "$esp" "$here/esp/slot-a.conf" ::/loader/entries/slot-a.conf
}
step "ESP (systemd-boot, mtools)" make_esp

# ---- 5. GPT with systemd-repart: the partitions are copied in as blocks
# (CopyBlocks=, repart.d(5)); the definitions are templates because
# CopyBlocks= needs absolute paths.
make_disk() {
  if ((bundle_only)); then return 0; fi
  local defs="$out/repart.d"
  rm -rf "$defs" "$out/disk.img"
  mkdir -p "$defs"
  for f in "$here"/repart.d/*.conf; do
    sed "s|@OUT@|$out|g; s|@SLOT_SIZE@|$SLOT_SIZE|g" "$f" > "$defs/$(basename "$f")"
  done
  # --seed fixes the partition UUIDs, so the same inputs give the same table.
  systemd-repart --empty=create --size=auto --dry-run=no --no-pager \
    --definitions="$defs" --seed=6f1c0e4d-6a38-4c3a-9b6c-2f7e0d6a8a10 "$out/disk.img"
}
step "disk (systemd-repart: esp, root-a, root-b, data)" make_disk

maybe_compress() {
  if ((compress)); then zstd -q -f -10 -T0 "$out/disk.img" -o "$out/disk.img.zst"; fi
}
step "compress (--compress)" maybe_compress

# ---- 7. RAUC bundle of the slot image (rauc(1) bundle; manifest format
# "verity": dm-verity protected, signed CMS; docs/image.md#toolchain).
make_bundle() {
  if ((!bundle)); then return 0; fi
  local dir="$out/bundle-dir"
  rm -rf "$dir" "$out/bundle.raucb"
  mkdir -p "$dir"
  ln "$out/root.ext4" "$dir/root.ext4" 2>/dev/null || cp "$out/root.ext4" "$dir/root.ext4"
  sed "s|@VERSION@|$version|; s|@SIGNING@|$signing|" "$here/rauc/manifest.raucm.in" >"$dir/manifest.raucm"
  # zstd: several times faster to pack than mksquashfs's default gzip, and
  # the slot's kernel reads it (CONFIG_SQUASHFS_ZSTD).
  rauc bundle --cert="$cert" --key="$sign_key" --keyring="$keyring" \
    --mksquashfs-args="-comp zstd -Xcompression-level 3" "$dir" "$out/bundle.raucb"
  rm -rf "$dir"
}
step "bundle (--bundle: RAUC, signed)" make_bundle

# Build machines are short of disk: drop the intermediates (the stage is
# hard links, but ~40k inodes), and the slot image, which the bundle carries.
rm -rf "$stage" "$out/data-tree" "$out/esp.vfat" "$out/data.ext4" "$out/root.ext4"

if ((bundle_only)); then
  printf 'bundle: %s (%s) in %ds\n' "$out/bundle.raucb" "$(du -h "$out/bundle.raucb" | cut -f1)" $((SECONDS - t_all)) >&2
else
  printf 'image: %s (%s on disk) in %ds\n' "$out/disk.img" "$(du -h "$out/disk.img" | cut -f1)" $((SECONDS - t_all)) >&2
fi
