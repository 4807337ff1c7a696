# -*- test-case-name: tests.test_keys -*-
"""
Tests for L{axl.crypto.keys}: the node's ed25519 identity, signatures and key display.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from axl.crypto import Identity, short_key, verify
from axl.crypto.address import addr_for_key, subnet_for_key

# RFC 8032 section 7.1, TEST 1 (empty message).
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


class IdentityTests(SynchronousTestCase):
    """Building identities and what they expose."""

    def test_rfc8032_key(self) -> None:
        """The RFC 8032 test seed gives the RFC's public key."""
        self.assertEqual(Identity(RFC_SEED).public_key, RFC_PUB)

    def test_private_key_is_seed_then_public(self) -> None:
        """private_key is Yggdrasil's 64-byte form: the seed followed by the public key."""
        ident = Identity(RFC_SEED)
        self.assertEqual(ident.private_key, RFC_SEED + RFC_PUB)
        self.assertEqual(ident.seed, RFC_SEED)

    def test_from_private_key(self) -> None:
        """from_private_key accepts seed || public and gives the same identity."""
        ident = Identity.from_private_key(RFC_SEED + RFC_PUB)
        self.assertEqual(ident.public_key, RFC_PUB)
        self.assertFalse(ident.ephemeral)

    def test_from_private_key_mismatch(self) -> None:
        """A public half that does not belong to the seed is a ValueError saying so."""
        with self.assertRaises(ValueError) as cm:
            Identity.from_private_key(RFC_SEED + bytes(32))
        self.assertIn("does not match", str(cm.exception))

    def test_from_private_key_length(self) -> None:
        """A private key that is not 64 bytes is a ValueError naming the length."""
        with self.assertRaises(ValueError) as cm:
            Identity.from_private_key(RFC_SEED)
        self.assertIn("got 32", str(cm.exception))

    def test_seed_length(self) -> None:
        """A seed that is not 32 bytes is a ValueError."""
        self.assertRaises(ValueError, Identity, bytes(31))

    def test_generate(self) -> None:
        """generate() gives distinct, ephemeral identities."""
        a, b = Identity.generate(), Identity.generate()
        self.assertNotEqual(a.public_key, b.public_key)
        self.assertTrue(a.ephemeral)

    def test_address_properties(self) -> None:
        """address, subnet and ipv6 derive from the public key."""
        ident = Identity(RFC_SEED)
        self.assertEqual(ident.address, addr_for_key(RFC_PUB))
        self.assertEqual(ident.subnet, subnet_for_key(RFC_PUB))
        self.assertTrue(ident.ipv6.startswith("2"))

    def test_repr_hides_seed(self) -> None:
        """repr shows a short public key and never the seed."""
        text = repr(Identity(RFC_SEED))
        self.assertIn(RFC_PUB.hex()[:8], text)
        self.assertNotIn(RFC_SEED.hex()[:8], text)


class SignatureTests(SynchronousTestCase):
    """Signing and verifying."""

    def test_rfc8032_signature(self) -> None:
        """Signing the empty message with the RFC seed gives the RFC's signature."""
        self.assertEqual(Identity(RFC_SEED).sign(b""), RFC_SIG)

    def test_verify(self) -> None:
        """A genuine signature verifies; one from another key, message or a flipped bit does not."""
        ident = Identity(RFC_SEED)
        sig = ident.sign(b"hello")
        self.assertTrue(verify(RFC_PUB, b"hello", sig))
        self.assertFalse(verify(RFC_PUB, b"hellp", sig))
        self.assertFalse(verify(Identity.generate().public_key, b"hello", sig))
        self.assertFalse(verify(RFC_PUB, b"hello", bytes([sig[0] ^ 1]) + sig[1:]))

    def test_verify_bad_lengths(self) -> None:
        """Wrong-length signatures or keys do not verify (and do not raise)."""
        sig = Identity(RFC_SEED).sign(b"x")
        self.assertFalse(verify(RFC_PUB, b"x", sig[:63]))
        self.assertFalse(verify(RFC_PUB[:31], b"x", sig))


class ShortKeyTests(SynchronousTestCase):
    """Keys in logs."""

    def test_short_key(self) -> None:
        """short_key shows the first 8 hex digits and an ellipsis, for bytes and hex text."""
        self.assertEqual(short_key(RFC_PUB), "d75a9801…")
        self.assertEqual(short_key(RFC_PUB.hex()), "d75a9801…")

    def test_short_key_empty(self) -> None:
        """An empty key shows as (none)."""
        self.assertEqual(short_key(b""), "(none)")
