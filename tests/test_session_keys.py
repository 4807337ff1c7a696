# -*- test-case-name: tests.test_session_keys -*-
"""Tests for L{axl.session.keys}: spec/yggdrasil-wire.md section 4.1 and the vectors of 8.2.6."""

from __future__ import annotations

import hashlib
import json

from nacl.bindings import crypto_scalarmult_base
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto.keys import Identity
from axl.errors import DecodeError
from axl.session.keys import (
    BoxKeyPair,
    nonce24,
    open_box,
    seal,
    shared_key,
    x25519_private,
    x25519_private_unclamped,
    x25519_public,
)
from tests.vectors import VECTORS

SEED_A = bytes(32)
SEED_B = bytes(range(1, 33))


class ConversionTests(SynchronousTestCase):
    """ed25519 -> X25519 conversions."""

    def test_public_a_and_b(self) -> None:
        """The X25519 public keys of A and B are the spec's 8.2.6 values."""
        self.assertEqual(
            x25519_public(Identity(SEED_A).public_key).hex(),
            "5bf55c73b82ebe22be80f3430667af570fae2556a6415e6b30d4065300aa947d",
        )
        self.assertEqual(
            x25519_public(Identity(SEED_B).public_key).hex(),
            "4a3807d064d077181cc070989e76891d20dca5559548dc2c77c1a50273882b38",
        )

    def test_private_unclamped_is_go_form(self) -> None:
        """SHA-512(seed)[0:32] unclamped is Go's private key for A and B."""
        self.assertEqual(
            x25519_private_unclamped(SEED_A).hex(),
            "5046adc1dba838867b2bbbfdd0c3423e58b57970b5267a90f57960924a87f196",
        )
        self.assertEqual(
            x25519_private_unclamped(SEED_B).hex(),
            "77788f1a0cea001a2631dae5d05dbd062008d5b30f50b9e29beb2a7822289004",
        )

    def test_private_clamped_is_libsodium_form(self) -> None:
        """libsodium's conversion of the 64-byte key gives the clamped form of 8.2.6."""
        self.assertEqual(
            x25519_private(Identity(SEED_A).private_key).hex(),
            "5046adc1dba838867b2bbbfdd0c3423e58b57970b5267a90f57960924a87f156",
        )
        self.assertEqual(
            x25519_private(Identity(SEED_B).private_key).hex(),
            "70788f1a0cea001a2631dae5d05dbd062008d5b30f50b9e29beb2a7822289044",
        )

    def test_keys_json(self) -> None:
        """Every node of the transcript's keys.json converts to its recorded X25519 keys."""
        keys = json.loads((VECTORS / "keys.json").read_text())
        for name in "ABC":
            node = keys[name]
            ident = Identity(bytes.fromhex(node["seed"]))
            self.assertEqual(x25519_public(ident.public_key).hex(), node["x25519_public"])
            self.assertEqual(
                x25519_private_unclamped(ident.seed).hex(), node["x25519_private_unclamped_go"]
            )
            self.assertEqual(
                x25519_private(ident.private_key).hex(), node["x25519_private_clamped_libsodium"]
            )

    def test_public_matches_private(self) -> None:
        """The converted public key is the base-point multiple of the converted private key."""
        ident = Identity(SEED_B)
        self.assertEqual(
            crypto_scalarmult_base(x25519_private(ident.private_key)),
            x25519_public(ident.public_key),
        )

    def test_public_invalid_point(self) -> None:
        """An ed25519 key libsodium cannot convert is a DecodeError."""
        bad = bytes.fromhex("01" + "00" * 31)  # the identity point: small order
        self.assertRaises(DecodeError, x25519_public, bad)


class SharedKeyTests(SynchronousTestCase):
    """beforenm shared keys."""

    def test_vector_both_ways_and_both_forms(self) -> None:
        """beforenm(X(B), x(A)) == beforenm(X(A), x(B)) with clamped or unclamped privates."""
        a, b = Identity(SEED_A), Identity(SEED_B)
        expected = "b8fb3d6b1c339ffdbc8b8d6ec697d96b568d3811956e595ab9138792457bae1d"
        xa, xb = x25519_public(a.public_key), x25519_public(b.public_key)
        self.assertEqual(shared_key(xb, x25519_private_unclamped(a.seed)).hex(), expected)
        self.assertEqual(shared_key(xb, x25519_private(a.private_key)).hex(), expected)
        self.assertEqual(shared_key(xa, x25519_private_unclamped(b.seed)).hex(), expected)
        self.assertEqual(shared_key(xa, x25519_private(b.private_key)).hex(), expected)

    def test_traffic_shared_vector(self) -> None:
        """beforenm(pub(sha256('rcur')), sha256('snd')) is the spec's traffic shared key."""
        rcur = hashlib.sha256(b"rcur").digest()
        snd = hashlib.sha256(b"snd").digest()
        remote = crypto_scalarmult_base(rcur)
        self.assertEqual(
            remote.hex(), "c5dec117c3c5ac1c7d9dcffe3352736d79a7d585a34229ae55a3b7312f507243"
        )
        self.assertEqual(
            shared_key(remote, snd).hex(),
            "745753a2269e90765e650bedfe2d7aa01bb6ef3f53eded4212de1f04c206b866",
        )

    def test_low_order_point(self) -> None:
        """A low-order public key (the all-zero point) is a DecodeError, not a crash."""
        self.assertRaises(DecodeError, shared_key, bytes(32), BoxKeyPair.generate().private)


class BoxTests(SynchronousTestCase):
    """Nonces and boxes."""

    def test_nonce(self) -> None:
        """nonce24(n) is 16 zero bytes and BE64(n)."""
        self.assertEqual(nonce24(0), bytes(24))
        self.assertEqual(nonce24(1), bytes(23) + b"\x01")
        self.assertEqual(nonce24(2**64 - 1), bytes(16) + b"\xff" * 8)

    def test_seal_open(self) -> None:
        """A sealed box is 16 bytes longer and opens with the same nonce and key only."""
        k = shared_key(BoxKeyPair.generate().public, BoxKeyPair.generate().private)
        box = seal(b"hello", 7, k)
        self.assertEqual(len(box), 21)
        self.assertEqual(open_box(box, 7, k), b"hello")
        self.assertIsNone(open_box(box, 8, k))
        self.assertIsNone(open_box(box[:-1] + bytes([box[-1] ^ 1]), 7, k))
        self.assertIsNone(open_box(box[:10], 7, k))

    def test_generate(self) -> None:
        """Generated pairs are distinct and consistent."""
        p, q = BoxKeyPair.generate(), BoxKeyPair.generate()
        self.assertNotEqual(p.public, q.public)
        self.assertEqual(crypto_scalarmult_base(p.private), p.public)
        self.assertNotIn(p.private.hex(), repr(p))
