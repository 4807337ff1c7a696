"""
Tests for L{axl.ipv6.udp}: the UDP header and its mandatory IPv6 checksum, and L{UDPLayer} over
two in-memory stacks (sessions + IPv6, L{axl.ipv6.testing}).
"""

from __future__ import annotations

import ipaddress
import struct

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto.address import addr_for_key
from axl.errors import DecodeError
from axl.ipv6.udp import NEXT_HEADER_UDP, Datagram, decode_udp, encode_udp
from tests.forward_fakes import two_stacks, udp_of
from tests.test_ipv6_packet import naive_checksum

SRC = ipaddress.IPv6Address("200:1111::1").packed
DST = ipaddress.IPv6Address("200:2222::2").packed


def reference_checksum(src: bytes, dst: bytes, udp: bytes) -> int:
    """RFC 1071 the slow way over pseudo-header + datagram."""
    return naive_checksum(src + dst + struct.pack("!I3xB", len(udp), 17) + udp)


class CodecTests(SynchronousTestCase):
    """encode_udp / decode_udp."""

    def test_layout_and_checksum(self) -> None:
        """Header fields, IPv6 next header 17, and the checksum of RFC 768 + RFC 8200 8.1."""
        packet = encode_udp(SRC, 5353, DST, 53, b"hello")
        self.assertEqual(packet[6], NEXT_HEADER_UDP)
        udp = packet[40:]
        sport, dport, length, csum = struct.unpack("!HHHH", udp[:8])
        self.assertEqual((sport, dport, length), (5353, 53, 13))
        self.assertEqual(csum, reference_checksum(SRC, DST, udp[:6] + b"\x00\x00" + udp[8:]))

    def test_round_trip(self) -> None:
        """Decoding gives back everything (odd and even lengths, empty payload)."""
        for payload in (b"", b"x", b"ab", bytes(range(256)) * 5):
            d = decode_udp(encode_udp(SRC, 1, DST, 2, payload), b"k" * 32)
            self.assertEqual(d, Datagram(b"k" * 32, SRC, 1, DST, 2, payload))

    def test_zero_checksum_sent_as_ffff(self) -> None:
        """A computed checksum of 0 goes out as 0xFFFF (0 means 'none', forbidden in IPv6)."""
        probe = encode_udp(SRC, 1, DST, 2, b"\x00\x00")
        filler = struct.unpack("!H", probe[46:48])[0]  # adding it makes the sum all ones
        packet = encode_udp(SRC, 1, DST, 2, filler.to_bytes(2, "big"))
        self.assertEqual(reference_checksum(SRC, DST, packet[40:46] + b"\0\0" + packet[48:]), 0)
        self.assertEqual(packet[46:48], b"\xff\xff")
        self.assertEqual(decode_udp(packet).payload, filler.to_bytes(2, "big"))

    def test_bad(self) -> None:
        """Bad checksum, no checksum, length mismatches, short datagram, not UDP: DecodeError."""
        good = encode_udp(SRC, 1, DST, 2, b"data")
        flipped = good[:-1] + bytes((good[-1] ^ 1,))
        no_sum = good[:46] + b"\x00\x00" + good[48:]
        bad_len = good[:44] + b"\x00\x05" + good[46:]
        short = good[:4] + b"\x00\x04" + good[6:44]
        ip_len = good[:4] + b"\x00\x10" + good[6:]
        tcp = good[:6] + b"\x06" + good[7:]
        for bad in (flipped, no_sum, bad_len, short, ip_len, tcp):
            self.assertRaises(DecodeError, decode_udp, bad)

    def test_too_big(self) -> None:
        """A datagram over 65535 bytes cannot be encoded."""
        self.assertRaises(ValueError, encode_udp, SRC, 1, DST, 2, bytes(65528))


class LayerTests(SynchronousTestCase):
    """UDPLayer between two stacks over sessions."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.net, self.a, self.b = two_stacks(self, self.clock)
        self.ua, self.ub = udp_of(self.a), udp_of(self.b)

    def test_built_with_the_overlay(self) -> None:
        """build_overlay registers a UDP layer for next header 17."""
        got: list[Datagram] = []
        self.ub.bind(53, got.append)
        self.ua.send(4000, addr_for_key(self.b.public_key), 53, b"query")
        self.net.flush()
        self.assertEqual(got, [Datagram(self.a.public_key, addr_for_key(self.a.public_key), 4000,
                                        addr_for_key(self.b.public_key), 53, b"query")])  # fmt: skip

    def test_reply_path(self) -> None:
        """A reply to the sender's address and port reaches its handler."""
        got: list[Datagram] = []
        port = self.ua.bind(0, got.append)
        self.assertTrue(49152 <= port <= 65535)
        self.ub.bind(53, lambda d: self.ub.send(53, d.src, d.sport, d.payload.upper()))
        self.ua.send(port, addr_for_key(self.b.public_key), 53, b"ping")
        self.net.flush()
        self.assertEqual([d.payload for d in got], [b"PING"])

    def test_closed_port_dropped(self) -> None:
        """A datagram for a port nobody bound is dropped and counted."""
        self.ua.send(1, addr_for_key(self.b.public_key), 9, b"x")
        self.net.flush()
        self.assertEqual(self.ub.stats["dropped"], 1)

    def test_bind_errors(self) -> None:
        """A taken or out-of-range port cannot be bound; unbind frees it."""
        self.ua.bind(53, lambda d: None)
        self.assertRaises(ValueError, self.ua.bind, 53, lambda d: None)
        self.assertRaises(ValueError, self.ua.bind, 70000, lambda d: None)
        self.ua.unbind(53)
        self.assertEqual(self.ua.bind(53, lambda d: None), 53)

    def test_ephemeral_ports_distinct(self) -> None:
        """Ephemeral binds get distinct ports."""
        ports = {self.ua.bind(0, lambda d: None) for _ in range(100)}
        self.assertEqual(len(ports), 100)

    def test_payload_limit(self) -> None:
        """The largest payload is the MTU minus 48; one byte more is refused before sending."""
        got: list[Datagram] = []
        self.ub.bind(7, got.append)
        self.ua.send(7, addr_for_key(self.b.public_key), 7, bytes(self.ua.max_payload))
        self.net.flush()
        self.assertEqual(len(got[0].payload), 65535 - 48)
        self.assertRaises(ValueError, self.ua.send, 7, addr_for_key(self.b.public_key), 7,
                          bytes(self.ua.max_payload + 1))  # fmt: skip

    def test_corrupt_dropped(self) -> None:
        """A datagram with a bad checksum is dropped, not delivered."""
        got: list[Datagram] = []
        self.ub.bind(7, got.append)
        packet = encode_udp(addr_for_key(self.a.public_key), 7, addr_for_key(self.b.public_key), 7, b"abc")
        self.ub.packet_received(self.a.public_key, packet[:-1] + b"x")
        self.assertEqual((got, self.ub.stats["dropped"]), ([], 1))
