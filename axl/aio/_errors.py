# -*- test-case-name: tests.test_aio -*-
"""
The exceptions of L{axl.aio}: what the bridge answers with an HTTP status, raised as types
(spec/axl-node.md sections 5.2-5.5).
"""

from __future__ import annotations

__all__ = [
    "DeliveryError",
    "MessageTooLarge",
    "NodeStopped",
    "PeerUnreachable",
    "RemoteError",
    "DeliveryTimeout",
]


class DeliveryError(Exception):
    """A message or request could not be delivered (the base of the errors below)."""


class PeerUnreachable(DeliveryError, ConnectionError):
    """No connection to the peer, or it was lost before the peer acknowledged (C{/send}'s 502)."""


class DeliveryTimeout(DeliveryError, TimeoutError):
    """
    No connection within the connect timeout, no reply within C{request_timeout_secs}, or the
    peer took no data for C{send_timeout_secs} (C{/send}'s 504 and 503).
    """


class MessageTooLarge(DeliveryError, ValueError):
    """
    The message is over a C{max_message_size}: ours (nothing was sent) or the receiver's (it
    refused the message); C{limit} is that size (C{/send}'s 413).
    """

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class RemoteError(DeliveryError):
    """
    The peer answered an MCP or A2A request with an error (e.g. C{mcp not enabled on this
    node}, C{router error: ...}), or with a reply that is not one.
    """


class NodeStopped(RuntimeError):
    """The node is not running (not started yet, or stopped)."""
