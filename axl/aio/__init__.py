# -*- test-case-name: tests.test_aio -*-
"""
axl inside an asyncio program: L{Node} runs a whole node on the running loop (Twisted's asyncio
reactor), with the bridge's operations as coroutines and asyncio streams over the overlay TCP::

    async with axl.aio.Node(config) as node:
        await node.send(peer_key, b"hello")
        message = await node.recv(timeout=5)

Failures are the streams' typed errors (L{axl.streams.errors}, re-exported here), the same
kinds the bridge answers with HTTP statuses. Importing this module does not import the Twisted
reactor; the first L{Node} to start installs Twisted's asyncio reactor on the running loop
(L{ReactorError} if another reactor is installed).
"""

from __future__ import annotations

from axl.aio._node import McpSession, Message, Node, NodeStopped, OverlayServer
from axl.aio._reactor import ReactorError
from axl.streams.errors import (
    DeliveryError,
    MessageRefused,
    PeerTimedOut,
    PeerUnreachable,
    RemoteError,
    SendTimedOut,
)

__all__ = [
    "DeliveryError",
    "McpSession",
    "Message",
    "MessageRefused",
    "Node",
    "NodeStopped",
    "OverlayServer",
    "PeerTimedOut",
    "PeerUnreachable",
    "ReactorError",
    "RemoteError",
    "SendTimedOut",
]
