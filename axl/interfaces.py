# -*- test-case-name: tests.test_interfaces -*-
"""
The boundaries between axl's layers, bottom to top::

    link (TLS/TCP peering, meta handshake, framing)      ILink, ILinkHandler
    mesh (ironwood spanning tree, lookups, routing)       IRouter
    session (ironwood end-to-end encryption + core types) ISessions
    ipv6 (ipv6rwc: address <-> key, checks, ICMPv6)       IIPv6Layer
    tcp (userspace TCP as Twisted transports/endpoints)  IAcknowledgingTransport
    streams (port-7000 messages, MCP/A2A streams)      (Twisted endpoints below it)
    bridge (the local HTTP API)
    service (wiring; the Node record)                    INode, INodeReactor

Lower layers never import upper ones (C{tests/test_import_order.py} checks it): each layer is
built with the layers below it passed to its constructor, typed by these interfaces, and the
only notifications that go up are callables given at construction (the router's delivery to
the sessions is registered once, in C{axl.service}). Pure cores take a clock (C{IReactorTime})
and no reactor.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IReactorCore, IReactorTCP, IReactorTime, IReactorUNIX
from zope.interface import Attribute, Interface

__all__ = [
    "INode",
    "INodeReactor",
    "ILink",
    "ILinkHandler",
    "IRouter",
    "ISessions",
    "IIPv6Layer",
    "IAcknowledgingTransport",
]


class INodeReactor(IReactorTCP, IReactorUNIX, IReactorTime, IReactorCore):
    """
    What a node needs of its reactor: TCP and UNIX sockets (links, the bridge), time (every
    timer) and the core (shutdown triggers). Only C{axl.service}, C{axl.tap} and C{axl.tac} are
    given one; the layers below take just the part they use.
    """


class INode(Interface):
    """
    The record of one node's parts (L{axl.node.Node}), made last by C{axl.service}: what code
    above the layers (the twistd runner, tests, admin tools) reaches them through.
    """

    config = Attribute("The frozen L{axl.config.NodeConfig}.")
    identity = Attribute("The node's L{axl.crypto.Identity}.")
    public_key = Attribute("Our 32-byte ed25519 public key.")
    clock = Attribute("The IReactorTime every timer of the node uses.")
    links = Attribute("The link layer (peering, listeners, the peer table: peers_info()).")
    router = Attribute("The router (spanning tree, lookups, forwarding: tree_info()).")
    sessions = Attribute("The session layer (ISessions).")
    ipv6 = Attribute("The IPv6 layer (IIPv6Layer).")
    tcp = Attribute("The userspace TCP stack.")
    streams = Attribute("The streams layer: sender, recv queue, stream registry.")

    def topology() -> dict:  # type: ignore[type-arg]
        """The /topology document: our_ipv6, our_public_key, peers, tree (lists, never null)."""


class ILink(Interface):
    """One link to a peer whose meta handshake has completed, as handed to the router."""

    remote_key = Attribute("The peer's 32-byte ed25519 public key (from its meta handshake).")
    priority = Attribute("Effective link priority, max(local, remote); lower is preferred.")
    order = Attribute("Global link-creation counter: lower means older.")
    inbound = Attribute("True if the peer dialled us.")
    uri = Attribute("The link's URI without query (for inbound: scheme://remote-ip:port).")

    def send_frame(frame_type: int, payload: bytes) -> None:
        """
        Send one ironwood frame (type byte + payload) on this link. Frames over the link's size
        limit are dropped (and logged) rather than sent, as Go does.
        """

    def close(reason: str) -> None:
        """Drop the link; C{reason} is logged."""


class ILinkHandler(Interface):
    """What the link layer delivers to (implemented by the ironwood router)."""

    def link_up(link: ILink) -> None:
        """A link finished its handshake and may carry frames."""

    def frame_received(link: ILink, frame_type: int, payload: bytes) -> None:
        """
        A frame of type 2..9 arrived (types 0 and 1 are handled by the link layer).

        @raise axl.errors.ProtocolError: the frame is bad; the link layer logs it and drops
            the link.
        """

    def link_down(link: ILink) -> None:
        """A link that was up is gone."""


class IRouter(Interface):
    """The network layer, as the session layer uses it."""

    public_key = Attribute("Our 32-byte key.")

    def send(dest_key: bytes, data: bytes) -> None:
        """Route C{data} (one encrypted-layer packet) to the full key C{dest_key}."""

    def send_lookup(partial_key: bytes) -> None:
        """Look up a (possibly partial) key; a path notify from its owner fires C{on_path_notify}."""


class ISessions(Interface):
    """The encrypted session layer, as the IPv6 layer uses it."""

    def send(dest_key: bytes, plaintext: bytes) -> None:
        """Encrypt C{plaintext} (session-type byte first) to C{dest_key} and send it."""


class IIPv6Layer(Interface):
    """The IPv6 carriage (ipv6rwc), as the userspace TCP uses it."""

    address = Attribute("Our 16-byte 200::/8 address.")
    mtu = Attribute("The largest IPv6 packet we send or accept (65535).")

    def send_ipv6(packet: bytes) -> None:
        """Send one whole IPv6 packet (header included) into the overlay."""

    def register_protocol(next_header: int, handler: Callable[[bytes, bytes], None]) -> None:
        """
        Deliver incoming packets whose next header is C{next_header} to
        C{handler(source_key, packet)}; C{source_key} is the sender's full key.
        """

    def register_ptb_handler(handler: Callable[[bytes, int, bytes], None]) -> None:
        """
        Call C{handler(source_key, mtu, original_prefix)} for each ICMPv6 Packet Too Big about a
        packet we sent (the TCP lowers its MSS, RFC 8201).
        """


class IAcknowledgingTransport(Interface):
    """
    A stream transport that knows what the remote end has acknowledged (the overlay TCP's
    L{axl.tcp.transport.OverlayTransport}). The streams' C{/send} uses it to answer 200 only once
    the remote TCP has acknowledged the whole message; without it, "written" counts as "sent".
    """

    def when_acknowledged() -> object:
        """
        A Deferred that fires (with None) once every byte written so far has been acknowledged
        by the remote end, and fails if the connection is lost first.
        """
