# -*- test-case-name: tests.test_overlay_address -*-
"""
L{OverlayAddress}: where an overlay TCP connection ends, as Twisted sees it (C{getPeer}/C{getHost}).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.interfaces import IAddress
from zope.interface import implementer

from axl.crypto.address import addr_for_key, format_address

__all__ = ["OverlayAddress"]


@implementer(IAddress)
@dataclass(frozen=True)
class OverlayAddress:
    """
    A node's full public key and an overlay TCP port.

    @ivar public_key: the 32-byte ed25519 key (the full key, not the partial one AXL shows).
    @ivar port: the overlay TCP port.
    """

    public_key: bytes
    port: int
    ipv6: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.public_key) != 32:
            raise ValueError("an overlay address needs a 32-byte public key")
        object.__setattr__(self, "ipv6", format_address(addr_for_key(self.public_key)))

    @property
    def key_hex(self) -> str:
        """The key as 64 lowercase hex digits (a bridge peer id)."""
        return self.public_key.hex()

    def __str__(self) -> str:
        return f"[{self.ipv6}]:{self.port}"
