# -*- test-case-name: tests.test_tcp_segment -*-
"""
TCP segments on the wire (RFC 9293 section 3.1): header and option decoding/encoding and the
Internet checksum over the IPv6 pseudo-header (RFC 8200 section 8.1), computed by
L{axl.ipv6.packet.checksum} (no byte loops).
"""

from __future__ import annotations

import struct
from typing import Any

from axl.errors import DecodeError
from axl.ipv6.packet import checksum, pseudo_header, upper_layer_checksum

__all__ = [
    "ACK",
    "CWR",
    "ECE",
    "FIN",
    "IPV6_HEADER",
    "NEXT_HEADER_TCP",
    "PSH",
    "RST",
    "SYN",
    "URG",
    "Segment",
    "build_tcp",
    "decode_segment",
    "encode_options",
    "flag_names",
    "syn_options",
    "tcp_checksum",
    "ts_option",
    "verify_checksum",
]

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
_FLAG_NAMES = ((FIN, "FIN"), (SYN, "SYN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"), (URG, "URG"),
               (ECE, "ECE"), (CWR, "CWR"))

NEXT_HEADER_TCP = 6
IPV6_HEADER = 40

OPT_EOL, OPT_NOP, OPT_MSS, OPT_WS, OPT_SACK_PERM, OPT_SACK, OPT_TS = 0, 1, 2, 3, 4, 5, 8

_HDR = struct.Struct("!HHIIBBHHH")
_TS = struct.Struct("!II")
_TS_ONLY = b"\x01\x01\x08\x0a"
_MSS = struct.Struct("!BBH")


def flag_names(flags: int) -> str:
    """Comma-joined flag names in the order FIN, SYN, RST, PSH, ACK, URG, ECE, CWR ("SYN,ACK")."""
    return ",".join(name for bit, name in _FLAG_NAMES if flags & bit)


class Segment:
    """
    One decoded TCP segment. C{tsval}/C{tsecr} are None without a timestamp option; C{mss},
    C{wscale} are None when absent; C{options} lists (name, value) pairs in wire order
    ("nop", None), ("mss", n), ("wscale", n), ("sack_perm", True), ("sack", [(l, r), ...]),
    ("ts", (val, ecr)), ("eol", None) or ("unknown", (kind, data)).
    """

    __slots__ = (
        "ack",
        "checksum",
        "dport",
        "flags",
        "hdr_len",
        "mss",
        "options",
        "payload",
        "sack",
        "sack_perm",
        "seq",
        "sport",
        "tsecr",
        "tsval",
        "urgent",
        "window",
        "wscale",
    )

    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    hdr_len: int
    checksum: int
    urgent: int
    mss: int | None
    wscale: int | None
    sack_perm: bool
    sack: list[tuple[int, int]]
    tsval: int | None
    tsecr: int | None
    options: list[tuple[str, object]]
    payload: memoryview

    @property
    def seg_len(self) -> int:
        """Sequence space the segment occupies: payload plus one each for SYN and FIN."""
        return len(self.payload) + (self.flags & SYN and 1) + (self.flags & FIN and 1)

    def __repr__(self) -> str:
        return (f"<Segment {self.sport}->{self.dport} {flag_names(self.flags)} seq={self.seq} "
                f"ack={self.ack} win={self.window} len={len(self.payload)}>")


def decode_segment(data: bytes | bytearray | memoryview) -> Segment:
    """
    Decode a TCP header, its options and payload (the checksum is not checked here).

    @raise DecodeError: the header is short, the data offset is impossible, or an option is
        malformed (bad length, or running past the header).
    """
    n = len(data)
    if n < 20:
        raise DecodeError(f"TCP segment of {n} bytes is shorter than its 20-byte header")
    s = Segment()
    (s.sport, s.dport, s.seq, s.ack, off, s.flags, s.window, s.checksum,
     s.urgent) = _HDR.unpack_from(data, 0)
    hdr_len = (off >> 4) * 4
    if hdr_len < 20 or hdr_len > n:
        raise DecodeError(f"TCP data offset {hdr_len} is outside 20..{n}")
    s.hdr_len = hdr_len
    s.mss = s.wscale = s.tsval = s.tsecr = None
    s.sack_perm = False
    s.sack = []
    mv = data if isinstance(data, memoryview) else memoryview(data)
    s.payload = mv[hdr_len:]
    if hdr_len == 20:
        s.options = []
    elif hdr_len == 32 and mv[20:24] == _TS_ONLY:
        s.tsval, s.tsecr = _TS.unpack_from(data, 24)
        s.options = [("nop", None), ("nop", None), ("ts", (s.tsval, s.tsecr))]
    else:
        _decode_options(s, mv[20:hdr_len])
    return s


def _decode_options(s: Segment, opts: memoryview) -> None:
    out: list[tuple[str, object]] = []
    i, n = 0, len(opts)
    while i < n:
        kind = opts[i]
        if kind == OPT_EOL:
            out.append(("eol", None))
            break
        if kind == OPT_NOP:
            out.append(("nop", None))
            i += 1
            continue
        if i + 1 >= n:
            raise DecodeError(f"TCP option {kind} has no length byte")
        length = opts[i + 1]
        if length < 2 or i + length > n:
            raise DecodeError(f"TCP option {kind} has bad length {length}")
        body = opts[i + 2 : i + length]
        if kind == OPT_MSS:
            if length != 4:
                raise DecodeError(f"MSS option of length {length}")
            s.mss = int.from_bytes(body, "big")
            out.append(("mss", s.mss))
        elif kind == OPT_WS:
            if length != 3:
                raise DecodeError(f"window-scale option of length {length}")
            s.wscale = body[0]
            out.append(("wscale", s.wscale))
        elif kind == OPT_SACK_PERM:
            if length != 2:
                raise DecodeError(f"SACK-permitted option of length {length}")
            s.sack_perm = True
            out.append(("sack_perm", True))
        elif kind == OPT_TS:
            if length != 10:
                raise DecodeError(f"timestamp option of length {length}")
            s.tsval, s.tsecr = _TS.unpack_from(body, 0)
            out.append(("ts", (s.tsval, s.tsecr)))
        elif kind == OPT_SACK:
            if (length - 2) % 8 or length == 2:
                raise DecodeError(f"SACK option of length {length}")
            blocks = [_TS.unpack_from(body, j) for j in range(0, length - 2, 8)]
            s.sack = blocks
            out.append(("sack", blocks))
        else:
            out.append(("unknown", (kind, bytes(body))))
        i += length
    s.options = out


def ts_option(tsval: int, tsecr: int) -> bytes:
    """The 12-byte NOP, NOP, timestamps option block used on every non-SYN segment."""
    return _TS_ONLY + _TS.pack(tsval, tsecr)


def syn_options(mss: int, wscale: int | None, ts: tuple[int, int] | None,
                sack_perm: bool = False) -> bytes:
    """
    Options for a SYN or SYN-ACK, in the layout Linux and gVisor use: MSS, SACK-permitted and
    timestamps (or NOP-padded), NOP + window scale.
    """
    out = bytearray(_MSS.pack(OPT_MSS, 4, mss))
    if ts is not None:
        out += (b"\x04\x02" if sack_perm else b"\x01\x01") + b"\x08\x0a" + _TS.pack(*ts)
    elif sack_perm:
        out += b"\x01\x01\x04\x02"
    if wscale is not None:
        out += bytes((OPT_NOP, OPT_WS, 3, wscale))
    return bytes(out)


def encode_options(options: list[tuple[str, object]]) -> bytes:
    """
    Encode (name, value) options as L{decode_segment} reports them, padding with EOL to a
    multiple of 4 bytes.
    """
    out = bytearray()
    value: Any
    for name, value in options:
        if name == "nop":
            out.append(OPT_NOP)
        elif name == "eol":
            out.append(OPT_EOL)
        elif name == "mss":
            out += _MSS.pack(OPT_MSS, 4, value)
        elif name == "wscale":
            out += bytes((OPT_WS, 3, value))
        elif name == "sack_perm":
            out += b"\x04\x02"
        elif name == "ts":
            out += b"\x08\x0a" + _TS.pack(*value)
        elif name == "sack":
            blocks = list(value)
            out += bytes((OPT_SACK, 2 + 8 * len(blocks))) + b"".join(_TS.pack(*b) for b in blocks)
        elif name == "unknown":
            kind, body = value
            out += bytes((kind, 2 + len(body))) + body
        else:
            raise ValueError(f"unknown TCP option name {name!r}")
    if len(out) > 40:
        raise ValueError(f"TCP options of {len(out)} bytes exceed 40")
    out += bytes(-len(out) % 4)
    return bytes(out)


def tcp_checksum(src: bytes, dst: bytes, segment: bytes | bytearray | memoryview) -> int:
    """The checksum of a segment whose checksum field holds zero."""
    return upper_layer_checksum(src, dst, NEXT_HEADER_TCP, segment)


def verify_checksum(src: bytes, dst: bytes, segment: bytes | bytearray | memoryview) -> bool:
    """Whether a received segment (checksum field included) sums to zero."""
    return checksum(pseudo_header(src, dst, len(segment), NEXT_HEADER_TCP), segment) == 0


def build_tcp(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
              window: int, options: bytes = b"", payload: bytes | memoryview = b"") -> bytes:
    """One whole TCP segment (header, options, payload) with a correct checksum."""
    if len(options) % 4 or len(options) > 40:
        raise ValueError("TCP options must be a multiple of 4 bytes, at most 40")
    hdr_len = 20 + len(options)
    hdr = _HDR.pack(sport, dport, seq, ack, (hdr_len // 4) << 4, flags, window, 0, 0)
    csum = checksum(pseudo_header(src, dst, hdr_len + len(payload), NEXT_HEADER_TCP), hdr,
                    options, payload)
    return b"".join((hdr[:16], csum.to_bytes(2, "big"), hdr[18:], options, payload))
