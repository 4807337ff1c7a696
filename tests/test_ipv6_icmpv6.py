# -*- test-case-name: tests.test_ipv6_icmpv6 -*-
"""Tests for L{axl.ipv6.icmpv6}: Packet Too Big (spec 5.3, pinned per 8.1 item 9) and echo."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto.keys import Identity
from axl.errors import DecodeError
from axl.ipv6.icmpv6 import decode_packet_too_big, echo_reply, packet_too_big
from axl.ipv6.packet import (
    IPv6Header,
    build_packet,
    decode_header,
    encode_header,
    upper_layer_checksum,
)
from tests.test_ipv6_packet import naive_checksum

A = Identity(bytes(32))
B = Identity(bytes(range(1, 33)))


def big_packet() -> bytes:
    """70 000 bytes from B's address to A's: payload length 0 (it cannot be expressed), no
    next header (59), hop limit 64, payload bytes i & 0xff."""
    head = encode_header(IPv6Header(B.address, A.address, 59, 0))
    return head + bytes(i & 0xFF for i in range(70000 - 40))


class PacketTooBigTests(SynchronousTestCase):
    """The PTB A answers B's 70 000-byte packet with."""

    def test_pinned(self) -> None:
        """
        560 bytes: IPv6 A->B, payload 520, next header 58, hop limit 255; ICMPv6 type 2 code 0,
        checksum 0x7d1f, MTU 65535, then the first 512 bytes of the packet.
        """
        ptb = packet_too_big(big_packet(), 65535)
        self.assertEqual(len(ptb), 560)
        self.assertEqual(
            ptb[:48].hex(),
            "6000000002083aff"
            "020224aec2198a4ade94eae2b97eac87"
            "0201192aa745c066ac1afe1d3bb45d59"
            "02007d1f0000ffff",
        )
        self.assertEqual(ptb[48:], big_packet()[:512])
        self.assertEqual(
            hashlib.sha256(ptb).hexdigest(),
            "09d90506cc3304226c3966164144fefaf67c092d6669d525157ea772a6090538",
        )

    def test_checksum_independently(self) -> None:
        """The checksum recomputed word by word over pseudo-header and message is right."""
        ptb = packet_too_big(big_packet(), 65535)
        message = bytearray(ptb[40:])
        stored = int.from_bytes(message[2:4], "big")
        message[2:4] = b"\x00\x00"
        pseudo = ptb[8:24] + ptb[24:40] + len(message).to_bytes(4, "big") + b"\x00\x00\x00\x3a"
        self.assertEqual(naive_checksum(pseudo + bytes(message)), stored)

    def test_pinned_1300(self) -> None:
        """
        Spec 8.1 item 9's case: a 1300-byte UDP packet B->A (payload bytes i & 0xff) against
        MTU 1280 gives a 560-byte PTB with checksum 0x9d33 and MTU field 1280.
        """
        original = build_packet(B.address, A.address, 17, bytes(i & 0xFF for i in range(1260)))
        ptb = packet_too_big(original, 1280)
        self.assertEqual(
            ptb[:48].hex(),
            "6000000002083aff"
            "020224aec2198a4ade94eae2b97eac87"
            "0201192aa745c066ac1afe1d3bb45d59"
            "02009d3300000500",
        )
        self.assertEqual(ptb[48:], original[:512])
        message = bytearray(ptb[40:])
        message[2:4] = b"\x00\x00"
        pseudo = ptb[8:40] + len(message).to_bytes(4, "big") + b"\x00\x00\x00\x3a"
        self.assertEqual(naive_checksum(pseudo + bytes(message)), 0x9D33)

    def test_short_original(self) -> None:
        """A short offending packet is quoted whole."""
        original = build_packet(B.address, A.address, 17, b"x" * 20)
        ptb = packet_too_big(original, 1280)
        self.assertEqual(ptb[48:], original)
        self.assertEqual(decode_header(ptb).payload_length, 8 + 60)

    def test_decode(self) -> None:
        """A PTB decodes to its sender, MTU and quoted packet."""
        ptb = packet_too_big(big_packet(), 1280)
        parsed = decode_packet_too_big(ptb)
        self.assertEqual((parsed.src, parsed.mtu), (A.address, 1280))
        self.assertEqual(parsed.original, big_packet()[:512])

    def test_decode_bad_checksum(self) -> None:
        """A PTB with a damaged checksum is refused."""
        ptb = bytearray(packet_too_big(big_packet(), 1280))
        ptb[100] ^= 1
        self.assertRaises(DecodeError, decode_packet_too_big, bytes(ptb))

    def test_decode_not_ptb(self) -> None:
        """Non-ICMPv6 packets and other ICMPv6 types are refused."""
        self.assertRaises(
            DecodeError, decode_packet_too_big, build_packet(A.address, B.address, 6, bytes(60))
        )
        self.assertRaises(
            DecodeError, decode_packet_too_big, build_packet(A.address, B.address, 58, bytes(3))
        )

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=120))
    def test_decode_arbitrary(self, data: bytes) -> None:
        """Arbitrary bytes (after a valid header) raise DecodeError only."""
        packet = build_packet(A.address, B.address, 58, data)
        try:
            decode_packet_too_big(packet)
        except DecodeError:
            pass
        try:
            decode_packet_too_big(data)
        except DecodeError:
            pass


class EchoTests(SynchronousTestCase):
    """Echo requests are answered."""

    def test_echo(self) -> None:
        """The reply swaps addresses, has type 129, the same id/seq/data and a valid checksum."""
        body = bytearray(b"\x80\x00\x00\x00\x12\x34\x00\x01hello")
        body[2:4] = upper_layer_checksum(B.address, A.address, 58, bytes(body)).to_bytes(2, "big")
        request = build_packet(B.address, A.address, 58, bytes(body))
        reply = echo_reply(request)
        assert reply is not None
        self.assertEqual(reply[8:24], A.address)
        self.assertEqual(reply[24:40], B.address)
        self.assertEqual(reply[40], 129)
        self.assertEqual(reply[44:], bytes(body[4:]))
        self.assertEqual(upper_layer_checksum(A.address, B.address, 58, reply[40:]), 0)

    def test_not_echo(self) -> None:
        """A bad checksum or another type gets no reply."""
        request = build_packet(B.address, A.address, 58, b"\x80\x00\x00\x00\x12\x34\x00\x01")
        self.assertIsNone(echo_reply(request))
