# -*- test-case-name: tests.test_overlay_address -*-
"""
Tests for L{axl.overlay_address.OverlayAddress}.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError

from twisted.internet.interfaces import IAddress
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from axl.overlay_address import OverlayAddress

KEY_A = bytes.fromhex("3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")
ADDR_A = "202:24ae:c219:8a4a:de94:eae2:b97e:ac87"


class OverlayAddressTests(SynchronousTestCase):
    """An overlay endpoint address: full key and port."""

    def test_provides_iaddress(self) -> None:
        """OverlayAddress is an IAddress, as Twisted transports' getPeer/getHost return."""
        self.assertTrue(verifyObject(IAddress, OverlayAddress(KEY_A, 7000)))

    def test_fields(self) -> None:
        """The address carries the key, the port, the key's hex and its IPv6 text."""
        address = OverlayAddress(KEY_A, 7000)
        self.assertEqual((address.public_key, address.port), (KEY_A, 7000))
        self.assertEqual(address.key_hex, KEY_A.hex())
        self.assertEqual(address.ipv6, ADDR_A)
        self.assertEqual(str(address), f"[{ADDR_A}]:7000")

    def test_equality(self) -> None:
        """Addresses compare and hash by key and port."""
        self.assertEqual(OverlayAddress(KEY_A, 1), OverlayAddress(KEY_A, 1))
        self.assertNotEqual(OverlayAddress(KEY_A, 1), OverlayAddress(KEY_A, 2))
        self.assertEqual(len({OverlayAddress(KEY_A, 1), OverlayAddress(KEY_A, 1)}), 1)

    def test_frozen(self) -> None:
        """An address cannot be changed."""
        address = OverlayAddress(KEY_A, 1)
        with self.assertRaises(FrozenInstanceError):
            address.port = 2  # type: ignore[misc]

    def test_bad_key(self) -> None:
        """A key that is not 32 bytes (e.g. a 16-byte address) is a ValueError."""
        self.assertRaises(ValueError, OverlayAddress, KEY_A[:16], 1)
