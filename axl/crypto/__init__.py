"""
Identity and addressing: ed25519 keys, Yggdrasil's IPv6 address scheme, the bloom C{xform}.
"""

from axl.crypto.address import (
    addr_for_key,
    format_address,
    key_for_addr,
    key_for_subnet,
    subnet_for_key,
    xform,
)
from axl.crypto.keys import Identity, short_key, verify

__all__ = [
    "Identity",
    "verify",
    "short_key",
    "addr_for_key",
    "subnet_for_key",
    "key_for_addr",
    "key_for_subnet",
    "xform",
    "format_address",
]
