# -*- test-case-name: tests.test_ipv6_packet -*-
"""Tests for L{axl.ipv6.packet}: the IPv6 header and the pseudo-header checksum."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from axl.errors import DecodeError
from axl.ipv6.packet import (
    IPv6Header,
    build_packet,
    checksum,
    decode_header,
    encode_header,
    pseudo_header,
    upper_layer_checksum,
)

SRC = bytes.fromhex("020224aec2198a4ade94eae2b97eac87")
DST = bytes.fromhex("0201192aa745c066ac1afe1d3bb45d59")


def naive_checksum(data: bytes) -> int:
    """RFC 1071 the slow way: add 16-bit words with end-around carry, complement."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class HeaderTests(SynchronousTestCase):
    """Encoding and decoding the fixed header."""

    def test_roundtrip(self) -> None:
        """Every field survives encode/decode."""
        h = IPv6Header(SRC, DST, 6, 1234, hop_limit=7, traffic_class=0xAB, flow_label=0xFEDCB)
        raw = encode_header(h)
        self.assertEqual(len(raw), 40)
        self.assertEqual(raw[:8].hex(), "6abfedcb04d20607")
        self.assertEqual(decode_header(raw + b"x" * 10), h)

    def test_build_packet(self) -> None:
        """build_packet fills in the payload length and appends the payload."""
        packet = build_packet(SRC, DST, 17, b"hello")
        self.assertEqual(decode_header(packet).payload_length, 5)
        self.assertEqual(packet[40:], b"hello")
        self.assertRaises(ValueError, build_packet, SRC, DST, 17, bytes(65536))

    def test_rejects(self) -> None:
        """Short data and other IP versions are DecodeErrors."""
        self.assertRaises(DecodeError, decode_header, bytes(39))
        self.assertRaises(DecodeError, decode_header, b"\x45" + bytes(39))

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=80))
    def test_decode_arbitrary(self, data: bytes) -> None:
        """Arbitrary bytes decode or raise DecodeError, nothing else."""
        try:
            h = decode_header(data)
        except DecodeError:
            return
        self.assertEqual(encode_header(h), data[:40])


class ChecksumTests(SynchronousTestCase):
    """The word-sum-by-big-integer checksum."""

    def test_known(self) -> None:
        """RFC 1071's example words give the expected checksum."""
        data = bytes.fromhex("0001f203f4f5f6f7")
        self.assertEqual(checksum(data), 0xFFFF ^ 0xDDF2)

    def test_matches_naive(self) -> None:
        """Random buffers of many lengths, odd ones included, match the slow reference."""
        for n in (0, 1, 2, 3, 39, 40, 1279, 1280, 8191, 8192, 8193, 8194, 16385, 65534, 65535):
            data = os.urandom(n)
            self.assertEqual(checksum(data), naive_checksum(data), n)
            self.assertEqual(checksum(b"\xff" * n), naive_checksum(b"\xff" * n), n)

    def test_parts(self) -> None:
        """Summing parts separately equals summing their concatenation."""
        a, b, c = os.urandom(40), os.urandom(20), os.urandom(33)
        self.assertEqual(checksum(a, b, c), naive_checksum(a + b + c))
        big, tail = os.urandom(20000), os.urandom(9001)  # parts longer than one conversion slice
        self.assertEqual(checksum(a, big, tail), naive_checksum(a + big + tail))
        self.assertEqual(checksum(bytearray(big), memoryview(tail)), naive_checksum(big + tail))
        self.assertRaises(ValueError, checksum, os.urandom(9001), b"yy")
        self.assertRaises(ValueError, checksum, b"x", b"yy")

    def test_zero_and_all_ones(self) -> None:
        """All-zero data gives 0xFFFF; data summing to 0xFFFF gives 0 (as RFC 1071 does)."""
        self.assertEqual(checksum(bytes(8)), 0xFFFF)
        self.assertEqual(checksum(b"\xff\xff"), naive_checksum(b"\xff\xff"))
        self.assertEqual(checksum(b"\xff\xff\xff\xff"), 0)

    def test_verifies_to_zero(self) -> None:
        """A message with its checksum filled in sums to 0."""
        body = bytearray(os.urandom(101))
        body[2:4] = b"\x00\x00"
        csum = upper_layer_checksum(SRC, DST, 58, bytes(body))
        body[2:4] = csum.to_bytes(2, "big")
        self.assertEqual(upper_layer_checksum(SRC, DST, 58, bytes(body)), 0)
        self.assertEqual(naive_checksum(pseudo_header(SRC, DST, 101, 58) + bytes(body)), 0)

    def test_pseudo_header(self) -> None:
        """The pseudo-header is src, dst, BE32 length, three zeros, next header."""
        ph = pseudo_header(SRC, DST, 0x10203, 6)
        self.assertEqual(ph[32:].hex(), "0001020300000006")

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def test_property(self, data: bytes) -> None:
        """The fast checksum equals the naive one for any data."""
        self.assertEqual(checksum(data), naive_checksum(data))
