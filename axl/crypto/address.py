# -*- test-case-name: tests.test_address -*-
"""
Yggdrasil's key <-> IPv6 mapping (spec/yggdrasil-wire.md section 1.2-1.5).

Everything works on 256-bit integers rather than bit loops.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

__all__ = [
    "ADDR_PREFIX",
    "SUBNET_PREFIX",
    "addr_for_key",
    "subnet_for_key",
    "key_for_addr",
    "key_for_subnet",
    "xform",
    "format_address",
    "is_address",
    "is_subnet",
]

ADDR_PREFIX = 0x02
SUBNET_PREFIX = 0x03
_ALL = (1 << 256) - 1


def addr_for_key(key: bytes) -> bytes:
    """The 16-byte 200::/8 address of a 32-byte ed25519 public key (Go C{AddrForKey})."""
    if len(key) != 32:
        raise ValueError("a public key is 32 bytes")
    inv = int.from_bytes(key, "big") ^ _ALL
    # Count leading one bits: the bit length of the complement of inv tells where the first zero is.
    ones = 256 - (inv ^ _ALL).bit_length()
    rest_bits = 256 - ones - 1
    nbytes = max(0, min(14, rest_bits // 8))
    body = 0
    if nbytes:
        body = (inv >> (rest_bits - nbytes * 8)) & ((1 << (nbytes * 8)) - 1)
    tail = body.to_bytes(nbytes, "big") + bytes(14 - nbytes)
    return bytes((ADDR_PREFIX, ones & 0xFF)) + tail


def subnet_for_key(key: bytes) -> bytes:
    """The 8-byte prefix of the key's routed /64 inside 300::/8 (Go C{SubnetForKey})."""
    addr = addr_for_key(key)
    return bytes((addr[0] | 0x01,)) + addr[1:8]


def key_for_addr(addr: bytes) -> bytes:
    """
    The partial key behind an address or a (zero-padded) subnet (Go C{Address.GetKey}): the bits
    the address carries are the key's, every bit after them is 1.
    """
    if len(addr) != 16:
        raise ValueError("an address is 16 bytes")
    ones = addr[1]
    k = ((1 << ones) - 1) << (256 - ones)
    body = int.from_bytes(addr[2:], "big")
    shift = 256 - (ones + 1) - 112
    k |= body << shift if shift >= 0 else body >> -shift
    return ((k & _ALL) ^ _ALL).to_bytes(32, "big")


def key_for_subnet(subnet: bytes) -> bytes:
    """The partial key behind a subnet (its first 8 bytes; the rest is ignored)."""
    return key_for_addr(bytes(subnet[:8]) + bytes(8))


@lru_cache(maxsize=4096)
def xform(key: bytes) -> bytes:
    """The bloom/lookup transform Yggdrasil gives ironwood: C{GetKey(SubnetForKey(key))}."""
    return key_for_subnet(subnet_for_key(key))


def format_address(addr: bytes) -> str:
    """RFC 5952 text of a 16-byte address (or an 8-byte subnet prefix, as C{.../64})."""
    if len(addr) == 8:
        return f"{ipaddress.IPv6Address(bytes(addr) + bytes(8))}/64"
    return str(ipaddress.IPv6Address(bytes(addr)))


def is_address(addr: bytes) -> bool:
    """Whether a 16-byte IPv6 address lies in 200::/8 (a node address)."""
    return addr[0] == ADDR_PREFIX


def is_subnet(addr: bytes) -> bool:
    """Whether a 16-byte IPv6 address lies in 300::/8 (inside some node's /64)."""
    return addr[0] == SUBNET_PREFIX
