# -*- test-case-name: tests.test_identity -*-
"""
Loading the node's ed25519 identity from its configuration (spec/axl-node.md section 2.4).

C{PrivateKeyPath} (a PKCS#8 PEM, as C{openssl genpkey -algorithm ed25519} writes it) wins over
C{PrivateKey} (Yggdrasil's 64-byte hex); with neither, the node runs with a new random key that
changes at every start.
"""

from __future__ import annotations

import os
import re
import stat

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.logger import Logger

from axl.config import NodeConfig
from axl.crypto.keys import Identity, short_key
from axl.errors import ConfigError
from axl.logs import observer as log_observer

__all__ = ["load_identity", "identity_from_pem", "identity_to_pem", "read_key_file", "how_to_make_key"]

log = Logger(observer=log_observer)

_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def how_to_make_key(path: str) -> str:
    """The sentence telling the operator how to create a key file at C{path}."""
    return f"create one with `axl keygen {path}` or `openssl genpkey -algorithm ed25519 -out {path}`"


def identity_to_pem(identity: Identity) -> bytes:
    """The identity's private key as an unencrypted PKCS#8 PEM (C{-----BEGIN PRIVATE KEY-----})."""
    key = Ed25519PrivateKey.from_private_bytes(identity.seed)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def identity_from_pem(data: bytes) -> Identity:
    """
    Parse the first PEM block of C{data}, which must be an unencrypted PKCS#8 ed25519 key.

    @raise ValueError: with the reason (not PEM, another block type, another key type, malformed).
    """
    match = _PEM_BEGIN.search(data)
    if match is None:
        raise ValueError("is not a PEM file (no -----BEGIN PRIVATE KEY----- line)")
    label = match.group(1).decode("ascii")
    if label != "PRIVATE KEY":
        extra = " (encrypted keys are not supported)" if label == "ENCRYPTED PRIVATE KEY" else ""
        raise ValueError(f'holds a PEM block of type "{label}", expected "PRIVATE KEY"{extra}')
    end_marker = b"-----END PRIVATE KEY-----"
    end = data.find(end_marker, match.end())
    if end < 0:
        raise ValueError("is a malformed PEM file (no -----END PRIVATE KEY----- line)")
    block = data[match.start() : end + len(end_marker)]
    try:
        key = serialization.load_pem_private_key(block, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"is a malformed PEM private key ({_first_line(e)})") from None
    except Exception as e:  # cryptography raises UnsupportedAlgorithm for unknown key types
        raise ValueError(f"holds a key axl cannot read ({_first_line(e)})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"holds {_key_kind(key)} key, but the node key must be ed25519")
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return Identity(seed)


def _first_line(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


_KINDS = (("RSA", "an RSA"), ("EC", "an EC"), ("DSA", "a DSA"), ("Ed448", "an Ed448"),
          ("X25519", "an X25519"), ("X448", "an X448"), ("DH", "a DH"))


def _key_kind(key: object) -> str:
    name = type(key).__name__.lstrip("_")
    for prefix, text in _KINDS:
        if name.startswith(prefix):
            return text
    return f"a {name}"


def read_key_file(path: str, source: str) -> Identity:
    """
    Read the PEM key file C{path} named by the config C{source}.

    @raise ConfigError: naming both files and saying how to create a key.
    """
    prefix = f"{source}: PrivateKeyPath {path}"
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(f"{prefix} is not a regular file; {how_to_make_key(path)}")
            data = f.read(1 << 20)
    except FileNotFoundError:
        raise ConfigError(f"{prefix} does not exist; {how_to_make_key(path)}") from None
    except IsADirectoryError:
        raise ConfigError(f"{prefix} is a directory; {how_to_make_key(path)}") from None
    except OSError as e:
        raise ConfigError(
            f"{prefix} cannot be read ({e.strerror or e}); fix its permissions or "
            f"{how_to_make_key(path)}"
        ) from None
    try:
        identity = identity_from_pem(data)
    except ValueError as e:
        raise ConfigError(f"{prefix} {e}; {how_to_make_key(path)}") from None
    if st.st_mode & 0o077:
        log.warn(
            "Key file {path} is readable by group or others (mode {mode}); run: chmod 600 {path}",
            path=path,
            mode=oct(stat.S_IMODE(st.st_mode)),
        )
    return identity


def load_identity(config: NodeConfig) -> Identity:
    """
    The node's identity as the config says: the PEM file, else C{PrivateKey}, else a new
    ephemeral key (logged as a warning).

    @raise ConfigError: the key file or the C{PrivateKey} is unusable.
    """
    if config.private_key_path is not None:
        return read_key_file(config.private_key_path, config.source)
    if config.private_key is not None:
        try:
            return Identity.from_private_key(config.private_key)
        except ValueError as e:
            raise ConfigError(f"{config.source}: key 'PrivateKey' is not a valid key: {e}") from None
    identity = Identity.generate()
    log.warn(
        "No PrivateKeyPath or PrivateKey configured: using a new ephemeral key {key}; this node's "
        "identity and IPv6 address will change on restart (make a key with `axl keygen PATH` and "
        "set PrivateKeyPath)",
        key=short_key(identity.public_key),
    )
    return identity
