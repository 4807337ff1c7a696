# -*- test-case-name: tests.test_session_keys -*-
"""
The encrypted layer's key material (spec/yggdrasil-wire.md section 4.1), on PyNaCl's bindings.

 - a node's static X25519 public key is the Edwards-to-Montgomery map of its ed25519 key
   (L{x25519_public}, cached: every init we send or check needs it);
 - its static X25519 private key is C{SHA-512(seed)[0:32]}. Go leaves it unclamped
   (L{x25519_private_unclamped}); libsodium's conversion clamps it (L{x25519_private}); X25519
   clamps internally, so both give the same shared secrets;
 - shared keys are C{crypto_box_beforenm} (HSalsa20 of X25519), computed once per key pair and
   kept by the session that uses them;
 - boxes are XSalsa20-Poly1305 C{tag || ciphertext} with the nonce C{16 zero bytes || BE64(n)}.

Any libsodium refusal (a low-order point, an invalid ed25519 encoding) is a L{DecodeError}: the
packet that carried the key is dropped.
"""

from __future__ import annotations

import hashlib
import struct
from functools import lru_cache

from nacl.bindings import (
    crypto_box_beforenm,
    crypto_box_easy_afternm,
    crypto_box_keypair,
    crypto_box_open_easy_afternm,
    crypto_sign_ed25519_pk_to_curve25519,
    crypto_sign_ed25519_sk_to_curve25519,
)
from nacl.exceptions import CryptoError
from nacl.exceptions import ValueError as NaclValueError

from axl.errors import DecodeError

__all__ = [
    "BoxKeyPair",
    "BOX_OVERHEAD",
    "x25519_public",
    "x25519_private",
    "x25519_private_unclamped",
    "shared_key",
    "nonce24",
    "seal",
    "open_box",
]

BOX_OVERHEAD = 16
"""The Poly1305 tag that C{seal} adds in front of the ciphertext."""

_NONCE_PREFIX = bytes(16)
_BE64 = struct.Struct(">Q")
_ZERO_NONCE = bytes(24)


class BoxKeyPair:
    """
    An X25519 key pair: the session's C{recv}, C{send} and C{next} keys and the ephemeral keys
    of init packets. Never log C{private}.
    """

    __slots__ = ("public", "private")

    def __init__(self, public: bytes, private: bytes) -> None:
        self.public = public
        self.private = private

    @classmethod
    def generate(cls) -> BoxKeyPair:
        """A fresh random pair."""
        public, private = crypto_box_keypair()
        return cls(public, private)

    def __repr__(self) -> str:
        return f"<BoxKeyPair {self.public[:4].hex()}…>"


@lru_cache(maxsize=4096)
def x25519_public(ed_public: bytes) -> bytes:
    """
    The X25519 public key of an ed25519 public key (cached).

    @raise DecodeError: libsodium rejects the point (only malicious keys).
    """
    try:
        return crypto_sign_ed25519_pk_to_curve25519(bytes(ed_public))
    except (CryptoError, NaclValueError, ValueError, TypeError) as e:
        raise DecodeError(f"the ed25519 key has no X25519 form: {e}") from None


def x25519_private(private_key: bytes) -> bytes:
    """The clamped X25519 private key of a 64-byte ed25519 private key (seed || public)."""
    return crypto_sign_ed25519_sk_to_curve25519(bytes(private_key))


def x25519_private_unclamped(seed: bytes) -> bytes:
    """Go's form of the static X25519 private key: C{SHA-512(seed)[0:32]}, not clamped."""
    if len(seed) != 32:
        raise ValueError("an ed25519 seed is 32 bytes")
    return hashlib.sha512(seed).digest()[:32]


def shared_key(their_public: bytes, my_private: bytes) -> bytes:
    """
    C{crypto_box_beforenm(their_public, my_private)}, Go's C{box.Precompute}.

    @raise DecodeError: libsodium rejects the public key (a low-order point).
    """
    try:
        return crypto_box_beforenm(their_public, my_private)
    except (CryptoError, NaclValueError, ValueError, TypeError) as e:
        raise DecodeError(f"unusable X25519 public key: {e}") from None


def nonce24(n: int) -> bytes:
    """The 24-byte box nonce for counter C{n}: 16 zero bytes then C{BE64(n)}."""
    if n == 0:
        return _ZERO_NONCE
    return _NONCE_PREFIX + _BE64.pack(n)


def seal(message: bytes, nonce: int, shared: bytes) -> bytes:
    """C{tag(16) || ciphertext} of C{message} (Go's C{box.SealAfterPrecomputation})."""
    return crypto_box_easy_afternm(message, nonce24(nonce), shared)


def open_box(box: bytes | memoryview, nonce: int, shared: bytes) -> bytes | None:
    """The plaintext of a L{seal}ed box, or None if it does not authenticate."""
    if len(box) < BOX_OVERHEAD:
        return None
    try:
        return crypto_box_open_easy_afternm(bytes(box), nonce24(nonce), shared)
    except (CryptoError, NaclValueError, TypeError):
        return None
