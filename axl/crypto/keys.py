# -*- test-case-name: tests.test_keys -*-
"""
The node's ed25519 identity: one key pair signs the link handshake, the tree and path entries and
the session inits; its address and subnet derive from the public key.

Loading keys from config or files lives in L{axl.identity}; this module is pure.
"""

from __future__ import annotations

import os

from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError, CryptoError

from axl.crypto.address import addr_for_key, format_address, subnet_for_key

__all__ = ["Identity", "verify", "short_key"]


def short_key(key: bytes | str) -> str:
    """A public key shortened for logs: its first 8 hex digits and an ellipsis."""
    text = key if isinstance(key, str) else key.hex()
    return text[:8] + "…" if text else "(none)"


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether C{signature} is a valid ed25519 signature of C{message} by C{public_key}."""
    if len(signature) != 64 or len(public_key) != 32:
        return False
    try:
        crypto_sign_open(bytes(signature) + bytes(message), bytes(public_key))
    except (BadSignatureError, CryptoError, ValueError):
        return False
    return True


class Identity:
    """
    An ed25519 key pair.

    @ivar seed: the 32-byte private seed (never log it).
    @ivar public_key: the 32-byte public key.
    @ivar ephemeral: True when the key was generated at start-up and will change on restart.
    """

    __slots__ = ("seed", "public_key", "ephemeral", "_secret")

    def __init__(self, seed: bytes, *, ephemeral: bool = False) -> None:
        if len(seed) != 32:
            raise ValueError("an ed25519 seed is 32 bytes")
        self.seed = bytes(seed)
        self.public_key, self._secret = crypto_sign_seed_keypair(self.seed)
        self.ephemeral = ephemeral

    def __repr__(self) -> str:
        return f"<Identity {short_key(self.public_key)}>"

    @classmethod
    def generate(cls) -> Identity:
        """A new random, ephemeral identity."""
        return cls(os.urandom(32), ephemeral=True)

    @classmethod
    def from_private_key(cls, private_key: bytes) -> Identity:
        """
        Yggdrasil's 64-byte private key (seed || public key), as in the config's C{PrivateKey}.

        @raise ValueError: the length is wrong or the public half does not belong to the seed.
        """
        if len(private_key) != 64:
            raise ValueError(f"expected 64 bytes (seed and public key), got {len(private_key)}")
        ident = cls(private_key[:32])
        if ident.public_key != private_key[32:]:
            raise ValueError("the public half does not match the seed")
        return ident

    @property
    def private_key(self) -> bytes:
        """Yggdrasil's 64-byte form, seed || public key."""
        return self._secret

    def sign(self, message: bytes) -> bytes:
        """The 64-byte deterministic (RFC 8032) signature of C{message}."""
        return crypto_sign(bytes(message), self._secret)[:64]

    @property
    def address(self) -> bytes:
        """The node's 16-byte 200::/8 address."""
        return addr_for_key(self.public_key)

    @property
    def subnet(self) -> bytes:
        """The first 8 bytes of the node's routed /64 in 300::/8."""
        return subnet_for_key(self.public_key)

    @property
    def ipv6(self) -> str:
        """The address as text, as C{/topology} shows it (C{our_ipv6})."""
        return format_address(self.address)
