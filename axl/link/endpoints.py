# -*- test-case-name: tests.test_link_peers -*-
"""
Peer and listen URIs to Twisted endpoints (spec/yggdrasil-wire.md sections 2.1 and 2.3).

C{tcp://} dials with C{HostnameEndpoint} (IP literals and names, every resolved address tried,
5 s timeout) and listens with a TCP4/TCP6 server endpoint; C{tls://} wraps those in TLS with the
node's certificate; C{unix://} uses UNIX sockets.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ServerEndpoint,
    TCP6ServerEndpoint,
    UNIXClientEndpoint,
    UNIXServerEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import (
    IListeningPort,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.protocols.tls import TLSMemoryBIOFactory

from axl.link.tls import LinkTLS, sni_for_host
from axl.link.uri import PeerURI

__all__ = [
    "DIAL_TIMEOUT",
    "client_endpoint",
    "server_endpoint",
    "ServerTLSFactory",
    "TLSServerEndpoint",
]

DIAL_TIMEOUT = 5.0


def client_endpoint(reactor: Any, uri: PeerURI, tls: LinkTLS) -> IStreamClientEndpoint:
    """The endpoint that dials C{uri} (a parsed C{Peers} entry)."""
    endpoint: IStreamClientEndpoint
    if uri.scheme == "unix":
        endpoint = UNIXClientEndpoint(reactor, uri.path, timeout=DIAL_TIMEOUT)
    else:
        endpoint = HostnameEndpoint(reactor, uri.host, uri.port, timeout=DIAL_TIMEOUT)
    if uri.scheme == "tls":
        sni = uri.sni if uri.sni is not None else sni_for_host(uri.host)
        return wrapClientTLS(tls.client_creator(sni), endpoint)
    return endpoint


class ServerTLSFactory(TLSMemoryBIOFactory):
    """
    Server-side TLS wrapping that honours a refusal: when the wrapped factory builds no protocol
    (returns None), no TLS protocol is built either and the connection is closed at once.
    """

    def buildProtocol(self, addr: Any) -> Any:
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        return self.protocol(self, wrapped)


@implementer(IStreamServerEndpoint)
class TLSServerEndpoint:
    """Wraps a stream server endpoint so that every accepted connection speaks TLS first."""

    def __init__(
        self,
        wrapped: IStreamServerEndpoint,
        creator: IOpenSSLServerConnectionCreator,
        clock: IReactorTime | None = None,
    ) -> None:
        self._wrapped = wrapped
        self._creator = creator
        self._clock = clock

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        factory = ServerTLSFactory(self._creator, False, protocolFactory, clock=self._clock)
        return self._wrapped.listen(factory)


def server_endpoint(reactor: Any, uri: PeerURI, tls: LinkTLS) -> IStreamServerEndpoint:
    """The endpoint that listens as C{uri} says (a parsed C{Listen} entry)."""
    endpoint: IStreamServerEndpoint
    if uri.scheme == "unix":
        endpoint = UNIXServerEndpoint(reactor, uri.path)
    elif uri.is_ipv6:
        endpoint = TCP6ServerEndpoint(reactor, uri.port, interface=uri.host)
    else:
        endpoint = TCP4ServerEndpoint(reactor, uri.port, interface=uri.host)
    if uri.scheme == "tls":
        return TLSServerEndpoint(endpoint, tls.server_creator(), clock=reactor)
    return endpoint
