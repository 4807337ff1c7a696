# -*- test-case-name: tests.test_link_meta -*-
"""
Tests for L{axl.link.meta}: the meta version handshake (spec/yggdrasil-wire.md 2.4, 8.2.1, 9).
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from twisted.trial.unittest import SynchronousTestCase

from axl.crypto import Identity
from axl.errors import ConfigError, DecodeError, ProtocolError
from axl.link.meta import (
    META_SIZE,
    HandshakeError,
    check_password,
    decode_meta,
    encode_meta,
    password_hash,
)

KEY_A = Identity(bytes(32))
KEY_B = Identity(bytes(range(1, 33)))

META_A = bytes.fromhex(
    "6d6574610075000000020000000100020005000200203b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a6"
    "3ac048a18b59da290003000100f7612e335683e60bf09b5fd407d1154d877d7de1d0e0321a110734b30a77bf8c6a"
    "03dde9571c7f7fafca4b09890695c97bc2126e95dcc657d0fe5d5229fe080c"
)
META_A_SECRET = bytes.fromhex(
    "6d6574610075000000020000000100020005000200203b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a6"
    "3ac048a18b59da290003000103408ea1ddf7dab98c3887988fbaa87a09d84dc25c774c70f162d3f38a3cbe14d6b0"
    "d18721e8c45db2bd6397407d8832e92aac20ee45e736ccb4282eccea627106"
)
HASH_A = bytes.fromhex(
    "10d41ad57be310eac338e0c531b10f8dc49196a96b05d439ae86d0a4c917f4dbafa70c91b55832c27ace3e4f4fa3"
    "20828624ae65fe4d3c248ef936e4fd3a96d2"
)
HASH_A_SECRET = bytes.fromhex(
    "fa7753e8b61dfec084e65d335edeaec7f77ca98a0aa412d49f5c2214546a407484ec83607d881c56bcccf23a010c"
    "a3d99b43b55554beed8aacea818fc41ab582"
)


def tlv(tlv_type: int, value: bytes, length: int | None = None) -> bytes:
    return struct.pack("!HH", tlv_type, len(value) if length is None else length) + value


def build_meta(
    tlvs: list[bytes],
    ident: Identity = KEY_A,
    password: bytes = b"",
    preamble: bytes = b"meta",
    signature: bytes | None = None,
) -> bytes:
    """A meta message with arbitrary TLVs, signed (by default) as Yggdrasil signs."""
    if signature is None:
        signature = ident.sign(password_hash(ident.public_key, password))
    body = b"".join(tlvs) + signature
    return preamble + struct.pack("!H", len(body)) + body


def canonical_tlvs(ident: Identity = KEY_A, major: int = 0, minor: int = 5, prio: int = 0):
    return [
        tlv(0, struct.pack("!H", major)),
        tlv(1, struct.pack("!H", minor)),
        tlv(2, ident.public_key),
        tlv(3, bytes([prio])),
    ]


class VectorTests(SynchronousTestCase):
    """Spec section 8.2.1."""

    def test_meta_no_password(self) -> None:
        """Key A, priority 0, no password encodes to the 123 bytes of spec 8.2.1."""
        self.assertEqual(encode_meta(KEY_A), META_A)
        self.assertEqual(len(META_A), META_SIZE)

    def test_meta_with_password(self) -> None:
        """Key A, priority 3, password "secret" encodes to the spec 8.2.1 bytes."""
        self.assertEqual(encode_meta(KEY_A, 3, b"secret"), META_A_SECRET)

    def test_password_hashes(self) -> None:
        """BLAKE2b-512 of key A, unkeyed and keyed with "secret", match spec 8.2.1."""
        self.assertEqual(password_hash(KEY_A.public_key), HASH_A)
        self.assertEqual(password_hash(KEY_A.public_key, b"secret"), HASH_A_SECRET)

    def test_decode_vectors(self) -> None:
        """Both vectors decode (with their password) to version 0.5, key A and their priority."""
        meta = decode_meta(META_A)
        self.assertEqual((meta.major, meta.minor, meta.public_key, meta.priority),
                         (0, 5, KEY_A.public_key, 0))  # fmt: skip
        self.assertEqual(decode_meta(META_A_SECRET, b"secret").priority, 3)

    def test_password_mismatch(self) -> None:
        """A message signed with another password is refused like a bad signature."""
        self.assertRaises(HandshakeError, decode_meta, META_A_SECRET)
        self.assertRaises(HandshakeError, decode_meta, META_A, b"secret")
        self.assertRaises(HandshakeError, decode_meta, META_A_SECRET, b"Secret")

    def test_bad_priority_argument(self) -> None:
        """Encoding a priority outside 0..255 is a programming error (ValueError)."""
        self.assertRaises(ValueError, encode_meta, KEY_A, 256)
        self.assertRaises(ValueError, encode_meta, KEY_A, -1)


class StrictDecodingTests(SynchronousTestCase):
    """Decoding is as strict as v0.5.14 (spec section 9) and accepts what v0.5.12 sends."""

    def test_custom_canonical_builds_vector(self) -> None:
        """The test builder reproduces the vector, so the variants below differ only as named."""
        self.assertEqual(build_meta(canonical_tlvs()), META_A)

    def test_bad_preamble(self) -> None:
        """A preamble other than "meta" is a DecodeError saying it is not Yggdrasil."""
        e = self.assertRaises(DecodeError, decode_meta, b"Meta" + META_A[4:])
        self.assertIn("not Yggdrasil", str(e))

    def test_length_below_signature(self) -> None:
        """A declared length L < 64 is refused."""
        self.assertRaises(DecodeError, decode_meta, b"meta\x00\x3f" + bytes(63))

    def test_length_disagrees_with_data(self) -> None:
        """A whole message whose header says a different length is refused."""
        self.assertRaises(DecodeError, decode_meta, META_A + b"\x00")
        self.assertRaises(DecodeError, decode_meta, META_A[:-1])
        self.assertRaises(DecodeError, decode_meta, b"met")

    def test_wrong_major(self) -> None:
        """A correctly signed message with major version 1 is an incompatible version."""
        e = self.assertRaises(HandshakeError, decode_meta, build_meta(canonical_tlvs(major=1)))
        self.assertIn("incompatible version", str(e))

    def test_wrong_minor(self) -> None:
        """A correctly signed message with minor version 4 is an incompatible version."""
        self.assertRaises(HandshakeError, decode_meta, build_meta(canonical_tlvs(minor=4)))

    def test_missing_minor(self) -> None:
        """Without a minor-version TLV the minor is 0, an incompatible version."""
        tlvs = canonical_tlvs()
        del tlvs[1]
        self.assertRaises(HandshakeError, decode_meta, build_meta(tlvs))

    def test_missing_key(self) -> None:
        """Without a key TLV the message is refused."""
        tlvs = canonical_tlvs()
        del tlvs[2]
        self.assertRaises(HandshakeError, decode_meta, build_meta(tlvs))

    def test_missing_priority(self) -> None:
        """Without a priority TLV the priority is 0 and the message is accepted."""
        self.assertEqual(decode_meta(build_meta(canonical_tlvs(prio=9)[:3])).priority, 0)

    def test_short_and_long_fields(self) -> None:
        """Each known TLV with a wrong length (short or long) is a DecodeError."""
        variants = [
            tlv(0, b"\x00"), tlv(0, b"\x00\x00\x00"),
            tlv(1, b"\x05"), tlv(1, b"\x00\x00\x05"),
            tlv(2, KEY_A.public_key[:31]), tlv(2, KEY_A.public_key + b"\x00"),
            tlv(3, b""), tlv(3, b"\x00\x00"),
        ]  # fmt: skip
        for bad in variants:
            tlvs = canonical_tlvs()
            tlvs[struct.unpack("!H", bad[:2])[0]] = bad
            with self.subTest(tlv=bad.hex()):
                self.assertRaises(DecodeError, decode_meta, build_meta(tlvs))

    def test_tlv_past_end(self) -> None:
        """A TLV whose length runs past the signature is refused (v0.5.12 just stopped)."""
        tlvs = canonical_tlvs()[:3] + [tlv(9, b"\x00", length=200)]
        self.assertRaises(DecodeError, decode_meta, build_meta(tlvs))

    def test_leftover_bytes(self) -> None:
        """One to three bytes that cannot form a TLV header are refused."""
        for extra in (b"\x00", b"\x00\x00", b"\x00\x00\x00"):
            with self.subTest(n=len(extra)):
                self.assertRaises(DecodeError, decode_meta, build_meta(canonical_tlvs() + [extra]))

    def test_unknown_tlv_skipped(self) -> None:
        """An unknown TLV type (any length that fits) is skipped, as both Go versions do."""
        tlvs = canonical_tlvs(prio=7) + [tlv(99, b"future"), tlv(4, b"")]
        meta = decode_meta(build_meta(tlvs))
        self.assertEqual((meta.public_key, meta.priority), (KEY_A.public_key, 7))

    def test_tlv_order_free(self) -> None:
        """TLVs in another order decode to the same fields."""
        tlvs = canonical_tlvs(prio=2)
        meta = decode_meta(build_meta(tlvs[::-1]))
        self.assertEqual((meta.public_key, meta.priority), (KEY_A.public_key, 2))

    def test_bad_signature(self) -> None:
        """A flipped signature bit, or a signature by another key, is refused."""
        broken = bytearray(META_A)
        broken[-1] ^= 1
        self.assertRaises(HandshakeError, decode_meta, bytes(broken))
        forged = build_meta(canonical_tlvs(KEY_A), ident=KEY_B)
        e = self.assertRaises(HandshakeError, decode_meta, forged)
        self.assertIn("password", str(e))

    def test_check_password(self) -> None:
        """Passwords up to 64 bytes are fine; longer ones are a ConfigError."""
        self.assertEqual(check_password(b"x" * 64), b"x" * 64)
        self.assertRaises(ConfigError, check_password, b"x" * 65)
        self.assertRaises(ConfigError, encode_meta, KEY_A, 0, b"x" * 65)


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(
        st.binary(min_size=32, max_size=32),
        st.integers(0, 255),
        st.binary(max_size=64),
    )
    def test_round_trip(self, seed: bytes, priority: int, password: bytes) -> None:
        """Any key, priority and password round-trips through encode/decode."""
        ident = Identity(seed)
        data = encode_meta(ident, priority, password)
        self.assertEqual(len(data), META_SIZE)
        meta = decode_meta(data, password)
        self.assertEqual((meta.public_key, meta.priority), (ident.public_key, priority))

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def test_garbage_is_a_protocol_error(self, data: bytes) -> None:
        """Arbitrary bytes either decode or raise a ProtocolError, nothing else."""
        try:
            decode_meta(data)
        except ProtocolError:
            pass

    @settings(max_examples=200, deadline=None)
    @given(st.integers(6, META_SIZE - 1), st.integers(0, 255))
    def test_any_corruption_refused(self, index: int, xor: int) -> None:
        """
        Changing any byte after the header either gets the message refused, or leaves it a valid
        message from the same key: only the priority value (offset 58) and the types of the
        major-version and priority TLVs (offsets 6-7, 54-55: turned into unknown, skipped TLVs,
        their fields default to the same 0) are covered by neither checks nor the signature.
        """
        data = bytearray(META_A)
        data[index] ^= xor or 1
        try:
            meta = decode_meta(bytes(data))
        except ProtocolError:
            return
        self.assertIn(index, (6, 7, 54, 55, 58))
        self.assertEqual((meta.public_key, meta.major, meta.minor), (KEY_A.public_key, 0, 5))
