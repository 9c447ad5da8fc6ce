#!/usr/bin/env python3
"""Removes the media stack from a staged slot (image/build.sh --slim).

    image/slim.py STAGE

For test bundles whose agent is a stand-in that never starts (the QEMU update
test's "bad" bundle): the slot must still boot through the image's units,
but needs no GStreamer, codecs or Mesa, which are about 45 % of the rootfs,
so its bundle downloads and installs in about half the time under TCG.

Removes the GStreamer plugins and libraries, the big codec and GPU
libraries below, and then every ELF file that links (DT_NEEDED) against
something removed, until nothing left points at a removed library. Fails,
removing nothing, if that would take any program outside the library
directories (systemd, udev, RAUC, the shell...): the slot would not boot
the way a real one does.
"""

import fnmatch
import os
import re
import subprocess
import sys

LIB = "/usr/lib/x86_64-linux-gnu"
SEEDS = [
    f"{LIB}/gstreamer-1.0/*",
    f"{LIB}/gstreamer1.0/*",
    f"{LIB}/libgst*",
    f"{LIB}/libLLVM*",
    f"{LIB}/libz3*",
    f"{LIB}/dri/*",
    f"{LIB}/libav*",
    f"{LIB}/libx26*",
    f"{LIB}/libcodec2*",
    f"{LIB}/libmfx*",
    f"{LIB}/mfx/*",
    f"{LIB}/libSvtAv1*",
    f"{LIB}/libaom*",
    f"{LIB}/libflite*",
    f"{LIB}/libplacebo*",
    f"{LIB}/librsvg*",
    f"{LIB}/libgtk-3*",
    f"{LIB}/libOpenEXR*",
    f"{LIB}/libjxl*",
    f"{LIB}/libvpx*",
    f"{LIB}/libgfortran*",
    f"{LIB}/lapack/*",
    f"{LIB}/blas/*",
]
# Whatever the removal reaches must stay inside these (plugins, modules).
ALLOWED = (f"{LIB}/",)


def main(stage):
    elfs = []
    for d, _, files in os.walk(stage):
        for f in files:
            p = os.path.join(d, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as fh:
                if fh.read(4) == b"\x7fELF":
                    elfs.append(p)
    needed, soname = {}, {}
    for p in elfs:
        out = subprocess.run(["readelf", "-d", p], capture_output=True, text=True).stdout
        needed[p] = re.findall(r"\(NEEDED\).*\[(.*)\]", out)
        m = re.search(r"\(SONAME\).*\[(.*)\]", out)
        soname[p] = m.group(1) if m else os.path.basename(p)

    def rel(p):
        return p[len(stage):]

    removed = {p for p in elfs if any(fnmatch.fnmatch(rel(p), s) for s in SEEDS)}
    while True:
        kept = {soname[p] for p in elfs if p not in removed}
        gone = {soname[p] for p in removed} - kept
        more = {p for p in elfs if p not in removed and any(n in gone for n in needed[p])}
        if not more:
            break
        removed |= more
    outside = sorted(rel(p) for p in removed if not rel(p).startswith(ALLOWED))
    if outside:
        print("slim: would break programs the slot boots with:", *outside, sep="\n  ", file=sys.stderr)
        return 1
    for p in removed:
        os.remove(p)
    # Symlinks (sonames, .so) left pointing at removed files.
    dangling = 0
    for d, _, files in os.walk(stage + LIB):
        for f in files:
            p = os.path.join(d, f)
            if not os.path.islink(p):
                continue
            target = os.readlink(p)
            # Absolute targets are inside the stage, not on the build host.
            target = stage + target if target.startswith("/") else os.path.join(d, target)
            if not os.path.exists(target):
                os.remove(p)
                dangling += 1
    print(f"slim: removed {len(removed)} ELF files and {dangling} dangling links")
    return 0


if __name__ == "__main__":
    sys.exit(main(os.path.abspath(sys.argv[1]).rstrip("/")))
