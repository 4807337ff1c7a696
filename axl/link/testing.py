# -*- test-case-name: tests.test_link_core -*-
"""
Test helpers for the link layer: a recording handler, and two link cores connected in memory
(plain or over real TLS) with C{twisted.test.iosim}.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import IOPump, connectedServerAndClient

from axl.crypto import Identity
from axl.errors import ProtocolError
from axl.interfaces import ILink, ILinkHandler
from axl.link.core import LinkCore
from axl.link.protocol import LinkProtocol
from axl.link.tls import LinkTLS

__all__ = ["RecordingHandler", "identity", "make_core", "connect_cores", "LinkPair"]

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
        return [(e[2], e[3]) for e in self.events if e[0] == "frame"]

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]


def make_core(
    ident: Identity, clock: Clock, handler: ILinkHandler | None = None, **kw: Any
) -> LinkCore:
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
        c, s, pump = connectedServerAndClient(
            lambda: sfactory.buildProtocol(None),
            lambda: cfactory.buildProtocol(None),
            clock=clock,
            greet=greet,
        )
    else:
        c, s, pump = connectedServerAndClient(
            lambda: server_proto, lambda: client_proto, clock=clock, greet=greet
        )
    return LinkPair(client, server, pump, client_proto, server_proto)
