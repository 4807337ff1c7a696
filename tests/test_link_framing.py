# -*- test-case-name: tests.test_link_framing -*-
"""
Tests for L{axl.link.framing} (spec/yggdrasil-wire.md 2.6, 8.2.2) and the replay of the recorded
yggdrasil v0.5.12 link transcripts (../shared/vectors/link-*.jsonl).
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from axl.encoding import MAX_UINT64, uvarint_decode, uvarint_encode
from axl.errors import DecodeError
from axl.link.framing import (
    PEER_MAX_MESSAGE_SIZE,
    EmptyFrame,
    FrameDecoder,
    FrameTooLarge,
    encode_frame,
)
from axl.link.meta import META_SIZE, decode_meta
from tests.vectors import keys as vector_keys, require

UVARINTS = [
    (0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (255, "ff01"), (300, "ac02"),
    (16384, "808001"), (65535, "ffff03"), (131070, "feff07"), (4294967296, "8080808010"),
    (MAX_UINT64, "ffffffffffffffffff01"),
]  # fmt: skip


class UvarintVectorTests(SynchronousTestCase):
    """Spec section 8.2.2, through the shared L{axl.encoding} codec the link layer uses."""

    def test_vectors(self) -> None:
        """Every value of the table encodes to its bytes and decodes back, consuming them all."""
        for value, hexed in UVARINTS:
            with self.subTest(value=value):
                self.assertEqual(uvarint_encode(value).hex(), hexed)
                self.assertEqual(uvarint_decode(bytes.fromhex(hexed)), (value, len(hexed) // 2))

    def test_overflow_rejected(self) -> None:
        """A 10th byte above 1 (over 64 bits) and an 11-byte varint are DecodeErrors."""
        self.assertRaises(DecodeError, uvarint_decode, bytes.fromhex("ffffffffffffffffff02"))
        self.assertRaises(DecodeError, uvarint_decode, b"\x80" * 10 + b"\x00")


class EncodeTests(SynchronousTestCase):
    def test_keepalive(self) -> None:
        """The keepalive frame is exactly 01 01 (spec 8.2.3)."""
        self.assertEqual(encode_frame(1), b"\x01\x01")

    def test_prefix_counts_type_byte(self) -> None:
        """N counts the type byte: a 127-byte payload needs a two-byte prefix 80 01."""
        frame = encode_frame(9, b"x" * 127)
        self.assertEqual(frame[:3], b"\x80\x01\x09")
        self.assertEqual(len(frame), 130)

    def test_limit(self) -> None:
        """A frame of exactly 131070 bytes encodes; one byte more raises FrameTooLarge."""
        self.assertEqual(len(encode_frame(9, bytes(PEER_MAX_MESSAGE_SIZE - 1))), 131073)
        self.assertRaises(FrameTooLarge, encode_frame, 9, bytes(PEER_MAX_MESSAGE_SIZE))

    def test_type_range(self) -> None:
        """The type must be one byte."""
        self.assertRaises(ValueError, encode_frame, 256)


class DecoderTests(SynchronousTestCase):
    def test_whole_and_split(self) -> None:
        """Frames come out in order whether fed at once or one byte at a time."""
        stream = encode_frame(2, b"abc") + encode_frame(1) + encode_frame(9, b"z" * 300)
        expected = [(2, b"abc"), (1, b""), (9, b"z" * 300)]
        self.assertEqual(FrameDecoder().feed(stream), expected)
        dec = FrameDecoder()
        out = []
        for i in range(len(stream)):
            out.extend(dec.feed(stream[i : i + 1]))
        self.assertEqual(out, expected)
        self.assertEqual(dec.buffered, 0)

    def test_max_size_frame(self) -> None:
        """A frame of exactly the limit is accepted."""
        frame = encode_frame(9, bytes(PEER_MAX_MESSAGE_SIZE - 1))
        self.assertEqual(FrameDecoder().feed(frame), [(9, bytes(PEER_MAX_MESSAGE_SIZE - 1))])

    def test_oversized_rejected_at_prefix(self) -> None:
        """A declared length of 131071 raises FrameTooLarge before any of the body arrives."""
        self.assertRaises(FrameTooLarge, FrameDecoder().feed, uvarint_encode(131071))

    def test_empty_frame(self) -> None:
        """A frame of length 0 raises EmptyFrame."""
        self.assertRaises(EmptyFrame, FrameDecoder().feed, b"\x00")

    def test_uvarint_longer_than_ten_bytes(self) -> None:
        """A length prefix of more than 10 bytes is a DecodeError once 10 bytes are in."""
        dec = FrameDecoder()
        self.assertEqual(dec.feed(b"\x80" * 9), [])  # could still be a (padded) small length
        self.assertRaises(DecodeError, dec.feed, b"\x80")

    def test_uvarint_over_64_bits(self) -> None:
        """A 10-byte prefix whose last byte exceeds 1 is a DecodeError."""
        self.assertRaises(DecodeError, FrameDecoder().feed, b"\xff" * 9 + b"\x02")

    def test_non_minimal_prefix_accepted(self) -> None:
        """A padded (non-minimal) length, which Go's ReadUvarint accepts, is accepted."""
        self.assertEqual(FrameDecoder().feed(b"\x82\x80\x00\x02x"), [(2, b"x")])

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=400)), max_size=8),
        st.lists(st.integers(1, 50), max_size=30),
    )
    def test_round_trip_any_split(self, frames: list[tuple[int, bytes]], cuts: list[int]) -> None:
        """Any frames, concatenated and cut anywhere, decode to the same frames."""
        stream = b"".join(encode_frame(t, p) for t, p in frames)
        dec, out, pos = FrameDecoder(), [], 0
        for cut in cuts:
            out.extend(dec.feed(stream[pos : pos + cut]))
            pos += cut
        out.extend(dec.feed(stream[pos:]))
        self.assertEqual(out, frames)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=64))
    def test_garbage(self, data: bytes) -> None:
        """Arbitrary bytes yield frames or a DecodeError, never another exception."""
        try:
            FrameDecoder().feed(data)
        except DecodeError:
            pass


class TranscriptReplayTests(SynchronousTestCase):
    """Replays link-B-A.jsonl and link-C-A.jsonl, recorded from real v0.5.12 nodes."""

    def setUp(self) -> None:
        self.keys = {k: bytes.fromhex(v["public_key"]) for k, v in vector_keys().items()
                     if not k.startswith("_")}  # fmt: skip

    def records(self, name: str) -> list[dict]:
        with open(require(name)) as f:
            return [json.loads(line) for line in f if line.strip()]

    def test_replay(self) -> None:
        """
        Every meta message decodes and its signature verifies with the sender's key from
        keys.json; every frame record holds exactly one frame whose declared length matches and
        whose type is the recorded one; each (connection, direction) stream decodes whole.
        """
        metas = frames = 0
        for name in ("link-B-A.jsonl", "link-C-A.jsonl"):
            streams: dict[tuple[int, str], bytearray] = {}
            expected: dict[tuple[int, str], list[int]] = {}
            for rec in self.records(name):
                data = bytes.fromhex(rec["hex"])
                sender = rec["dir"].split("->")[0]
                key = (rec["conn"], rec["dir"])
                if rec["kind"] == "meta":
                    self.assertEqual(len(data), META_SIZE)
                    meta = decode_meta(data)
                    self.assertEqual(meta.public_key, self.keys[sender])
                    self.assertEqual((meta.major, meta.minor, meta.priority), (0, 5, 0))
                    self.assertNotIn(key, streams)
                    streams[key] = bytearray()
                    metas += 1
                    continue
                declared, start = uvarint_decode(data)
                self.assertEqual(declared, len(data) - start)
                self.assertEqual(data[start], rec["type"])
                self.assertEqual(FrameDecoder().feed(data), [(rec["type"], data[start + 1 :])])
                streams[key] += data
                expected.setdefault(key, []).append(rec["type"])
                frames += 1
            for key, stream in streams.items():
                dec = FrameDecoder()
                self.assertEqual([t for t, _ in dec.feed(bytes(stream))], expected.get(key, []))
                self.assertEqual(dec.buffered, 0)
        self.assertEqual(metas, 6)
        self.assertEqual(frames, 61 + 63 - 6)
