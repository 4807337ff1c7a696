# -*- test-case-name: tests.test_session_codec -*-
"""
The encrypted layer's packets (spec/yggdrasil-wire.md sections 4.2-4.4): the 193-byte
SessionInit/SessionAck and the SessionTraffic header. Pure functions, no state.

::

    init/ack: type(1) || E_pub(32) || box(sig(64) || current(32) || next(32) || BE64 keySeq
              || BE64 seq, nonce 0, beforenm(X25519(recipient), E_priv))
    traffic:  03 || uv localKeySeq || uv remoteKeySeq || uv nonce || box(next(32) || payload)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from axl.crypto.keys import Identity, verify
from axl.encoding import uvarint_decode, uvarint_encode
from axl.errors import DecodeError
from axl.session.keys import BOX_OVERHEAD, BoxKeyPair, open_box, seal, shared_key

__all__ = [
    "TYPE_DUMMY",
    "TYPE_INIT",
    "TYPE_ACK",
    "TYPE_TRAFFIC",
    "INIT_SIZE",
    "TRAFFIC_OVERHEAD_MIN",
    "TRAFFIC_OVERHEAD",
    "SessionInit",
    "encode_init",
    "decode_init",
    "encode_traffic",
    "decode_traffic_header",
]

TYPE_DUMMY = 0
TYPE_INIT = 1
TYPE_ACK = 2
TYPE_TRAFFIC = 3

INIT_SIZE = 193
TRAFFIC_OVERHEAD_MIN = 1 + 3 + BOX_OVERHEAD + 32  # 52: three one-byte varints
TRAFFIC_OVERHEAD = TRAFFIC_OVERHEAD_MIN + 3 * 9  # 79: the budget Go reserves

_TAIL = struct.Struct(">QQ")  # keySeq, seq
_TRAFFIC_TYPE = bytes((TYPE_TRAFFIC,))


@dataclass(frozen=True, slots=True)
class SessionInit:
    """
    The contents of an init or ack.

    @ivar current: the sender's current C{send} X25519 public key.
    @ivar next: the sender's C{next} X25519 public key.
    @ivar key_seq: the sender's C{localKeySeq}.
    @ivar seq: the sender's Unix time (whole seconds) when the init was made.
    """

    current: bytes
    next: bytes
    key_seq: int
    seq: int


def encode_init(
    packet_type: int,
    init: SessionInit,
    signer: Identity,
    recipient_x25519: bytes,
    ephemeral: BoxKeyPair | None = None,
) -> bytes:
    """
    The 193-byte init (C{packet_type} 1) or ack (2) from C{signer} to the node whose static
    X25519 public key is C{recipient_x25519}.

    @param ephemeral: the E key pair; a fresh one when not given (every packet sent needs one).
    @raise DecodeError: the recipient's key is unusable (libsodium refuses it).
    """
    if packet_type not in (TYPE_INIT, TYPE_ACK):
        raise ValueError(f"not an init/ack type: {packet_type}")
    eph = ephemeral if ephemeral is not None else BoxKeyPair.generate()
    body = init.current + init.next + _TAIL.pack(init.key_seq, init.seq)
    sig = signer.sign(eph.public + body)
    box = seal(sig + body, 0, shared_key(recipient_x25519, eph.private))
    return bytes((packet_type,)) + eph.public + box


def decode_init(data: bytes, my_x25519_private: bytes, sender_key: bytes) -> SessionInit:
    """
    Open an init or ack (any type byte) addressed to us and check it was signed by
    C{sender_key}, the network-layer source.

    @raise DecodeError: wrong length, the box does not open, or the signature is bad.
    """
    if len(data) != INIT_SIZE:
        raise DecodeError(f"a session init/ack is {INIT_SIZE} bytes, got {len(data)}")
    eph_pub = data[1:33]
    plain = open_box(data[33:], 0, shared_key(eph_pub, my_x25519_private))
    if plain is None:
        raise DecodeError("session init/ack does not decrypt")
    body = plain[64:]
    if not verify(sender_key, eph_pub + body, plain[:64]):
        raise DecodeError("session init/ack signature does not verify")
    key_seq, seq = _TAIL.unpack_from(body, 64)
    return SessionInit(body[:32], body[32:64], key_seq, seq)


def encode_traffic(
    local_key_seq: int, remote_key_seq: int, nonce: int, inner: bytes, shared: bytes
) -> bytes:
    """A SessionTraffic packet boxing C{inner} (C{next.pub || payload}) under C{shared}."""
    header = (
        _TRAFFIC_TYPE
        + uvarint_encode(local_key_seq)
        + uvarint_encode(remote_key_seq)
        + uvarint_encode(nonce)
    )
    return header + seal(inner, nonce, shared)


def decode_traffic_header(data: bytes) -> tuple[int, int, int, int]:
    """
    Parse a SessionTraffic header.

    @return: C{(sender's localKeySeq, sender's view of our keySeq, nonce, offset of the box)}.
    @raise DecodeError: shorter than 52 bytes, not type 3, or a bad varint.
    """
    if len(data) < TRAFFIC_OVERHEAD_MIN:
        raise DecodeError(f"session traffic shorter than {TRAFFIC_OVERHEAD_MIN} bytes")
    if data[0] != TYPE_TRAFFIC:
        raise DecodeError("not a session traffic packet")
    their_seq, offset = uvarint_decode(data, 1)
    our_seq, offset = uvarint_decode(data, offset)
    nonce, offset = uvarint_decode(data, offset)
    return their_seq, our_seq, nonce, offset
