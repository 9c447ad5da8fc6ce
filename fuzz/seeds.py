#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (docs/fuzzing.md).

Seeds are a handful of small valid inputs per target, taken from the
project's own examples and tests; libFuzzer mutates from them. Run from the
repository root: python3 fuzz/seeds.py. Idempotent (file names are fixed).
"""
import json
import pathlib
import struct
import tomllib

root = pathlib.Path(__file__).resolve().parent.parent
corpus = root / "fuzz" / "corpus"


def put(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


examples = sorted((root / "examples").glob("*.toml"))
for p in examples:
    put("config_toml", p.stem, p.read_bytes())
    # The same documents as a fleet would send them (TOML as JSON).
    put("desired_json", p.stem, json.dumps(tomllib.loads(p.read_text())))

# fleet wire: every inbound document type, valid, plus the command set.
commands = [
    ("stream.start", None), ("stream.stop", {}), ("rebirth", None), ("reboot", None),
    ("output.enable", {"output": "primary"}), ("output.disable", {"output": "backup"}),
    ("config.confirm", {"version": 3}), ("telemetry.boost", {"interval_s": 1, "duration_s": 60}),
    ("identify", {"duration_s": 5}), ("channel.start", None), ("channel.stop", None),
    ("firmware.update", {"url": "https://updates.example/b/x.raucb", "sha256": "ab" * 32, "version": "1.2.3"}),
    ("input.pattern", {"pattern": "black", "motion": False, "tone": True}),
]
for i, (name, args) in enumerate(commands):
    req = {"id": f"01J{i:02d}", "name": name, "timeout_s": 30}
    if args is not None:
        req["args"] = args
    put("fleet_wire", f"cmd-{name}", json.dumps(req))
head = {"v": 1, "ts": "2026-12-05T04:00:00Z", "seq": 7, "bdseq": 2}
fleet_local = tomllib.loads((root / "examples" / "fleet-local.toml").read_text())
docs = {
    "desired": {"version": 4, "confirm_within_s": 60, "config": fleet_local},
    "status": {**head, "online": True, "state": "ready"},
    "info": {**head, "info": {"serial": "EA-0001", "model": "edge-1"}},
    "reported": {**head, "ac": 409, "av": 3, "ad": "stale_version", "status": "rejected", "key": "outputs[1].latency_ms", "running": 2},
    "response": {**head, "id": "01J00", "state": "succeeded", "detail": "", "duplicate": False, "result": {"ok": True}},
}
for name, doc in docs.items():
    put("fleet_wire", name, json.dumps(doc))


# RTP media (7 TS packets each, seq 100..) and SMPTE 2022-1 FEC for L=2, D=2.
def ts_packet(pid, cc, pcr=None):
    if pcr is None:
        return bytes([0x47, pid >> 8, pid & 0xFF, 0x10 | cc]) + bytes(184)
    base = pcr
    af = bytes([7, 0x10, (base >> 25) & 0xFF, (base >> 17) & 0xFF, (base >> 9) & 0xFF, (base >> 1) & 0xFF, (base & 1) << 7 | 0x7E, 0])
    return bytes([0x47, pid >> 8, pid & 0xFF, 0x30 | cc]) + af + bytes([0xFF] * (184 - len(af)))


def rtp(seq, ts, payload, pt=33):
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts, 0x1234ABCD) + payload


def fec(seq, media, row):
    bodies = [m[12:] for m in media]
    n = max(len(b) for b in bodies)
    parity = bytearray(n)
    length = ts_rec = 0
    for m, b in zip(media, bodies):
        length ^= len(b)
        ts_rec ^= struct.unpack("!I", m[4:8])[0]
        for i, x in enumerate(b):
            parity[i] ^= x
    sn_base = struct.unpack("!H", media[0][2:4])[0]
    offset, na = (1, len(media)) if row else (2, len(media))
    header = struct.pack("!HHB3sIBBBB", sn_base, length, 0x80 | 33, b"\0\0\0", ts_rec, 0x40 if row else 0, offset, na, 0)
    return struct.pack("!BBHII", 0x80, 96, seq, 0, 0) + header + bytes(parity)


def record(tag, packet):
    return bytes([tag]) + struct.pack("!H", len(packet)) + packet


cc = 0
media = []
for s in range(4):
    pkts = b""
    for _ in range(7):
        pkts += ts_packet(0x100, cc, pcr=27_000_000 * s if cc == 0 else None)
        cc = (cc + 1) & 0xF
    media.append(rtp(100 + s, 3000 * s, pkts))
rows = [fec(500, media[0:2], True), fec(501, media[2:4], True)]
cols = [fec(600, [media[0], media[2]], False), fec(601, [media[1], media[3]], False)]
put("rtp_fec", "media", media[0])
put("rtp_fec", "fec-row", rows[0])
session = b"".join(record(0, m) for i, m in enumerate(media) if i != 1)
session += record(2, rows[0]) + record(1, cols[1]) + record(3, rows[1])
put("rtp_fec", "session-one-loss", session)
put("ts", "ts-packets", b"".join(ts_packet(0x100, c, pcr=c * 2700) for c in range(4)))
put("ts", "session", b"".join(record(0 | 4, m) for i, m in enumerate(media) if i != 2) + record(1, cols[0]) + record(3, b""))

# Panel lines (hal/src/panel/codec.rs): the board's messages and the host's commands.
put("panel_line", "board", "HELLO 1.4.2\nOK 12\nERR 13 bad colour\nBTN stream long\nTEMP 41250\nFAN 2400\nPSU 12010 850\n")
put("panel_line", "host", "HELLO 1\nPING 2\nTALLY 3 program\nLED 4 network blink amber\nLED 5 stream on\n")

# HTTP response heads of the firmware download (agent/src/firmware.rs).
put("firmware_http", "200", "HTTP/1.1 200 OK\r\nContent-Length: 4096\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
put("firmware_http", "206", b"R" + struct.pack("<Q", 1024) + b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1024-4095/4096\r\nContent-Length: 3072\r\n\r\n")
# A resume whose server does not know the whole length yet (`/*`).
put("firmware_http", "206-unknown-total", b"R" + struct.pack("<Q", 1024) + b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1024-4095/*\r\nContent-Length: 3072\r\n\r\n")
put("firmware_http", "404", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
put("firmware_http", "chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
