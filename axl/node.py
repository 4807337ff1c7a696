# -*- test-case-name: tests.test_service -*-
"""
L{Node}: the record of one running node's parts, made last by L{axl.service.make_node_service}
once every layer is built (each from the layers below it).

It is what code above the layers (the twistd runner, tests, an admin socket, metrics, an asyncio
facade) is given to reach them; the layers themselves never see it.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from axl.bridge.app import Bridge
from axl.bridge.topology import topology_document
from axl.config import NodeConfig
from axl.crypto.keys import Identity
from axl.forward.service import ForwardsService
from axl.interfaces import INode
from axl.ipv6.rwc import IPv6Layer
from axl.ipv6.stack import Overlay
from axl.link.peers import PeerManager
from axl.mesh.router import Router
from axl.session.manager import SessionManager
from axl.streams.recv_queue import RecvQueue
from axl.streams.sender import MessageSender
from axl.streams.service import StreamsLayer
from axl.tcp.stack import TCPStack

__all__ = ["Node"]


@implementer(INode)
@dataclass(frozen=True, eq=False)
class Node:
    """
    One node's parts, bottom to top.

    @ivar config: the node's L{NodeConfig}.
    @ivar identity: the node's L{Identity} (key and address).
    @ivar clock: the clock every timer of the node uses (the reactor).
    @ivar links: the link layer: peering, listeners and the peer table (C{peers_info()}).
    @ivar router: the ironwood router: spanning tree, lookups, forwarding (C{tree_info()}).
    @ivar overlay: the session, proto and IPv6 layers built together over the router.
    @ivar tcp: the userspace TCP stack; L{axl.tcp.endpoints} make Twisted endpoints on it.
    @ivar streams: the port-7000 message layer: C{sender}, C{queue} (the C{/recv} queue),
        C{registry} of streams, listener C{factory}.
    @ivar bridge: the local HTTP API (every route; C{bridge.app.resource()} is served).
    @ivar forwards: the SOCKS5 proxy and port forwards (C{forwards}, C{ports}, C{udp}), (idle
        when none is configured); None only for a Node put together by hand.
    """

    config: NodeConfig
    identity: Identity
    clock: IReactorTime
    links: PeerManager
    router: Router
    overlay: Overlay
    tcp: TCPStack
    streams: StreamsLayer
    bridge: Bridge
    forwards: ForwardsService | None = None

    def __repr__(self) -> str:
        return f"<Node {self.identity!r}>"

    @property
    def public_key(self) -> bytes:
        """Our 32-byte ed25519 public key."""
        return self.identity.public_key

    @property
    def sessions(self) -> SessionManager:
        """The end-to-end encrypted sessions (C{overlay.sessions})."""
        return self.overlay.sessions

    @property
    def ipv6(self) -> IPv6Layer:
        """The IPv6 carriage over the sessions (C{overlay.ipv6})."""
        return self.overlay.ipv6

    @property
    def sender(self) -> MessageSender:
        """Sends messages and requests to other nodes (C{streams.sender})."""
        return self.streams.sender

    @property
    def recv_queue(self) -> RecvQueue:
        """The C{/recv} queue (C{streams.queue})."""
        return self.streams.queue

    def topology(self) -> dict[str, object]:
        """The C{/topology} document (L{topology_document})."""
        return topology_document(self.identity, self.links, self.router)
