# -*- test-case-name: tests.test_ipv6_packet -*-
"""
The IPv6 header (RFC 8200) and the Internet checksum with the IPv6 pseudo-header (RFC 8200
section 8.1), for the overlay's packets. Pure.

The checksum never loops over bytes: a one's-complement sum of 16-bit words is the value of the
whole (even-length) buffer read as one big-endian integer, modulo 0xFFFF, because 2**16 is 1
modulo 0xFFFF; the modulo is taken by folding the integer's halves together. Each part is
summed on its own, so the pseudo-header and the payload are never concatenated.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from axl.errors import DecodeError

__all__ = [
    "HEADER_SIZE",
    "IPv6Header",
    "decode_header",
    "encode_header",
    "build_packet",
    "checksum",
    "pseudo_header",
    "upper_layer_checksum",
]

HEADER_SIZE = 40
_HEAD = struct.Struct(">IHBB")  # version/class/flow, payload length, next header, hop limit
_PSEUDO_TAIL = struct.Struct(">IxxxB")


@dataclass(frozen=True, slots=True)
class IPv6Header:
    """The fixed 40-byte header."""

    src: bytes
    dst: bytes
    next_header: int
    payload_length: int
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0


def decode_header(packet: bytes) -> IPv6Header:
    """
    Parse the fixed header of C{packet}.

    @raise DecodeError: shorter than 40 bytes or not version 6.
    """
    if len(packet) < HEADER_SIZE:
        raise DecodeError(f"an IPv6 packet is at least {HEADER_SIZE} bytes, got {len(packet)}")
    first, length, next_header, hop_limit = _HEAD.unpack_from(packet)
    if first >> 28 != 6:
        raise DecodeError("not an IPv6 packet")
    return IPv6Header(
        src=bytes(packet[8:24]),
        dst=bytes(packet[24:40]),
        next_header=next_header,
        payload_length=length,
        hop_limit=hop_limit,
        traffic_class=(first >> 20) & 0xFF,
        flow_label=first & 0xFFFFF,
    )


def encode_header(header: IPv6Header) -> bytes:
    """The 40 bytes of C{header}."""
    if len(header.src) != 16 or len(header.dst) != 16:
        raise ValueError("IPv6 addresses are 16 bytes")
    first = (6 << 28) | ((header.traffic_class & 0xFF) << 20) | (header.flow_label & 0xFFFFF)
    return (
        _HEAD.pack(first, header.payload_length, header.next_header, header.hop_limit)
        + header.src
        + header.dst
    )


def build_packet(
    src: bytes, dst: bytes, next_header: int, payload: bytes, hop_limit: int = 64
) -> bytes:
    """A whole packet: header (payload length filled in) then C{payload} (up to 65535 bytes)."""
    if len(payload) > 0xFFFF:
        raise ValueError(f"an IPv6 payload is at most 65535 bytes, got {len(payload)}")
    return encode_header(IPv6Header(src, dst, next_header, len(payload), hop_limit)) + payload


def pseudo_header(src: bytes, dst: bytes, length: int, next_header: int) -> bytes:
    """The 40-byte pseudo-header: src, dst, BE32 upper-layer length, 3 zeros, next header."""
    return src + dst + _PSEUDO_TAIL.pack(length, next_header)


#: Bytes converted to one integer at a time by L{checksum}: converting 64 KiB in 8 KiB slices and
#: adding them (each slice starts an even number of bytes from the end, so its weight is a power
#: of 2**16, which is 1 modulo 0xFFFF) leaves a far smaller integer to fold than converting it whole.
_CHECKSUM_SLICE = 8192

#: Masks of the low C{bits} bits, by C{bits}, for folding (built once: a 32 Kibit mask per
#: packet costs as much as the fold itself).
_FOLD_MASKS: dict[int, int] = {}


def checksum(*parts: bytes | bytearray | memoryview) -> int:
    """
    The Internet checksum (RFC 1071) of the concatenation of C{parts}; every part but the last
    must have an even length. Over data that includes a correct checksum it returns 0.
    """
    total = 0
    last = len(parts) - 1
    for i, part in enumerate(parts):
        n = len(part)
        if n & 1 and i != last:
            raise ValueError("only the last checksummed part may have an odd length")
        if n > _CHECKSUM_SLICE:
            even = n & ~1
            view = memoryview(part)
            total += sum([int.from_bytes(view[j : min(j + _CHECKSUM_SLICE, even)], "big")
                          for j in range(0, even, _CHECKSUM_SLICE)])  # fmt: skip
            if n & 1:
                total += view[even] << 8
        else:
            value = int.from_bytes(part, "big")
            total += value << 8 if n & 1 else value
    # Fold halves together (shifts by multiples of 16 bits keep the value modulo 0xFFFF):
    # additions and shifts of big integers are far cheaper than one big division.
    bits = total.bit_length()
    while bits > 64:
        half = ((bits >> 1) + 15) & ~15
        mask = _FOLD_MASKS.get(half)
        if mask is None:
            mask = _FOLD_MASKS[half] = (1 << half) - 1
        total = (total >> half) + (total & mask)
        bits = half + 1
    folded = total % 0xFFFF
    if folded == 0 and total:
        folded = 0xFFFF  # the one's-complement sum of non-zero words is "negative zero"
    return 0xFFFF ^ folded


def upper_layer_checksum(
    src: bytes, dst: bytes, next_header: int, *parts: bytes | bytearray | memoryview
) -> int:
    """The checksum of an upper-layer message (TCP, ICMPv6, ...) made of C{parts}."""
    length = sum(len(p) for p in parts)
    return checksum(pseudo_header(src, dst, length, next_header), *parts)
