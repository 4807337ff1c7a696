# -*- test-case-name: tests.test_session_codec -*-
"""
Tests for L{axl.session.codec}: the 193-byte init/ack and SessionTraffic (spec 4.3, 4.4), the
8.2.6 vectors, and every init/ack the real v0.5.12 nodes exchanged in ../shared/vectors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import crypto_scalarmult_base
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto.keys import Identity, verify
from axl.encoding import uvarint_decode
from axl.errors import DecodeError
from axl.session.codec import (
    INIT_SIZE,
    TYPE_ACK,
    TYPE_INIT,
    SessionInit,
    decode_init,
    decode_traffic_header,
    encode_init,
    encode_traffic,
)
from axl.session.keys import (
    BoxKeyPair,
    open_box,
    shared_key,
    x25519_private,
    x25519_private_unclamped,
    x25519_public,
)
from tests.vectors import keys as vector_keys, require

A = Identity(bytes(32))
B = Identity(bytes(range(1, 33)))

INIT_PACKET = (
    "012b31b11cfddf996ddd3b016dde3f8e6b2117a43f598d1f7adedf72d28616e35c84c76198237000dd4119a6f3"
    "8ad2b5ccef99ab83ef8b976f4e3e0e392f9f035e4b53c2220b146f6aa202b899beb6e9b0be2d2daec89828f1fa"
    "9fd50b643b03bc46cc5365a8714186feec1b9f78a0638a2ae030ef046a69a1217153c4624066b1f9db53da0075"
    "483e6fb4cb7fb9a28eb867eb655364285d9503428c612637756a6a5e510c3718e355c49fa326e03ca69310c037"
    "0d123205503dfd2245529cfbdb"
)
TRAFFIC_PACKET = (
    "03010101ad14ee0bbebc030fd53cfc6dc9089fd15dcf59d08b419c81d66960b9dc32e4e3b55e047ec719cdacf6"
    "f5f45bd8b53fb7a0e0e2ea19f9"
)


def _pair(label: bytes) -> BoxKeyPair:
    priv = hashlib.sha256(label).digest()
    return BoxKeyPair(crypto_scalarmult_base(priv), priv)


def _vector_init() -> SessionInit:
    return SessionInit(_pair(b"cur").public, _pair(b"nxt").public, 0, 1700000000)


class InitVectorTests(SynchronousTestCase):
    """The SessionInit A->B of spec 8.2.6."""

    def test_pubs(self) -> None:
        """The fixed private keys give the spec's public keys."""
        self.assertEqual(
            _pair(b"eph").public.hex(),
            "2b31b11cfddf996ddd3b016dde3f8e6b2117a43f598d1f7adedf72d28616e35c",
        )
        self.assertEqual(
            _pair(b"cur").public.hex(),
            "5be29c010ff249f5d1bccce94dfc43f33c3937c8c9f6bfed3d2916fa33a65618",
        )
        self.assertEqual(
            _pair(b"nxt").public.hex(),
            "12adeba42880716848f2d8053812512db6b1f27a93aedee267e08823ffad7034",
        )

    def test_encode(self) -> None:
        """Encoding with the fixed ephemeral key gives the spec's 193 bytes."""
        packet = encode_init(
            TYPE_INIT, _vector_init(), A, x25519_public(B.public_key), _pair(b"eph")
        )
        self.assertEqual(len(packet), INIT_SIZE)
        self.assertEqual(packet.hex(), INIT_PACKET)

    def test_sig_bytes(self) -> None:
        """The signed 112 bytes are E_pub || current || next || keySeq || seq, as the spec shows."""
        packet = bytes.fromhex(INIT_PACKET)
        eph = packet[1:33]
        k = shared_key(eph, x25519_private_unclamped(B.seed))
        plain = open_box(packet[33:], 0, k)
        assert plain is not None
        sig_bytes = eph + plain[64:]
        self.assertEqual(
            sig_bytes.hex(),
            "2b31b11cfddf996ddd3b016dde3f8e6b2117a43f598d1f7adedf72d28616e35c5be29c010ff249f5d1"
            "bccce94dfc43f33c3937c8c9f6bfed3d2916fa33a6561812adeba42880716848f2d8053812512db6b1f2"
            "7a93aedee267e08823ffad70340000000000000000000000006553f100",
        )
        self.assertTrue(verify(A.public_key, sig_bytes, plain[:64]))

    def test_decode(self) -> None:
        """B decodes the vector packet (with either private form) to the original fields."""
        packet = bytes.fromhex(INIT_PACKET)
        for priv in (x25519_private(B.private_key), x25519_private_unclamped(B.seed)):
            self.assertEqual(decode_init(packet, priv, A.public_key), _vector_init())

    def test_decode_wrong_sender(self) -> None:
        """An init whose signature is not the network source's is rejected."""
        packet = bytes.fromhex(INIT_PACKET)
        with self.assertRaises(DecodeError):
            decode_init(packet, x25519_private(B.private_key), B.public_key)

    def test_decode_wrong_recipient(self) -> None:
        """An init for someone else does not decrypt."""
        packet = bytes.fromhex(INIT_PACKET)
        with self.assertRaises(DecodeError):
            decode_init(packet, x25519_private(A.private_key), A.public_key)

    def test_decode_tampered(self) -> None:
        """Flipping any byte of the box makes it fail."""
        packet = bytearray.fromhex(INIT_PACKET)
        for i in (33, 100, 192):
            bad = bytearray(packet)
            bad[i] ^= 0x01
            with self.assertRaises(DecodeError):
                decode_init(bytes(bad), x25519_private(B.private_key), A.public_key)

    def test_decode_length(self) -> None:
        """Only exactly 193 bytes are accepted."""
        packet = bytes.fromhex(INIT_PACKET)
        for data in (packet[:-1], packet + b"\x00"):
            with self.assertRaises(DecodeError):
                decode_init(data, x25519_private(B.private_key), A.public_key)

    def test_ack_roundtrip(self) -> None:
        """An ack has byte 0 = 2 and a fresh ephemeral key each time."""
        init = SessionInit(bytes(range(32)), bytes(range(32, 64)), 5, 2**40)
        p1 = encode_init(TYPE_ACK, init, A, x25519_public(B.public_key))
        p2 = encode_init(TYPE_ACK, init, A, x25519_public(B.public_key))
        self.assertEqual(p1[0], TYPE_ACK)
        self.assertNotEqual(p1[1:33], p2[1:33])
        self.assertEqual(decode_init(p1, x25519_private(B.private_key), A.public_key), init)

    def test_bad_type(self) -> None:
        """encode_init refuses a type other than 1 or 2."""
        self.assertRaises(
            ValueError, encode_init, 3, _vector_init(), A, x25519_public(B.public_key)
        )


class TrafficVectorTests(SynchronousTestCase):
    """The SessionTraffic of spec 8.2.6."""

    def test_encode(self) -> None:
        """Header (1, 1, 1) and box(next_pub || 01 'hello') under the spec's shared key."""
        shared = shared_key(_pair(b"rcur").public, _pair(b"snd").private)
        inner = _pair(b"nxt").public + bytes.fromhex("0168656c6c6f")
        self.assertEqual(encode_traffic(1, 1, 1, inner, shared).hex(), TRAFFIC_PACKET)

    def test_decode(self) -> None:
        """The header decodes and the box opens to next_pub || payload."""
        packet = bytes.fromhex(TRAFFIC_PACKET)
        their, ours, nonce, offset = decode_traffic_header(packet)
        self.assertEqual((their, ours, nonce, offset), (1, 1, 1, 4))
        shared = shared_key(_pair(b"snd").public, _pair(b"rcur").private)
        plain = open_box(packet[offset:], nonce, shared)
        self.assertEqual(plain, _pair(b"nxt").public + bytes.fromhex("0168656c6c6f"))

    def test_large_varints(self) -> None:
        """Multi-byte key sequences and nonces round-trip."""
        shared = shared_key(_pair(b"rcur").public, _pair(b"snd").private)
        packet = encode_traffic(300, 2**63, 2**64 - 1, bytes(32), shared)
        self.assertEqual(decode_traffic_header(packet)[:3], (300, 2**63, 2**64 - 1))

    def test_short_or_wrong_type(self) -> None:
        """Under 52 bytes, or a type byte other than 3, is a DecodeError."""
        packet = bytes.fromhex(TRAFFIC_PACKET)
        self.assertRaises(DecodeError, decode_traffic_header, packet[:51])
        self.assertRaises(DecodeError, decode_traffic_header, b"\x01" + packet[1:])
        self.assertRaises(DecodeError, decode_traffic_header, b"\x03" + b"\xff" * 60)


def _frames(name: str) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
    raw = require(f"link-{name}.jsonl").read_text().splitlines()
    decoded = require(f"decoded-{name}.jsonl").read_text().splitlines()
    for number, (r, d) in enumerate(zip(raw, decoded, strict=True), 1):
        yield number, json.loads(r), json.loads(d)


def _traffic_data(frame_hex: str) -> tuple[bytes, bytes, bytes]:
    """(source, dest, data) of a type-9 frame: uvarint length, 09, path, from, keys, watermark."""
    frame = bytes.fromhex(frame_hex)
    length, offset = uvarint_decode(frame, 0)
    assert len(frame) == offset + length and frame[offset] == 9
    offset += 1
    for _ in range(2):  # path and from: ports up to a 0
        port = None
        while port != 0:
            port, offset = uvarint_decode(frame, offset)
    source, dest = frame[offset : offset + 32], frame[offset + 32 : offset + 64]
    _, offset = uvarint_decode(frame, offset + 64)
    return source, dest, frame[offset:]


class TranscriptTests(SynchronousTestCase):
    """The SessionInit/Ack packets recorded from real yggdrasil v0.5.12 nodes."""

    def test_every_init_and_ack(self) -> None:
        """
        All 16 init/acks of the two links decrypt with the recipient's static key to the
        values of decoded-*.jsonl, and their inner signatures verify with the sender's key.
        """
        keys = vector_keys()
        idents = {n: Identity(bytes.fromhex(keys[n]["seed"])) for n in "ABC"}
        count = 0
        for name in ("B-A", "C-A"):
            for number, raw, dec in _frames(name):
                session = dec.get("session") or {}
                if dec.get("type") != 9 or session.get("type") not in ("SessionInit", "SessionAck"):
                    continue
                source, dest, data = _traffic_data(raw["hex"])
                sender, recipient = idents[dec["source_name"]], idents[dec["dest_name"]]
                self.assertEqual((source, dest), (sender.public_key, recipient.public_key))
                self.assertEqual(
                    data[0], TYPE_INIT if session["type"] == "SessionInit" else TYPE_ACK
                )
                self.assertEqual(data[1:33].hex(), session["ephemeral_pub"])
                init = decode_init(data, x25519_private(recipient.private_key), source)
                self.assertEqual(
                    (init.current.hex(), init.next.hex(), init.key_seq, init.seq),
                    (session["current"], session["next"], session["keySeq"], session["seq"]),
                    f"{name} line {number}",
                )
                plain = open_box(
                    data[33:], 0, shared_key(data[1:33], x25519_private_unclamped(recipient.seed))
                )
                assert plain is not None
                self.assertEqual(plain[:64].hex(), session["sig"])
                self.assertTrue(verify(source, data[1:33] + plain[64:], plain[:64]))
                count += 1
        self.assertEqual(count, 16)

    def test_traffic_headers(self) -> None:
        """Every recorded SessionTraffic header parses to the decoded file's key seqs and nonce."""
        count = 0
        for name in ("B-A", "C-A"):
            for _, raw, dec in _frames(name):
                session = dec.get("session") or {}
                if session.get("type") != "SessionTraffic":
                    continue
                _, _, data = _traffic_data(raw["hex"])
                their, ours, nonce, offset = decode_traffic_header(data)
                self.assertEqual(
                    (their, ours, nonce, len(data) - offset),
                    (
                        session["localKeySeq"],
                        session["remoteKeySeq"],
                        session["nonce"],
                        session["box_len"],
                    ),
                )
                count += 1
        self.assertEqual(count, 20)


class PropertyTests(SynchronousTestCase):
    """Decoders raise only DecodeError on arbitrary bytes."""

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300))
    def test_decode_init_arbitrary(self, data: bytes) -> None:
        """decode_init of arbitrary bytes raises DecodeError (they never authenticate)."""
        with self.assertRaises(DecodeError):
            decode_init(data, x25519_private(B.private_key), A.public_key)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(min_size=INIT_SIZE, max_size=INIT_SIZE))
    def test_decode_init_sized(self, data: bytes) -> None:
        """193 arbitrary bytes (incl. low-order E keys) raise DecodeError only."""
        with self.assertRaises(DecodeError):
            decode_init(data, x25519_private(B.private_key), A.public_key)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=120))
    def test_decode_traffic_header_arbitrary(self, data: bytes) -> None:
        """decode_traffic_header returns an offset inside the packet or raises DecodeError."""
        try:
            their, ours, nonce, offset = decode_traffic_header(data)
        except DecodeError:
            return
        self.assertLessEqual(offset, len(data))
        self.assertTrue(0 <= their < 2**64 and 0 <= ours < 2**64 and 0 <= nonce < 2**64)
