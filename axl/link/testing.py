# -*- test-case-name: tests.test_link_core -*-
"""
Test helpers for the link layer (spec/yggdrasil-wire.md section 2): a recording handler, and two
link cores connected in memory (plain or over real TLS) with C{twisted.test.iosim}.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import IOPump, connect, connectedServerAndClient, makeFakeClient, makeFakeServer

from axl.crypto import Identity
from axl.errors import ProtocolError
from axl.interfaces import ILink, ILinkHandler
from axl.link.core import LinkCore
from axl.link.endpoints import ServerTLSFactory
from axl.link.protocol import LinkProtocol
from axl.link.tls import LinkTLS

__all__ = [
    "RecordingHandler",
    "identity",
    "make_core",
    "connect_cores",
    "LinkPair",
    "MemoryNetwork",
]

_TLS_CACHE: dict[bytes, LinkTLS] = {}


def identity(n: int) -> Identity:
    """A fixed identity: seed of 32 bytes C{n}."""
    return Identity(bytes([n]) * 32)


def _tls_for(ident: Identity) -> LinkTLS:
    tls = _TLS_CACHE.get(ident.seed)
    if tls is None:
        tls = _TLS_CACHE[ident.seed] = LinkTLS(ident)
    return tls


@implementer(ILinkHandler)
class RecordingHandler:
    """Records C{("up", link)}, C{("frame", link, type, payload)}, C{("down", link)}."""

    def __init__(self, reject_types: tuple[int, ...] = ()) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.reject_types = reject_types

    def link_up(self, link: ILink) -> None:
        self.events.append(("up", link))

    def frame_received(self, link: ILink, frame_type: int, payload: bytes) -> None:
        self.events.append(("frame", link, frame_type, payload))
        if frame_type in self.reject_types:
            raise ProtocolError(f"test handler rejects type {frame_type}")

    def link_down(self, link: ILink) -> None:
        self.events.append(("down", link))

    def frames(self) -> list[tuple[int, bytes]]:
        """C{(frame_type, payload)} of each frame received, in order."""
        return [(e[2], e[3]) for e in self.events if e[0] == "frame"]

    def kinds(self) -> list[str]:
        """The kind (C{up}, C{frame}, C{down}) of each event, in order."""
        return [e[0] for e in self.events]


def make_core(
    ident: Identity, clock: Clock, handler: ILinkHandler | None = None, **kw: Any
) -> LinkCore:
    """A L{LinkCore} for C{ident} on C{clock}, outbound to C{tcp://test:1} unless C{kw} says so."""
    kw.setdefault("uri", "tcp://test:1")
    kw.setdefault("inbound", False)
    return LinkCore(
        identity=ident, clock=clock, handler=handler or RecordingHandler(), **kw
    )


class LinkPair:
    """A client and a server link core connected in memory; C{pump.flush()} moves bytes."""

    def __init__(self, client: LinkCore, server: LinkCore, pump: IOPump,
                 client_proto: Protocol, server_proto: Protocol) -> None:  # fmt: skip
        self.client, self.server, self.pump = client, server, pump
        self.client_proto, self.server_proto = client_proto, server_proto


def connect_cores(
    client: LinkCore,
    server: LinkCore,
    clock: Clock,
    *,
    client_identity: Identity | None = None,
    server_identity: Identity | None = None,
    tls: bool = True,
    greet: bool = True,
) -> LinkPair:
    """
    Connect two cores through L{LinkProtocol}s, over real TLS (in-memory BIOs) by default.
    The identities only choose the TLS certificates (any will do; nothing is verified).
    """
    client_proto = LinkProtocol(client)
    server_proto = LinkProtocol(server)
    if tls:
        ctls = _tls_for(client_identity or identity(201))
        stls = _tls_for(server_identity or identity(202))
        cfactory = TLSMemoryBIOFactory(
            ctls.client_creator("peer.example"), True,
            Factory.forProtocol(lambda: client_proto), clock=clock,
        )  # fmt: skip
        sfactory = TLSMemoryBIOFactory(
            stls.server_creator(), False, Factory.forProtocol(lambda: server_proto), clock=clock
        )
        _, _, pump = connectedServerAndClient(
            lambda: sfactory.buildProtocol(None),
            lambda: cfactory.buildProtocol(None),
            clock=clock,
            greet=greet,
        )
    else:
        _, _, pump = connectedServerAndClient(
            lambda: server_proto, lambda: client_proto, clock=clock, greet=greet
        )
    return LinkPair(client, server, pump, client_proto, server_proto)


@implementer(IListeningPort)
class _MemoryPort:
    def __init__(self, net: MemoryNetwork, where: tuple[str, int]) -> None:
        self._net, self._where = net, where

    def startListening(self) -> None:
        pass

    def stopListening(self) -> Deferred[None]:
        self._net.listeners.pop(self._where, None)
        return succeed(None)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", *self._where)


class MemoryNetwork:
    """
    In-memory stand-in for the network, for the peer manager: C{listen_endpoint(uri)} and
    C{dial(uri)} make endpoints that connect through C{iosim} pumps (optionally over real TLS).
    Nothing moves until L{flush}. Dialling an address nobody listens on fails (refused).
    """

    def __init__(self, clock: Clock, tls: bool = True) -> None:
        self.clock = clock
        self.tls = tls
        self.listeners: dict[tuple[str, int], tuple[IProtocolFactory, LinkTLS | None]] = {}
        self.pumps: list[IOPump] = []
        self.dials: list[tuple[str, int]] = []
        self._next_port = 40000

    def listen_endpoint(self, ident: Identity) -> Any:
        """C{listen_endpoint} for a manager whose TLS identity is C{ident}."""
        net = self

        @implementer(IStreamServerEndpoint)
        class _Server:
            def __init__(self, uri: Any) -> None:
                self.uri = uri

            def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
                where = (self.uri.host, self.uri.port)
                net.listeners[where] = (factory, _tls_for(ident) if net.tls else None)
                return succeed(_MemoryPort(net, where))

        return _Server

    def dial(self, ident: Identity) -> Any:
        """C{dial} for a manager whose TLS identity is C{ident}."""
        net = self

        @implementer(IStreamClientEndpoint)
        class _Client:
            def __init__(self, uri: Any) -> None:
                self.uri = uri

            def connect(self, factory: IProtocolFactory) -> Deferred[Any]:
                where = (self.uri.host, self.uri.port)
                net.dials.append(where)
                if where not in net.listeners:
                    return fail(ConnectionRefusedError(f"{where[0]}:{where[1]}"))
                sfactory, stls = net.listeners[where]
                net._next_port += 1
                src = IPv4Address("TCP", "10.0.0.1", net._next_port)
                if stls is not None:
                    sfactory = ServerTLSFactory(stls.server_creator(), False, sfactory,
                                                clock=net.clock)  # fmt: skip
                    cfactory: IProtocolFactory = TLSMemoryBIOFactory(
                        _tls_for(ident).client_creator(None), True, factory, clock=net.clock
                    )
                else:
                    cfactory = factory
                client = cfactory.buildProtocol(IPv4Address("TCP", *where))
                server = sfactory.buildProtocol(src)
                if server is None:
                    return fail(ConnectionRefusedError("refused by the listener"))
                pump = connect(server, makeFakeServer(server), client, makeFakeClient(client),
                               greet=False, clock=net.clock)  # fmt: skip
                net.pumps.append(pump)
                return succeed(getattr(client, "wrappedProtocol", client))

        return _Client

    def flush(self) -> None:
        """Move bytes on every connection until nothing moves."""
        for _ in range(100):
            moved = False
            for pump in list(self.pumps):
                moved = pump.flush() or moved
            self.pumps = [p for p in self.pumps if not (p.clientIO.disconnected
                                                         and p.serverIO.disconnected)]  # fmt: skip
            if not moved:
                return
        raise AssertionError("the memory network does not settle")

    def kill_all(self) -> None:
        """Cut every connection abruptly (both ends see connection lost)."""
        for pump in self.pumps:
            pump.clientIO.loseConnection()
        self.flush()
