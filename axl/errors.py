# -*- test-case-name: tests.test_encoding -*-
"""
The error types shared by every layer.

A L{ProtocolError} is bad input from a peer: the layer that sees it drops that link or packet and
logs it; the node carries on. A L{DecodeError} is the kind raised by every wire decoder.
"""

from __future__ import annotations

from typing import NoReturn

from twisted.internet.defer import TimeoutError as DeferredTimeout

__all__ = ["ProtocolError", "DecodeError", "ConfigError", "StartupError", "no_answer"]


class ProtocolError(Exception):
    """A peer sent something that breaks the protocol."""


class DecodeError(ProtocolError):
    """Bytes that do not decode as the structure they claim to be."""


class ConfigError(Exception):
    """
    The node's configuration is unusable; the message names the file and the key.
    """


class StartupError(Exception):
    """
    The node cannot start (e.g. the bridge port is taken); the message is one line for the
    operator. C{axl.tap} turns it into exit status 1 without a traceback.
    """


def no_answer(result: object, timeout: float) -> NoReturn:
    """
    The C{onTimeoutCancel} of C{Deferred.addTimeout} for calls that may report their
    cancellation as some other error (a treq request cancelled after connecting fails with
    C{ResponseNeverReceived}): whatever the cancelled call reported, the caller sees Twisted's
    C{TimeoutError} saying C{"no answer within <timeout> s"}.
    """
    raise DeferredTimeout(f"no answer within {timeout:g} s")
