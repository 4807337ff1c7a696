# -*- test-case-name: tests.test_ipv6_icmpv6 -*-
"""
ICMPv6 (RFC 4443) as the overlay needs it: Packet Too Big, built as Yggdrasil's ipv6rwc builds
it (spec/yggdrasil-wire.md section 5.3) and parsed when one comes back for a packet we sent;
and the echo reply. Pure.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from axl.errors import DecodeError
from axl.ipv6.packet import HEADER_SIZE, build_packet, decode_header, upper_layer_checksum

__all__ = [
    "NEXT_HEADER_ICMPV6",
    "TYPE_PACKET_TOO_BIG",
    "TYPE_ECHO_REQUEST",
    "TYPE_ECHO_REPLY",
    "PTB_BODY_MAX",
    "PacketTooBig",
    "packet_too_big",
    "decode_packet_too_big",
    "echo_reply",
]

NEXT_HEADER_ICMPV6 = 58
TYPE_PACKET_TOO_BIG = 2
TYPE_ECHO_REQUEST = 128
TYPE_ECHO_REPLY = 129
PTB_BODY_MAX = 512
"""How much of the offending packet a Packet Too Big quotes (ipv6rwc's choice)."""

_ICMP_HEAD = struct.Struct(">BBHI")  # type, code, checksum, MTU (or id/seq for echo)


@dataclass(frozen=True, slots=True)
class PacketTooBig:
    """A parsed Packet Too Big: who sent it, the MTU, and the start of our packet it quotes."""

    src: bytes
    mtu: int
    original: bytes


def packet_too_big(original: bytes, mtu: int) -> bytes:
    """
    The ICMPv6 Packet Too Big answering C{original} (at least a 40-byte IPv6 header): from its
    destination to its source, hop limit 255, quoting its first 512 bytes, with C{mtu}.
    """
    head = decode_header(original)
    body = original[:PTB_BODY_MAX]
    message = _ICMP_HEAD.pack(TYPE_PACKET_TOO_BIG, 0, 0, mtu)
    csum = upper_layer_checksum(head.dst, head.src, NEXT_HEADER_ICMPV6, message, body)
    message = _ICMP_HEAD.pack(TYPE_PACKET_TOO_BIG, 0, csum, mtu)
    return build_packet(head.dst, head.src, NEXT_HEADER_ICMPV6, message + body, hop_limit=255)


def _verified_icmp(packet: bytes) -> tuple[bytes, bytes, bytes]:
    head = decode_header(packet)
    if head.next_header != NEXT_HEADER_ICMPV6:
        raise DecodeError("not an ICMPv6 packet")
    message = packet[HEADER_SIZE:]
    if len(message) < 8:
        raise DecodeError("ICMPv6 message shorter than 8 bytes")
    if upper_layer_checksum(head.src, head.dst, NEXT_HEADER_ICMPV6, message) != 0:
        raise DecodeError("bad ICMPv6 checksum")
    return head.src, head.dst, message


def decode_packet_too_big(packet: bytes) -> PacketTooBig:
    """
    Parse an ICMPv6 Packet Too Big (whole IPv6 packet).

    @raise DecodeError: not IPv6/ICMPv6, not type 2 code 0, a bad checksum, or no quoted header.
    """
    src, _, message = _verified_icmp(packet)
    kind, code, _, mtu = _ICMP_HEAD.unpack_from(message)
    if kind != TYPE_PACKET_TOO_BIG or code != 0:
        raise DecodeError("not a Packet Too Big")
    original = message[8:]
    if len(original) < HEADER_SIZE:
        raise DecodeError("the Packet Too Big does not quote an IPv6 header")
    return PacketTooBig(src, mtu, original)


def echo_reply(request: bytes) -> bytes | None:
    """
    The echo reply to an ICMPv6 echo request (whole packets), or None if C{request} is not a
    valid echo request.
    """
    try:
        src, dst, message = _verified_icmp(request)
    except DecodeError:
        return None
    if message[0] != TYPE_ECHO_REQUEST or message[1] != 0:
        return None
    rest = message[4:]
    head = bytes((TYPE_ECHO_REPLY, 0))
    csum = upper_layer_checksum(dst, src, NEXT_HEADER_ICMPV6, head + b"\x00\x00", rest)
    return build_packet(dst, src, NEXT_HEADER_ICMPV6, head + csum.to_bytes(2, "big") + rest)
