# -*- test-case-name: tests.test_aio -*-
"""
axl inside an asyncio program: L{Node} runs a whole node on the running loop (Twisted's asyncio
reactor), with the bridge's operations as coroutines and asyncio streams over the overlay TCP.

    async with axl.aio.Node(config) as node:
        await node.send(peer_key, b"hello")
        message = await node.recv(timeout=5)

Importing this module does not import the Twisted reactor; the first L{Node} to start installs
Twisted's asyncio reactor on the running loop (L{ReactorError} if another reactor is installed).
"""

from __future__ import annotations

from axl.aio._errors import (
    DeliveryError,
    DeliveryTimeout,
    MessageTooLarge,
    NodeStopped,
    PeerUnreachable,
    RemoteError,
)
from axl.aio._node import Message, Node, OverlayServer
from axl.aio._reactor import ReactorError

__all__ = [
    "DeliveryError",
    "DeliveryTimeout",
    "Message",
    "MessageTooLarge",
    "Node",
    "NodeStopped",
    "OverlayServer",
    "PeerUnreachable",
    "ReactorError",
    "RemoteError",
]
