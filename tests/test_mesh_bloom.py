# -*- test-case-name: tests.test_mesh_bloom -*-
"""Tests for L{axl.mesh.bloom}: spec section 8.2.4 and property tests of the wire format."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto import xform
from axl.crypto.keys import Identity
from axl.errors import DecodeError
from axl.mesh.bloom import (
    BLOOM_BITS,
    EMPTY_BLOOM,
    bloom_contains,
    bloom_mask,
    bloom_positions,
    decode_bloom,
    encode_bloom,
    murmur3_x64_128,
)

A = Identity(bytes(32)).public_key
B = Identity(bytes(range(1, 33))).public_key

ONE_HEX = (
    "f7bffffdfff7fffffff7fdffffffffbf000000000000000000000000000000000000100000000000000000004000"
    "000000000000000000800000400000000000000000000100000000000000081000000000001000000000"
)
TWO_HEX = (
    "f7bffffdfbf7fbb7ffd7fdfdffbf7fbf000000000000000000000000000000000000100000000000000000004000"
    "000000000000000000800000000000020000000040000000000000000020000000000000002000000000008000"
    "000000000000000000000020000000000001000000000000000810000000000002000000000000000000000200"
    "00000000080000000000001000000000"
)


class KnownAnswerTests(SynchronousTestCase):
    """The spec's bloom vectors (cross-checked against Go)."""

    def test_murmur_hello(self) -> None:
        """MurmurHash3_x64_128("hello", 0) is the standard known answer."""
        self.assertEqual(murmur3_x64_128(b"hello"), (0xCBD8A7B341BD9B02, 0x5B1E906A48AE1D19))

    def test_murmur_lengths(self) -> None:
        """Empty input and a 17-byte input (one block plus a tail) hash as standard."""
        self.assertEqual(murmur3_x64_128(b""), (0, 0))
        self.assertNotEqual(murmur3_x64_128(b"a" * 17), murmur3_x64_128(b"a" * 16))

    def test_hashes_of_xform_a(self) -> None:
        """h1..h4 of xform(A) and of xform(A) || 01."""
        x = xform(A)
        self.assertEqual(x.hex(), "3b6a27bcceb6bf" + "f" * 50)
        self.assertEqual(
            murmur3_x64_128(x) + murmur3_x64_128(x + b"\x01"),
            (0x70294BF79EB5412C, 0x552CBEE8E519E82A, 0xD441D5AF8A1EA47B, 0x3F474C2C2B5BA34),
        )

    def test_positions(self) -> None:
        """The 8 bit positions for xform(A)."""
        self.assertEqual(bloom_positions(xform(A)), (300, 606, 5524, 5531, 4888, 2862, 7780, 1927))

    def test_words(self) -> None:
        """The non-zero 64-bit words with only xform(A), bits LSB-first within a word."""
        mask = bloom_mask(xform(A))
        words = {i: (mask >> (64 * i)) & (2**64 - 1) for i in range(128)}
        self.assertEqual(
            {i: w for i, w in words.items() if w},
            {
                4: 0x100000000000,
                9: 0x40000000,
                30: 0x80,
                44: 0x400000000000,
                76: 0x1000000,
                86: 0x8100000,
                121: 0x1000000000,
            },
        )

    def test_encodings(self) -> None:
        """The empty filter, {A} and {A, B} encode as the spec says and decode back."""
        one = bloom_mask(xform(A))
        two = one | bloom_mask(xform(B))
        self.assertEqual(encode_bloom(EMPTY_BLOOM).hex(), "ff" * 16 + "00" * 16)
        self.assertEqual(encode_bloom(one).hex(), ONE_HEX)
        self.assertEqual(encode_bloom(two).hex(), TWO_HEX)
        self.assertEqual(len(encode_bloom(two)), 152)
        for value in (EMPTY_BLOOM, one, two):
            self.assertEqual(decode_bloom(encode_bloom(value)), value)

    def test_contains(self) -> None:
        """A filter holds its items; a partial key from an address tests like the full key."""
        two = bloom_mask(xform(A)) | bloom_mask(xform(B))
        self.assertTrue(bloom_contains(two, xform(A)))
        self.assertTrue(bloom_contains(two, xform(B)))
        self.assertFalse(bloom_contains(bloom_mask(xform(A)), xform(B)))

    def test_all_ones(self) -> None:
        """A full filter is 16 zero flag bytes then 16 0xff: 32 bytes, no words."""
        full = (1 << BLOOM_BITS) - 1
        self.assertEqual(encode_bloom(full), b"\x00" * 16 + b"\xff" * 16)
        self.assertEqual(decode_bloom(encode_bloom(full)), full)


class DecodeErrorTests(SynchronousTestCase):
    """Malformed bloom payloads."""

    def test_both_flags(self) -> None:
        """A word flagged both all-zero and all-one is rejected."""
        data = bytearray(bytes.fromhex("ff" * 16 + "00" * 16))
        data[16] = 0x80
        self.assertRaises(DecodeError, decode_bloom, bytes(data))

    def test_trailing(self) -> None:
        """Trailing bytes are rejected."""
        self.assertRaises(DecodeError, decode_bloom, bytes.fromhex(ONE_HEX) + b"\x00")

    def test_short(self) -> None:
        """Missing words or flags are rejected."""
        self.assertRaises(DecodeError, decode_bloom, bytes.fromhex(ONE_HEX)[:-1])
        self.assertRaises(DecodeError, decode_bloom, b"\xff" * 20)

    def test_largest(self) -> None:
        """The largest payload is 1056 bytes (no word all-zero or all-one)."""
        dense = int.from_bytes(b"\x01" * 1024, "little")
        self.assertEqual(len(encode_bloom(dense)), 1056)


class PropertyTests(SynchronousTestCase):
    """Hypothesis round trips and arbitrary input."""

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), min_size=128, max_size=128))
    def test_round_trip(self, words: list[int]) -> None:
        """Any 128 words (including all-zero and all-one ones) survive encode/decode."""
        value = sum(w << (64 * i) for i, w in enumerate(words))
        self.assertEqual(decode_bloom(encode_bloom(value)), value)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=1100))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """Arbitrary bytes decode to a filter or raise DecodeError, nothing else."""
        try:
            value = decode_bloom(data)
        except DecodeError:
            return
        self.assertEqual(encode_bloom(value), data)

    @settings(max_examples=100, deadline=None)
    @given(
        st.binary(min_size=16, max_size=16),
        st.sets(st.integers(min_value=0, max_value=127), max_size=128),
    )
    def test_flagged_words(self, flags: bytes, zero: set[int]) -> None:
        """Filters with many all-zero and all-one words round-trip."""
        value = 0
        for i in range(128):
            if i not in zero:
                value |= ((1 << 64) - 1) << (64 * i) if flags[i % 16] & 1 else 5 << (64 * i)
        self.assertEqual(decode_bloom(encode_bloom(value)), value)
