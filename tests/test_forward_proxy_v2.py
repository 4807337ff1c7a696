"""
Tests for L{axl.forward.proxy_v2}: the PROXY protocol v2 header a C{remote_tcp} forward sends.
"""

from __future__ import annotations

import ipaddress
import struct

from twisted.trial.unittest import SynchronousTestCase

from axl.errors import DecodeError
from axl.forward.proxy_v2 import SIGNATURE, TLV_YGGDRASIL_KEY, decode_proxy_v2, encode_proxy_v2

SRC = ipaddress.IPv6Address("200:1111::1").packed
DST = ipaddress.IPv6Address("200:2222::2").packed
KEY = bytes(range(32))


class ProxyV2Tests(SynchronousTestCase):
    """Encoding and decoding."""

    def test_layout(self) -> None:
        """Signature, 0x21 (v2 PROXY), 0x21 (TCP6), length 71, addresses, ports, TLV 0xE0."""
        header = encode_proxy_v2(SRC, 50000, DST, 80, KEY)
        self.assertEqual(header[:12], SIGNATURE)
        self.assertEqual(header[12:16], b"\x21\x21\x00\x47")
        self.assertEqual(header[16:52], SRC + DST + struct.pack("!HH", 50000, 80))
        self.assertEqual(header[52:], b"\xe0\x00\x20" + KEY)
        self.assertEqual(len(header), 16 + 36 + 35)

    def test_round_trip(self) -> None:
        """The decoder gives back addresses, ports and the caller's key, and the bytes used."""
        header = encode_proxy_v2(SRC, 50000, DST, 80, KEY)
        parsed, used = decode_proxy_v2(header + b"GET /") or self.fail("incomplete")
        self.assertEqual(used, len(header))
        self.assertEqual((parsed.command, parsed.source, parsed.destination), ("PROXY", (SRC, 50000), (DST, 80)))
        self.assertEqual(parsed.yggdrasil_key, KEY)
        self.assertEqual(parsed.tlvs, ((TLV_YGGDRASIL_KEY, KEY),))

    def test_udp_family(self) -> None:
        """The UDP flavour uses family 0x22."""
        self.assertEqual(encode_proxy_v2(SRC, 1, DST, 2, None, udp=True)[13], 0x22)

    def test_without_key(self) -> None:
        """No key: no TLV, length 36."""
        header = encode_proxy_v2(SRC, 1, DST, 2, None)
        self.assertEqual(header[14:16], b"\x00\x24")
        parsed, _ = decode_proxy_v2(header) or self.fail("incomplete")
        self.assertIsNone(parsed.yggdrasil_key)

    def test_truncated(self) -> None:
        """Every proper prefix of a header decodes to None (wait for more)."""
        header = encode_proxy_v2(SRC, 1, DST, 2, KEY)
        for i in range(len(header)):
            self.assertIsNone(decode_proxy_v2(header[:i]), i)

    def test_bad(self) -> None:
        """Bad signature, version, command, overrunning TLVs and short address blocks are errors."""
        good = encode_proxy_v2(SRC, 1, DST, 2, KEY)
        for bad in (
            b"GET / HTTP/1.1\r\n\r\n",
            good[:12] + b"\x11" + good[13:],
            good[:12] + b"\x2f" + good[13:],
            good[:14] + b"\x00\x26" + good[16:52] + b"\xe0\x00",
            good[:14] + b"\x00\x28" + good[16:52] + b"\xe0\x00\x20\x00",
            good[:14] + b"\x00\x04" + good[16:20],
        ):
            self.assertRaises(DecodeError, decode_proxy_v2, bad)

    def test_local_command(self) -> None:
        """A LOCAL header (health check) has no addresses."""
        parsed, used = decode_proxy_v2(SIGNATURE + b"\x20\x00\x00\x00") or self.fail("incomplete")
        self.assertEqual((parsed.command, parsed.source, used), ("LOCAL", None, 16))

    def test_bad_arguments(self) -> None:
        """Addresses must be 16 bytes and the key 32."""
        self.assertRaises(ValueError, encode_proxy_v2, b"\x01" * 4, 1, DST, 2, None)
        self.assertRaises(ValueError, encode_proxy_v2, SRC, 1, DST, 2, b"short")
