#!/usr/bin/env python3
"""A minimal authoritative DNS responder for tests (RFC 1035 §4.1).

    dns_server.py ADDR PORT NAME=IPV4 [NAME=IPV4 ...]

Answers A queries for the given names; NOERROR with no answer for other
types of a known name (so AAAA lookups fall through to A); NXDOMAIN for
any other name. Runs until killed. Test peer only: it stands in for the
box's DNS server so a test can take DNS away and give it back.
"""

import socket
import struct
import sys


def qname(msg, off):
    labels = []
    while True:
        n = msg[off]
        off += 1
        if n == 0:
            return ".".join(labels).lower(), off
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n


def answer(msg, table):
    ident, _flags, qd = struct.unpack(">HHH", msg[:6])
    if qd != 1:
        return None
    name, end = qname(msg, 12)
    qtype, _qclass = struct.unpack(">HH", msg[end:end + 4])
    question = msg[12:end + 4]
    ip = table.get(name.rstrip("."))
    if ip is None:
        return struct.pack(">HHHHHH", ident, 0x8183, 1, 0, 0, 0) + question
    if qtype != 1:
        return struct.pack(">HHHHHH", ident, 0x8180, 1, 0, 0, 0) + question
    rr = struct.pack(">HHHIH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(ip)
    return struct.pack(">HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + rr


def main():
    addr, port = sys.argv[1], int(sys.argv[2])
    table = dict(a.split("=", 1) for a in sys.argv[3:])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((addr, port))
    print("ready", flush=True)
    while True:
        msg, peer = sock.recvfrom(512)
        try:
            reply = answer(msg, table)
        except (IndexError, struct.error, UnicodeError):
            reply = None
        if reply:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
