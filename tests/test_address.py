# -*- test-case-name: tests.test_address -*-
"""
Tests for L{axl.crypto.address}: Yggdrasil's key <-> IPv6 mapping and the bloom C{xform}
(spec/yggdrasil-wire.md section 1), pinned by the worked examples of section 1.6 and every key of
the transcript run (tests/data/keys.json, a copy of shared/vectors/keys.json).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto import Identity
from axl.crypto.address import (
    addr_for_key,
    format_address,
    is_address,
    is_subnet,
    key_for_addr,
    key_for_subnet,
    subnet_for_key,
    xform,
)

DATA = os.path.join(os.path.dirname(__file__), "data")


def load_key_vectors() -> dict[str, dict[str, str]]:
    """The keys of the transcript run, by node name."""
    with open(os.path.join(DATA, "keys.json")) as f:
        data = json.load(f)
    return {name: value for name, value in data.items() if not name.startswith("_")}


FF = "ff"

# spec/yggdrasil-wire.md section 1.6: seed, public key, ones, address bytes, address, subnet,
# GetKey(address) prefix (then all ff), xform prefix (then all ff).
WORKED = {
    "A": (
        bytes(32),
        "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29",
        2,
        "020224aec2198a4ade94eae2b97eac87",
        "202:24ae:c219:8a4a:de94:eae2:b97e:ac87",
        "302:24ae:c219:8a4a::/64",
        "3b6a27bcceb6a42d62a3a8d02a6f1f",
        "3b6a27bcceb6bf",
    ),
    "B": (
        bytes(range(1, 33)),
        "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664",
        1,
        "0201192aa745c066ac1afe1d3bb45d59",
        "201:192a:a745:c066:ac1a:fe1d:3bb4:5d59",
        "301:192a:a745:c066::/64",
        "79b5562e8fe654f94078b112e8a9bf",
        "79b5562e8fe67f",
    ),
    "C": (
        hashlib.sha256(b"ygg-vector-71").digest(),
        "004bfbe9f78d2834c89d8a19cba144113ac5d731e08eae053df326a935104241",
        9,
        "0209d0105821cb5f2cdd89d798d17aef",
        "209:d010:5821:cb5f:2cdd:89d7:98d1:7aef",
        "309:d010:5821:cb5f::/64",
        "004bfbe9f78d2834c89d8a19cba1443f",
        "004bfbe9f78d283f",
    ),
}


def _padded(prefix_hex: str) -> str:
    return prefix_hex + FF * (32 - len(prefix_hex) // 2)


class WorkedExampleTests(SynchronousTestCase):
    """The worked examples of spec/yggdrasil-wire.md section 1.6."""

    def test_seed_to_public_key(self) -> None:
        """Each example seed gives the listed ed25519 public key."""
        self.assertEqual(WORKED["C"][0].hex(), "9c3f1aa012556929f279680846897f49a8004a0cc85502235bbe6ad66240132c")
        for name, (seed, pub, *_rest) in WORKED.items():
            self.assertEqual(Identity(seed).public_key.hex(), pub, name)

    def test_address(self) -> None:
        """Each key's address has the listed bytes, ones count and text form."""
        for name, (_seed, pub, ones, addr_hex, addr_text, *_rest) in WORKED.items():
            addr = addr_for_key(bytes.fromhex(pub))
            self.assertEqual(addr.hex(), addr_hex, name)
            self.assertEqual(addr[1], ones, name)
            self.assertEqual(format_address(addr), addr_text, name)

    def test_subnet(self) -> None:
        """Each key's subnet is the listed /64 in 300::/8."""
        for name, (_seed, pub, _ones, _a, _t, subnet_text, *_rest) in WORKED.items():
            subnet = subnet_for_key(bytes.fromhex(pub))
            self.assertEqual(len(subnet), 8)
            self.assertEqual(format_address(subnet), subnet_text, name)

    def test_partial_keys(self) -> None:
        """GetKey(address) and GetKey(subnet) keep the key's known bits and set every other bit."""
        for name, (_seed, pub, _o, addr_hex, _t, _s, addr_key, subnet_key) in WORKED.items():
            addr = bytes.fromhex(addr_hex)
            self.assertEqual(key_for_addr(addr).hex(), _padded(addr_key), name)
            self.assertEqual(key_for_subnet(addr[:8]).hex(), _padded(subnet_key), name)
            self.assertEqual(xform(bytes.fromhex(pub)).hex(), _padded(subnet_key), name)

    def test_bit_walk_through_a(self) -> None:
        """Key A: ~key starts 1100 0100, so ones = 2 and the address body starts 24 ae c2 19."""
        inv = bytes(b ^ 0xFF for b in bytes.fromhex(WORKED["A"][1]))
        self.assertEqual(format(inv[0], "08b"), "11000100")
        self.assertEqual(addr_for_key(bytes.fromhex(WORKED["A"][1]))[:6].hex(), "020224aec219")


class KeyVectorTests(SynchronousTestCase):
    """Every key of the transcript run (what the real v0.5.12 nodes reported for themselves)."""

    def setUp(self) -> None:
        self.vectors = load_key_vectors()

    def test_three_nodes(self) -> None:
        """The vector file has the three transcript nodes A, B and C."""
        self.assertEqual(sorted(self.vectors), ["A", "B", "C"])

    def test_identity(self) -> None:
        """Each seed gives the recorded public key and 64-byte private key (seed || public)."""
        for name, v in self.vectors.items():
            ident = Identity(bytes.fromhex(v["seed"]))
            self.assertEqual(ident.public_key.hex(), v["public_key"], name)
            self.assertEqual(ident.private_key.hex(), v["private_key_64"], name)
            again = Identity.from_private_key(bytes.fromhex(v["private_key_64"]))
            self.assertEqual(again.public_key.hex(), v["public_key"], name)

    def test_address(self) -> None:
        """Each public key gives the recorded address bytes and text, from both the key and the identity."""
        for name, v in self.vectors.items():
            key = bytes.fromhex(v["public_key"])
            self.assertEqual(addr_for_key(key).hex(), v["address_bytes"], name)
            self.assertEqual(format_address(addr_for_key(key)), v["ipv6_address"], name)
            self.assertEqual(Identity(bytes.fromhex(v["seed"])).ipv6, v["ipv6_address"], name)

    def test_subnet(self) -> None:
        """Each public key gives the recorded subnet."""
        for name, v in self.vectors.items():
            key = bytes.fromhex(v["public_key"])
            self.assertEqual(format_address(subnet_for_key(key)), v["subnet"], name)
            self.assertEqual(format_address(Identity(bytes.fromhex(v["seed"])).subnet), v["subnet"], name)

    def test_xform(self) -> None:
        """Each public key gives the recorded bloom/lookup transform, also via its address."""
        for name, v in self.vectors.items():
            key = bytes.fromhex(v["public_key"])
            self.assertEqual(xform(key).hex(), v["bloom_xform"], name)
            self.assertEqual(xform(key_for_addr(addr_for_key(key))).hex(), v["bloom_xform"], name)


class AddressPropertyTests(SynchronousTestCase):
    """Properties of the mapping for arbitrary keys."""

    @settings(max_examples=200, deadline=None)
    @given(st.binary(min_size=32, max_size=32))
    def test_xform_of_partial_key(self, key: bytes) -> None:
        """xform(key_for_addr(addr_for_key(K))) == xform(K): a lookup by address finds K."""
        self.assertEqual(xform(key_for_addr(addr_for_key(key))), xform(key))

    @settings(max_examples=200, deadline=None)
    @given(st.binary(min_size=32, max_size=32))
    def test_partial_key_shares_address(self, key: bytes) -> None:
        """The partial key behind K's address maps back to the same address and subnet."""
        addr = addr_for_key(key)
        partial = key_for_addr(addr)
        self.assertEqual(addr_for_key(partial), addr)
        self.assertEqual(subnet_for_key(partial), subnet_for_key(key))
        self.assertTrue(is_address(addr))
        self.assertTrue(is_subnet(subnet_for_key(key) + bytes(8)))

    @settings(max_examples=200, deadline=None)
    @given(st.integers(min_value=0, max_value=40), st.binary(min_size=32, max_size=32))
    def test_leading_ones(self, ones: int, rest: bytes) -> None:
        """A key whose complement starts with n one-bits (a key starting with n zero bits) has ones == n."""
        value = int.from_bytes(rest, "big") >> (ones + 1)
        value |= 1 << (255 - ones)  # the first 1 bit of the key (its complement's separator 0)
        key = value.to_bytes(32, "big")
        self.assertEqual(addr_for_key(key)[1], ones)


class AddressEdgeTests(SynchronousTestCase):
    """Input checks and extreme keys."""

    def test_wrong_lengths(self) -> None:
        """A key that is not 32 bytes or an address that is not 16 bytes is a ValueError."""
        self.assertRaises(ValueError, addr_for_key, bytes(31))
        self.assertRaises(ValueError, addr_for_key, bytes(33))
        self.assertRaises(ValueError, key_for_addr, bytes(15))

    def test_all_zero_key(self) -> None:
        """
        The all-zero key has 256 leading ones in its complement; like Go's byte counter the
        ones byte wraps to 0, and no bits are left for the body.
        """
        addr = addr_for_key(bytes(32))
        self.assertEqual(addr, bytes((2, 0)) + bytes(14))

    def test_all_ff_key(self) -> None:
        """The all-ff key has ones = 0 and a body of zero bits."""
        addr = addr_for_key(b"\xff" * 32)
        self.assertEqual(addr, bytes((2, 0)) + bytes(14))
        self.assertEqual(key_for_addr(addr), b"\xff" * 32)

    def test_format_address_rfc5952(self) -> None:
        """format_address writes RFC 5952 text, and subnets with /64."""
        addr = bytes.fromhex("02000000000000000000000000000001")
        self.assertEqual(format_address(addr), "200::1")
        self.assertEqual(format_address(addr[:8]), "200::/64")
        self.assertEqual(ipaddress.IPv6Address(format_address(addr)).packed, addr)

    def test_is_address_is_subnet(self) -> None:
        """Only 0x02 starts an address and only 0x03 starts a subnet."""
        self.assertTrue(is_address(b"\x02" + bytes(15)))
        self.assertFalse(is_address(b"\x03" + bytes(15)))
        self.assertTrue(is_subnet(b"\x03" + bytes(15)))
        self.assertFalse(is_subnet(b"\x02" + bytes(15)))
