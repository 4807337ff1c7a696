# -*- test-case-name: tests.test_link_meta -*-
"""
The Yggdrasil "meta" version handshake (spec/yggdrasil-wire.md section 2.4).

Both sides send one 123-byte message at once and read one::

    "meta" || BE16 L || TLV* || sig(64)        TLV = BE16 type || BE16 length || value

The signature is ed25519 over BLAKE2b-512(key=password, data=public key). Decoding is as strict
as v0.5.14 (exact field lengths, nothing left over) which still accepts everything v0.5.12 and
v0.5.14 emit: they write the canonical TLVs 0, 1, 2, 3.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from axl.crypto import Identity, verify
from axl.errors import ConfigError, DecodeError, ProtocolError

__all__ = [
    "META_PREAMBLE",
    "META_SIZE",
    "META_HEADER_SIZE",
    "MAX_PASSWORD_LEN",
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "Meta",
    "HandshakeError",
    "check_password",
    "password_hash",
    "encode_meta",
    "meta_body_length",
    "decode_meta",
]

META_PREAMBLE = b"meta"
META_HEADER_SIZE = 6
META_SIZE = 123
MAX_PASSWORD_LEN = 64
PROTOCOL_MAJOR = 0
PROTOCOL_MINOR = 5

_SIG_LEN = 64
_KEY_LEN = 32
_TLV_MAJOR, _TLV_MINOR, _TLV_KEY, _TLV_PRIORITY = 0, 1, 2, 3
# Exact value length of each known TLV type (v0.5.14 rejects any other length).
_TLV_LENGTHS = {_TLV_MAJOR: 2, _TLV_MINOR: 2, _TLV_KEY: _KEY_LEN, _TLV_PRIORITY: 1}

_HEADER = struct.Struct("!4sH")
_TLV_HEADER = struct.Struct("!HH")
_BE16 = struct.Struct("!H")
# The canonical body before the key: major and minor version TLVs, then the key TLV header.
_PREFIX = struct.pack(
    "!4sH HHH HHH HH",
    META_PREAMBLE,
    META_SIZE - META_HEADER_SIZE,
    _TLV_MAJOR, 2, PROTOCOL_MAJOR,
    _TLV_MINOR, 2, PROTOCOL_MINOR,
    _TLV_KEY, _KEY_LEN,
)  # fmt: skip
_PRIORITY_TLV = struct.Struct("!HHB")


class HandshakeError(ProtocolError):
    """The peer's meta message is well formed but refused (version, signature or password)."""


@dataclass(frozen=True)
class Meta:
    """A decoded and verified meta message."""

    major: int
    minor: int
    public_key: bytes
    priority: int


def check_password(password: bytes) -> bytes:
    """
    Validate a link password (URI option C{password=}).

    @raise ConfigError: it is longer than 64 bytes (BLAKE2b's largest key).
    """
    if len(password) > MAX_PASSWORD_LEN:
        raise ConfigError(
            f"link password is {len(password)} bytes; at most {MAX_PASSWORD_LEN} are allowed"
        )
    return bytes(password)


def password_hash(public_key: bytes, password: bytes = b"") -> bytes:
    """BLAKE2b-512 of the public key, keyed with the password (unkeyed when empty)."""
    return hashlib.blake2b(public_key, digest_size=64, key=check_password(password)).digest()


def encode_meta(identity: Identity, priority: int = 0, password: bytes = b"") -> bytes:
    """The canonical 123-byte meta message for our identity."""
    if not 0 <= priority <= 255:
        raise ValueError(f"link priority must be 0..255, not {priority}")
    signature = identity.sign(password_hash(identity.public_key, password))
    return b"".join(
        (_PREFIX, identity.public_key, _PRIORITY_TLV.pack(_TLV_PRIORITY, 1, priority), signature)
    )


def meta_body_length(header: bytes | bytearray | memoryview) -> int:
    """
    Check the 6-byte header and return L, the number of bytes that follow it.

    @raise DecodeError: the preamble is not "meta" (not Yggdrasil) or L < 64.
    """
    preamble, length = _HEADER.unpack_from(header)
    if preamble != META_PREAMBLE:
        raise DecodeError("remote side is not Yggdrasil (bad meta preamble)")
    if length < _SIG_LEN:
        raise DecodeError(f"invalid meta length {length} (less than a signature)")
    return int(length)


def decode_meta(data: bytes | bytearray | memoryview, password: bytes = b"") -> Meta:
    """
    Decode, verify and check one whole meta message (header included, nothing after it).

    @param password: our password for this link (the peer's signature must be made with the
        same one).
    @raise DecodeError: the bytes are malformed: bad preamble or length, a TLV running past the
        end or with the wrong length for its type, leftover bytes.
    @raise HandshakeError: the signature (or password) does not match, or the version is not 0.5,
        or there is no key.
    """
    data = bytes(data)
    if len(data) < META_HEADER_SIZE:
        raise DecodeError(f"meta message truncated at {len(data)} bytes")
    length = meta_body_length(data)
    if len(data) != META_HEADER_SIZE + length:
        raise DecodeError(
            f"meta message is {len(data)} bytes but its header says {META_HEADER_SIZE + length}"
        )
    end = len(data) - _SIG_LEN
    signature = data[end:]
    major = minor = priority = 0
    key = b""
    offset = META_HEADER_SIZE
    while end - offset >= _TLV_HEADER.size:
        tlv_type, tlv_len = _TLV_HEADER.unpack_from(data, offset)
        offset += _TLV_HEADER.size
        if tlv_len > end - offset:
            raise DecodeError(f"meta field {tlv_type} runs past the end of the message")
        expected = _TLV_LENGTHS.get(tlv_type)
        if expected is not None and tlv_len != expected:
            raise DecodeError(f"meta field {tlv_type} has length {tlv_len}, expected {expected}")
        if tlv_type == _TLV_MAJOR:
            (major,) = _BE16.unpack_from(data, offset)
        elif tlv_type == _TLV_MINOR:
            (minor,) = _BE16.unpack_from(data, offset)
        elif tlv_type == _TLV_KEY:
            key = data[offset : offset + _KEY_LEN]
        elif tlv_type == _TLV_PRIORITY:
            priority = data[offset]
        offset += tlv_len
    if offset != end:
        raise DecodeError(f"{end - offset} leftover bytes in meta message")
    if len(key) != _KEY_LEN:
        raise HandshakeError("incompatible version: the meta message carries no public key")
    if not verify(key, password_hash(key, password), signature):
        raise HandshakeError("password does not match remote side (or bad meta signature)")
    if (major, minor) != (PROTOCOL_MAJOR, PROTOCOL_MINOR):
        raise HandshakeError(
            f"incompatible version: remote {major}.{minor}, "
            f"local {PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
        )
    return Meta(major, minor, key, priority)
