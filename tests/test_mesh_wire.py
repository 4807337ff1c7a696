# -*- test-case-name: tests.test_mesh_wire -*-
"""
Tests for L{axl.mesh.wire}: the spec section 8.2.3 and 8.2.5 vectors, replay of the recorded
yggdrasil v0.5.12 transcripts, and property tests of every decoder.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto import xform
from axl.crypto.keys import Identity, verify
from axl.encoding import MAX_UINT64
from axl.errors import DecodeError
from axl.mesh.bloom import bloom_mask, decode_bloom, encode_bloom
from axl.mesh.wire import (
    Announce,
    PathBroken,
    PathLookup,
    PathNotify,
    SigReq,
    SigRes,
    Traffic,
    decode_path,
    encode_path,
    notify_info_bytes,
    tree_tbs,
)
from tests.vectors import keys as vector_keys, require

A = Identity(bytes(32))
B = Identity(bytes(range(1, 33)))
NONCE = 0x0123456789ABCDEF

SIGRES_HEX = (
    "07ef9bafcdf8acd191010323be626603c087bda2b38225bd8609352f4062b04b4f8fec085e06fdc5b62e8143e1c3"
    "82954e507ce2f97568e3b918835115a4ab39d1a4136383fbc6baf3d409"
)
ANNOUNCE_HEX = (
    "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da2979b5562e8fe654f94078b112e8a9"
    "8ba7901f853ae695bed7e0e3910bad04966407ef9bafcdf8acd191010323be626603c087bda2b38225bd8609352f"
    "4062b04b4f8fec085e06fdc5b62e8143e1c382954e507ce2f97568e3b918835115a4ab39d1a4136383fbc6baf3d4"
    "0934a2c4fc803bd78c47c98cfa312ee8a51469655854ea08e3331927b8c2929c95d88d293adb2234315a1092715b"
    "f13fcf1abf38d3e8ed28723f5872d4d3734e00"
)
ROOT_ANNOUNCE_HEX = (
    "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad04966479b5562e8fe654f94078b112e8a9"
    "8ba7901f853ae695bed7e0e3910bad049664012a00bde0d64ce348fbb3dc2cc1e179e3f97c1159ec6007db50c1aa"
    "d8954a397ac59da296e670f78c5362e7a62be24153f81d7481a1adb7b8cd440ec8e206f8bec407bde0d64ce348fb"
    "b3dc2cc1e179e3f97c1159ec6007db50c1aad8954a397ac59da296e670f78c5362e7a62be24153f81d7481a1adb7"
    "b8cd440ec8e206f8bec407"
)
NOTIFY_HEX = (
    "010300ffffffffffffffffff0179b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad0496643b"
    "6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da2980e2cfaa0601040200a527a16a401f"
    "328ee6dde0e95394ceb1e63c747fcb9ce572c4921b99d422ee9dfd7fbfc87deadcf69198c08729be7005b87373af"
    "8c756e560b31e1b86c82f404"
)


class SpanningTreeVectorTests(SynchronousTestCase):
    """Spec section 8.2.3 (A = child, B = parent; seq 7, nonce 0x0123456789abcdef, port 3)."""

    def test_sigreq(self) -> None:
        """A SigReq payload is the two uvarints, and decodes back."""
        payload = SigReq(7, NONCE).encode()
        self.assertEqual(payload.hex(), "07ef9bafcdf8acd19101")
        self.assertEqual(SigReq.decode(payload), SigReq(7, NONCE))

    def test_tbs(self) -> None:
        """The signed bytes of a tree entry are node || parent || seq || nonce || port."""
        self.assertEqual(
            tree_tbs(A.public_key, B.public_key, 7, NONCE, 3).hex(),
            A.public_key.hex() + B.public_key.hex() + "07ef9bafcdf8acd1910103",
        )

    def test_sigres(self) -> None:
        """B's SigRes for A carries B's signature of TBS(A, B, ...) and verifies."""
        psig = B.sign(tree_tbs(A.public_key, B.public_key, 7, NONCE, 3))
        res = SigRes(7, NONCE, 3, psig)
        self.assertEqual(res.encode().hex(), SIGRES_HEX)
        self.assertEqual(SigRes.decode(bytes.fromhex(SIGRES_HEX)), res)
        self.assertTrue(res.verify(A.public_key, B.public_key))
        self.assertFalse(res.verify(B.public_key, A.public_key))

    def test_announce(self) -> None:
        """A's announce under B (203 bytes) has B's psig and A's sig; both verify."""
        tbs = tree_tbs(A.public_key, B.public_key, 7, NONCE, 3)
        ann = Announce(A.public_key, B.public_key, 7, NONCE, 3, B.sign(tbs), A.sign(tbs))
        payload = ann.encode()
        self.assertEqual(len(payload), 203)
        self.assertEqual(payload.hex(), ANNOUNCE_HEX)
        self.assertEqual(Announce.decode(payload), ann)
        self.assertTrue(ann.verify())

    def test_root_announce(self) -> None:
        """B's root announce (seq 1, nonce 42, port 0) has psig == sig and verifies."""
        sig = B.sign(tree_tbs(B.public_key, B.public_key, 1, 42, 0))
        ann = Announce(B.public_key, B.public_key, 1, 42, 0, sig, sig)
        self.assertEqual(ann.encode().hex(), ROOT_ANNOUNCE_HEX)
        self.assertTrue(Announce.decode(bytes.fromhex(ROOT_ANNOUNCE_HEX)).verify())

    def test_announce_port_zero_needs_root(self) -> None:
        """Port 0 with key != parent never verifies, even with valid signatures."""
        tbs = tree_tbs(A.public_key, B.public_key, 7, NONCE, 0)
        ann = Announce(A.public_key, B.public_key, 7, NONCE, 0, B.sign(tbs), A.sign(tbs))
        self.assertFalse(ann.verify())

    def test_announce_bad_signatures(self) -> None:
        """A wrong sig or psig fails verification."""
        tbs = tree_tbs(A.public_key, B.public_key, 7, NONCE, 3)
        good_p, good_s = B.sign(tbs), A.sign(tbs)
        self.assertFalse(Announce(A.public_key, B.public_key, 7, NONCE, 3, good_s, good_s).verify())
        self.assertFalse(Announce(A.public_key, B.public_key, 7, NONCE, 3, good_p, good_p).verify())

    def test_trailing_bytes(self) -> None:
        """Every fixed-layout decoder rejects one trailing byte."""
        cases = [
            (SigReq, "07ef9bafcdf8acd19101"),
            (SigRes, SIGRES_HEX),
            (Announce, ANNOUNCE_HEX),
            (PathNotify, NOTIFY_HEX),
        ]
        for cls, hexed in cases:
            self.assertRaises(DecodeError, cls.decode, bytes.fromhex(hexed) + b"\x00")


class LookupVectorTests(SynchronousTestCase):
    """Spec section 8.2.5."""

    def test_path_encoding(self) -> None:
        """Paths are uvarint ports terminated by 0."""
        self.assertEqual(encode_path(()), b"\x00")
        self.assertEqual(encode_path((1, 3)).hex(), "010300")
        self.assertEqual(encode_path((300, 1)).hex(), "ac020100")
        self.assertEqual(decode_path(bytes.fromhex("ac02010000"), 0), ((300, 1), 4))
        self.assertEqual(decode_path(b"\x05\x00", 1), ((), 2))

    def test_path_non_minimal(self) -> None:
        """A non-minimal port (0x81 0x00 = 1) decodes as Go does; 0x80 0x00 ends the path."""
        self.assertEqual(decode_path(bytes.fromhex("8100020000"), 0), ((1, 2), 4))
        self.assertEqual(decode_path(bytes.fromhex("0180000300"), 0), ((1,), 3))

    def test_path_errors(self) -> None:
        """A path without terminator is a DecodeError; a port 0 cannot be encoded."""
        self.assertRaises(DecodeError, decode_path, b"\x01\x02", 0)
        self.assertRaises(DecodeError, decode_path, b"\x81", 0)
        self.assertRaises(ValueError, encode_path, (1, 0))

    def test_lookup(self) -> None:
        """PathLookup: source A, dest B, from [1, 3]."""
        lookup = PathLookup(A.public_key, B.public_key, (1, 3))
        expected = A.public_key.hex() + B.public_key.hex() + "010300"
        self.assertEqual(lookup.encode().hex(), expected)
        self.assertEqual(PathLookup.decode(bytes.fromhex(expected)), lookup)

    def test_notify(self) -> None:
        """PathNotify: signed info bytes and the whole payload; the signature verifies."""
        self.assertEqual(notify_info_bytes(1700000000, (1, 4, 2)).hex(), "80e2cfaa0601040200")
        sig = B.sign(notify_info_bytes(1700000000, (1, 4, 2)))
        notify = PathNotify(
            (1, 3), MAX_UINT64, B.public_key, A.public_key, 1700000000, (1, 4, 2), sig
        )
        self.assertEqual(notify.encode().hex(), NOTIFY_HEX)
        self.assertEqual(PathNotify.decode(bytes.fromhex(NOTIFY_HEX)), notify)
        self.assertTrue(notify.verify())

    def test_broken(self) -> None:
        """PathBroken: path [1, 3], watermark max, source A, dest B."""
        broken = PathBroken((1, 3), MAX_UINT64, A.public_key, B.public_key)
        expected = "010300ffffffffffffffffff01" + A.public_key.hex() + B.public_key.hex()
        self.assertEqual(broken.encode().hex(), expected)
        self.assertEqual(PathBroken.decode(bytes.fromhex(expected)), broken)

    def test_traffic(self) -> None:
        """Traffic: path [1,4,2], from [1,3], A to B, watermark max, data 01 'hello'."""
        tr = Traffic((1, 4, 2), (1, 3), A.public_key, B.public_key, MAX_UINT64, b"\x01hello")
        expected = (
            "01040200010300"
            + A.public_key.hex()
            + B.public_key.hex()
            + "ffffffffffffffffff01"
            + "0168656c6c6f"
        )
        self.assertEqual(tr.encode().hex(), expected)
        self.assertEqual(Traffic.decode(bytes.fromhex(expected)), tr)

    def test_traffic_overhead(self) -> None:
        """With empty paths and watermark max the Traffic overhead is 76 bytes (section 3.9)."""
        tr = Traffic((), (), A.public_key, B.public_key, MAX_UINT64, b"")
        self.assertEqual(len(tr.encode()), 76)


def _load(name: str) -> list[dict[str, object]]:
    with open(require(name)) as f:
        return [json.loads(line) for line in f]


class TranscriptReplayTests(SynchronousTestCase):
    """Every frame of types 2..9 in the recorded v0.5.12 transcripts."""

    def setUp(self) -> None:
        keys = vector_keys()
        self.keys = {name: bytes.fromhex(keys[name]["public_key"]) for name in ("A", "B", "C")}

    def _replay(self, link: str) -> int:
        raw = _load(f"link-{link}.jsonl")
        decoded = _load(f"decoded-{link}.jsonl")
        self.assertEqual(len(raw), len(decoded))
        count = 0
        for rec, dec in zip(raw, decoded):
            if rec["kind"] != "frame" or rec["type"] in (0, 1):
                continue
            frame = bytes.fromhex(rec["hex"])  # type: ignore[arg-type]
            # The frame is uvarint length || type || payload; lengths here are < 16384.
            size = frame[0] if frame[0] < 0x80 else (frame[0] & 0x7F) | (frame[1] << 7)
            start = 1 if frame[0] < 0x80 else 2
            self.assertEqual(size, len(frame) - start)
            self.assertEqual(frame[start], rec["type"])
            payload = frame[start + 1 :]
            self._check(rec["type"], payload, dec)  # type: ignore[arg-type]
            count += 1
        return count

    def _check(self, frame_type: int, payload: bytes, dec: dict) -> None:  # type: ignore[type-arg]
        direction = dec["dir"]
        sender = self.keys[direction[0]]
        receiver = self.keys[direction[3]]
        if frame_type == 2:
            msg = SigReq.decode(payload)
            self.assertEqual((msg.seq, msg.nonce), (dec["seq"], dec["nonce"]))
        elif frame_type == 3:
            msg = SigRes.decode(payload)
            self.assertEqual(
                (msg.seq, msg.nonce, msg.port, msg.psig.hex()),
                (dec["seq"], dec["nonce"], dec["port"], dec["psig"]),
            )
            self.assertEqual(
                tree_tbs(receiver, sender, msg.seq, msg.nonce, msg.port).hex(), dec["tbs"]
            )
            self.assertTrue(msg.verify(receiver, sender))
        elif frame_type == 4:
            msg = Announce.decode(payload)
            self.assertEqual(
                (msg.key.hex(), msg.parent.hex(), msg.seq, msg.nonce, msg.port),
                (dec["key"], dec["parent"], dec["seq"], dec["nonce"], dec["port"]),
            )
            self.assertTrue(msg.verify())
            self.assertEqual(msg.psig == msg.sig, dec["psig_equals_sig"])
        elif frame_type == 5:
            bloom = decode_bloom(payload)
            expected = 0
            for name in dec["contains"]:
                expected |= bloom_mask(xform(self.keys[name]))
            self.assertEqual(bloom, expected)
            self.assertEqual(bloom.bit_count(), dec["bits_set"])
            self.assertEqual(encode_bloom(bloom), payload)
            return
        elif frame_type == 6:
            msg = PathLookup.decode(payload)
            self.assertEqual(
                (msg.source.hex(), msg.dest.hex(), list(msg.from_path)),
                (dec["source"], dec["dest"], dec["from"]),
            )
            matches = [n for n, k in self.keys.items() if xform(k) == xform(msg.dest)]
            self.assertEqual(matches, dec["dest_xform_matches"])
        elif frame_type == 7:
            msg = PathNotify.decode(payload)
            self.assertEqual(
                (
                    list(msg.path),
                    msg.watermark,
                    msg.source.hex(),
                    msg.dest.hex(),
                    msg.info_seq,
                    list(msg.info_path),
                ),
                (
                    dec["path"],
                    dec["watermark"],
                    dec["source"],
                    dec["dest"],
                    dec["info_seq"],
                    dec["info_path"],
                ),
            )
            self.assertTrue(msg.verify())
            self.assertTrue(
                verify(msg.source, notify_info_bytes(msg.info_seq, msg.info_path), msg.info_sig)
            )
        elif frame_type == 8:
            msg = PathBroken.decode(payload)
            self.assertEqual(
                (list(msg.path), msg.watermark, msg.source.hex(), msg.dest.hex()),
                (dec["path"], dec["watermark"], dec["source"], dec["dest"]),
            )
        elif frame_type == 9:
            msg = Traffic.decode(payload)
            self.assertEqual(
                (
                    list(msg.path),
                    list(msg.from_path),
                    msg.watermark,
                    len(msg.data),
                    msg.source,
                    msg.dest,
                ),
                (
                    dec["path"],
                    dec["from"],
                    dec["watermark"],
                    dec["data_len"],
                    self.keys[dec["source_name"]],
                    self.keys[dec["dest_name"]],
                ),
            )
        else:  # pragma: no cover
            self.fail(f"unexpected frame type {frame_type}")
        self.assertEqual(msg.encode(), payload)

    def test_b_a(self) -> None:
        """Every type 2..9 frame of the B-A link decodes as recorded and re-encodes exactly."""
        self.assertGreater(self._replay("B-A"), 40)

    def test_c_a(self) -> None:
        """Every type 2..9 frame of the C-A link decodes as recorded and re-encodes exactly."""
        self.assertGreater(self._replay("C-A"), 40)


keys = st.binary(min_size=32, max_size=32)
sigs = st.binary(min_size=64, max_size=64)
u64 = st.integers(min_value=0, max_value=MAX_UINT64)
paths = st.lists(st.integers(min_value=1, max_value=MAX_UINT64), max_size=12).map(tuple)
small_paths = st.lists(st.integers(min_value=1, max_value=300), max_size=12).map(tuple)

MESSAGES = st.one_of(
    st.builds(SigReq, u64, u64),
    st.builds(SigRes, u64, u64, u64, sigs),
    st.builds(Announce, keys, keys, u64, u64, u64, sigs, sigs),
    st.builds(PathLookup, keys, keys, st.one_of(paths, small_paths)),
    st.builds(PathNotify, paths, u64, keys, keys, u64, small_paths, sigs),
    st.builds(PathBroken, st.one_of(paths, small_paths), u64, keys, keys),
    st.builds(Traffic, small_paths, paths, keys, keys, u64, st.binary(max_size=64)),
)
DECODERS = [SigReq, SigRes, Announce, PathLookup, PathNotify, PathBroken, Traffic]


class PropertyTests(SynchronousTestCase):
    """Hypothesis: round trips and arbitrary input."""

    @settings(max_examples=300, deadline=None)
    @given(MESSAGES)
    def test_round_trip(self, msg: object) -> None:
        """decode(encode(x)) == x for every message type."""
        self.assertEqual(type(msg).decode(msg.encode()), msg)  # type: ignore[attr-defined]

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """Arbitrary bytes make every decoder return a value or raise DecodeError only."""
        for cls in DECODERS:
            try:
                cls.decode(data)  # type: ignore[attr-defined]
            except DecodeError:
                pass

    @settings(max_examples=200, deadline=None)
    @given(paths, st.binary(max_size=8))
    def test_path_round_trip(self, path: tuple[int, ...], tail: bytes) -> None:
        """A path decodes back from its encoding, whatever follows it."""
        encoded = encode_path(path)
        self.assertEqual(decode_path(encoded + tail, 0), (path, len(encoded)))
