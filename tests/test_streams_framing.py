"""Tests for L{axl.streams.framing}: 4-byte big-endian length-prefixed messages."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from axl.streams.framing import (
    MessageDecoder,
    MessageTooLarge,
    encode_message,
    frame_header,
    oversize_reply,
    parse_oversize_reply,
)


class FramingTests(SynchronousTestCase):
    def test_too_large_keeps_earlier_frames(self) -> None:
        """MessageTooLarge carries the messages the same feed completed before the oversize header."""
        d = MessageDecoder(10)
        with self.assertRaises(MessageTooLarge) as cm:
            d.feed(encode_message(b"a") + encode_message(b"bc") + frame_header(11))
        self.assertEqual((cm.exception.frames, cm.exception.length, cm.exception.limit), ([b"a", b"bc"], 11, 10))

    def test_oversize_reply_round_trip(self) -> None:
        """The refusal is compact JSON with error and max_message_size; the parser gives both back."""
        raw = oversize_reply(101, 100)
        self.assertEqual(
            raw,
            b'{"error":"message of 101 bytes exceeds the receiver\'s max_message_size of 100 bytes",'
            b'"max_message_size":100}',
        )
        self.assertEqual(
            parse_oversize_reply(raw),
            ("message of 101 bytes exceeds the receiver's max_message_size of 100 bytes", 100),
        )

    def test_parse_oversize_reply_rejects_others(self) -> None:
        """Envelope replies, non-integer limits, empty errors and non-JSON are not refusals."""
        for raw in (
            b'{"service":"s","response":null,"error":"x"}',
            b'{"error":"x","max_message_size":"100"}',
            b'{"error":"x","max_message_size":true}',
            b'{"error":"x","max_message_size":1.5}',
            b'{"error":"","max_message_size":1}',
            b'{"error":null,"max_message_size":1}',
            b"[1]",
            b"{nope",
            b"",
            b"\x00binary",
        ):
            self.assertIsNone(parse_oversize_reply(raw), raw)

    def test_header(self) -> None:
        """The prefix is a 4-byte unsigned big-endian length; lengths beyond 32 bits are refused."""
        self.assertEqual(frame_header(0), b"\x00\x00\x00\x00")
        self.assertEqual(frame_header(0x01020304), b"\x01\x02\x03\x04")
        self.assertRaises(ValueError, frame_header, 1 << 32)

    def test_several_frames_and_empty(self) -> None:
        """One feed can complete several messages, including zero-length ones."""
        d = MessageDecoder(100)
        data = encode_message(b"abc") + encode_message(b"") + encode_message(b"x")
        self.assertEqual(d.feed(data), [b"abc", b"", b"x"])
        self.assertFalse(d.in_frame)

    def test_partial(self) -> None:
        """A partial header or payload waits for more bytes and reports being inside a message."""
        d = MessageDecoder(100)
        self.assertEqual(d.feed(b"\x00\x00"), [])
        self.assertTrue(d.in_frame)
        self.assertEqual(d.feed(b"\x00\x02a"), [])
        self.assertTrue(d.in_frame)
        self.assertEqual(d.feed(b"b"), [b"ab"])
        self.assertFalse(d.in_frame)

    def test_header_only_is_in_frame(self) -> None:
        """After a complete header of a non-empty message, the decoder is inside a message."""
        d = MessageDecoder(100)
        self.assertEqual(d.feed(frame_header(5)), [])
        self.assertTrue(d.in_frame)

    def test_too_large(self) -> None:
        """A length above the limit raises as soon as the header is complete."""
        d = MessageDecoder(10)
        self.assertEqual(d.feed(encode_message(b"x" * 10)), [b"x" * 10])
        with self.assertRaises(MessageTooLarge) as cm:
            d.feed(frame_header(11))
        self.assertEqual(str(cm.exception), "message size 11 exceeds maximum 10")

    def test_write_frame(self) -> None:
        """Small messages go out as one write (header + payload); large ones without a copy."""
        from twisted.internet.testing import StringTransport

        from axl.streams.framing import write_frame

        writes: list[bytes] = []
        t = StringTransport()
        t.write = writes.append  # type: ignore[method-assign]
        write_frame(t, b"abc")
        big = b"x" * 70000
        write_frame(t, big)
        self.assertEqual(writes[0], b"\x00\x00\x00\x03abc")
        self.assertEqual(writes[1:], [frame_header(70000), big])
        self.assertIs(writes[2], big)

    @settings(max_examples=200)
    @given(
        st.lists(st.binary(max_size=300), max_size=8),
        st.lists(st.integers(1, 50), min_size=1),
    )
    def test_any_split(self, messages: list[bytes], cuts: list[int]) -> None:
        """Messages come out identical however the byte stream is split."""
        stream = b"".join(encode_message(m) for m in messages)
        d = MessageDecoder(1000)
        out: list[bytes] = []
        pos, i = 0, 0
        while pos < len(stream):
            step = cuts[i % len(cuts)]
            out += d.feed(stream[pos : pos + step])
            pos += step
            i += 1
        self.assertEqual(out, messages)
