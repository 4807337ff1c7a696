# -*- test-case-name: tests.test_streams_sender -*-
"""
Why a message or request could not be delivered (spec/axl-node.md sections 5.2, 5.4, 5.5).

These are domain errors: the streams layer knows nothing of HTTP. The bridge maps each kind to
its status in one place (L{axl.bridge.app.Bridge}); the message is one line for the caller.
"""

from __future__ import annotations

from twisted.python.failure import Failure

__all__ = [
    "failure_reason",
    "DeliveryError",
    "MessageRefused",
    "PeerBusy",
    "PeerTimedOut",
    "PeerUnreachable",
    "RemoteError",
    "SendTimedOut",
]


class DeliveryError(Exception):
    """
    A message could not be delivered; C{message} says why, in one line.

    @ivar message: the reason.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PeerUnreachable(DeliveryError):
    """
    The peer could not be reached (no route, refused, connection failed), or the connection was
    lost before the message was acknowledged.
    """


class PeerTimedOut(DeliveryError):
    """No connection to the peer, or no reply from it, within the time allowed."""


class SendTimedOut(DeliveryError):
    """
    The peer was connected but took no more data, or did not acknowledge the message, within
    C{send_timeout_secs} (its C{/recv} queue is full).
    """


class MessageRefused(DeliveryError):
    """
    The receiver refused the message as larger than its C{max_message_size}.

    @ivar limit: the receiver's C{max_message_size}, in bytes.
    """

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class PeerBusy(DeliveryError):
    """
    The receiver refused to take the message now (e.g. its connection limit for us is reached);
    it was not queued there.
    """


class RemoteError(DeliveryError):
    """The peer was reached but did not answer a request properly (bad frames, no answer)."""


def failure_reason(failure: Failure) -> str:
    """The message of C{failure} for a one-line reason, or its type's name when it has none."""
    text = failure.getErrorMessage()
    return text if text else getattr(failure.type, "__name__", "error")
