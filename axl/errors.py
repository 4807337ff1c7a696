# -*- test-case-name: tests.test_encoding -*-
"""
The error types shared by every layer.

A L{ProtocolError} is bad input from a peer: the layer that sees it drops that link or packet and
logs it; the node carries on. A L{DecodeError} is the kind raised by every wire decoder.
"""

from __future__ import annotations

__all__ = ["ProtocolError", "DecodeError", "ConfigError"]


class ProtocolError(Exception):
    """A peer sent something that breaks the protocol."""


class DecodeError(ProtocolError):
    """Bytes that do not decode as the structure they claim to be."""


class ConfigError(Exception):
    """
    The node's configuration is unusable; the message names the file and the key.
    """
