# -*- test-case-name: tests.test_encoding -*-
"""
Tests for L{axl.encoding}: Go's uvarints (spec/yggdrasil-wire.md sections 0 and 8.2.2).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from axl.encoding import MAX_UINT64, uvarint_decode, uvarint_encode, uvarint_size
from axl.errors import DecodeError, ProtocolError

# spec/yggdrasil-wire.md section 8.2.2
VECTORS = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (255, "ff01"),
    (300, "ac02"),
    (16384, "808001"),
    (65535, "ffff03"),
    (131070, "feff07"),
    (4294967296, "8080808010"),
    (18446744073709551615, "ffffffffffffffffff01"),
]


class UvarintVectorTests(SynchronousTestCase):
    """The spec's uvarint vectors, both ways."""

    def test_encode_vectors(self) -> None:
        """Each value of section 8.2.2 encodes to exactly the listed bytes."""
        for value, hex_bytes in VECTORS:
            self.assertEqual(uvarint_encode(value).hex(), hex_bytes, value)

    def test_decode_vectors(self) -> None:
        """Each byte string of section 8.2.2 decodes to its value and consumes all its bytes."""
        for value, hex_bytes in VECTORS:
            data = bytes.fromhex(hex_bytes)
            self.assertEqual(uvarint_decode(data), (value, len(data)), value)

    def test_size_vectors(self) -> None:
        """uvarint_size agrees with the length of every vector's encoding."""
        for value, hex_bytes in VECTORS:
            self.assertEqual(uvarint_size(value), len(hex_bytes) // 2, value)

    def test_decode_at_offset(self) -> None:
        """Decoding from an offset reads the varint there and returns the offset past it."""
        data = b"\xaa\xbb" + bytes.fromhex("ac02") + b"\xcc"
        self.assertEqual(uvarint_decode(data, 2), (300, 4))

    def test_decode_memoryview_and_bytearray(self) -> None:
        """The decoder accepts bytearray and memoryview input as well as bytes."""
        self.assertEqual(uvarint_decode(bytearray(b"\x80\x01")), (128, 2))
        self.assertEqual(uvarint_decode(memoryview(b"\x80\x01")), (128, 2))


class UvarintRejectionTests(SynchronousTestCase):
    """Malformed varints raise L{DecodeError}; unencodable values raise ValueError."""

    def test_overflow_tenth_byte(self) -> None:
        """A 10th byte greater than 1 overflows 64 bits and is rejected, as Go does."""
        with self.assertRaises(DecodeError) as cm:
            uvarint_decode(bytes.fromhex("ffffffffffffffffff02"))
        self.assertIn("overflows 64 bits", str(cm.exception))

    def test_eleven_bytes(self) -> None:
        """A varint that has not ended after 10 bytes is rejected."""
        with self.assertRaises(DecodeError):
            uvarint_decode(b"\x80" * 10 + b"\x00")

    def test_truncated(self) -> None:
        """Data that ends inside a varint (or is empty) is rejected as truncated."""
        for data in (b"", b"\x80", b"\xff\xff", bytes.fromhex("ffffffffffffffffff")):
            with self.assertRaises(DecodeError) as cm:
                uvarint_decode(data)
            self.assertIn("truncated", str(cm.exception))

    def test_offset_past_end(self) -> None:
        """An offset at the end of the data is a truncated varint, not an IndexError."""
        with self.assertRaises(DecodeError):
            uvarint_decode(b"\x01", 1)

    def test_decode_error_is_protocol_error(self) -> None:
        """DecodeError is a ProtocolError, so link layers can catch either."""
        self.assertTrue(issubclass(DecodeError, ProtocolError))

    def test_non_minimal_accepted(self) -> None:
        """Non-minimal forms Go accepts (e.g. 0x80 0x00 for 0) decode to their value."""
        self.assertEqual(uvarint_decode(b"\x80\x00"), (0, 2))
        self.assertEqual(uvarint_decode(b"\xff\x80\x00"), (127, 3))

    def test_encode_negative(self) -> None:
        """Encoding a negative value is a ValueError."""
        self.assertRaises(ValueError, uvarint_encode, -1)

    def test_encode_too_large(self) -> None:
        """Encoding 2**64 is a ValueError; 2**64 - 1 is the largest value."""
        self.assertRaises(ValueError, uvarint_encode, MAX_UINT64 + 1)
        self.assertEqual(uvarint_encode(MAX_UINT64), bytes.fromhex("ffffffffffffffffff01"))


class UvarintPropertyTests(SynchronousTestCase):
    """Round trips over the whole 64-bit range."""

    @settings(max_examples=200, deadline=None)
    @given(st.integers(min_value=0, max_value=MAX_UINT64), st.binary(max_size=4))
    def test_round_trip(self, value: int, tail: bytes) -> None:
        """decode(encode(v) + tail) gives v back, the offset past the varint, and a minimal size."""
        encoded = uvarint_encode(value)
        self.assertEqual(uvarint_decode(encoded + tail), (value, len(encoded)))
        self.assertEqual(len(encoded), uvarint_size(value))
        self.assertTrue(len(encoded) == 1 or encoded[-1] != 0)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=12))
    def test_decoder_total(self, data: bytes) -> None:
        """On any bytes the decoder returns a 64-bit value within the data, or a DecodeError."""
        try:
            value, end = uvarint_decode(data)
        except DecodeError:
            return
        self.assertTrue(0 <= value <= MAX_UINT64)
        self.assertTrue(1 <= end <= min(10, len(data)))


class NoAnswerTests(SynchronousTestCase):
    """axl.errors.no_answer, the onTimeoutCancel every HTTP deadline uses."""

    def test_any_cancellation_error_is_a_timeout(self) -> None:
        """A call whose cancellation fails with another error still times out with the message."""
        from twisted.internet.defer import Deferred, TimeoutError
        from twisted.internet.task import Clock

        from axl.errors import no_answer

        def cancel(d: Deferred[None]) -> None:
            d.errback(ConnectionError("response never received"))

        clock = Clock()
        d: Deferred[None] = Deferred(cancel)
        d.addTimeout(2.5, clock, onTimeoutCancel=no_answer)
        clock.advance(2.5)
        f = self.failureResultOf(d, TimeoutError)
        self.assertEqual(str(f.value), "no answer within 2.5 s")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_in_time_unchanged(self) -> None:
        """A call that fails before the deadline keeps its own error."""
        from twisted.internet.defer import Deferred
        from twisted.internet.task import Clock

        from axl.errors import no_answer

        clock = Clock()
        d: Deferred[None] = Deferred()
        d.addTimeout(2.5, clock, onTimeoutCancel=no_answer)
        d.errback(ConnectionError("refused"))
        self.failureResultOf(d, ConnectionError)
        self.assertEqual(clock.getDelayedCalls(), [])
