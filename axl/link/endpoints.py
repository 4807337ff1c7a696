# -*- test-case-name: tests.test_link_peers -*-
"""
Peer and listen URIs to Twisted endpoints (spec/yggdrasil-wire.md sections 2.1 and 2.3,
spec/yggdrasil-extras.md sections 2-5).

C{tcp://} dials with C{HostnameEndpoint} (IP literals and names, every resolved address tried,
5 s timeout) and listens with a TCP4/TCP6 server endpoint; C{tls://} wraps those in TLS with the
node's certificate; C{unix://} uses UNIX sockets; C{socks://} and C{sockstls://} dial through a
SOCKS5 proxy (L{axl.link.socks}); C{ws://} and C{wss://} carry the link in WebSocket messages
(L{axl.link.ws}); C{quic://} carries it on one QUIC stream (L{axl.link.quic}).
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP6ClientEndpoint,
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

from axl.link.socks import SocksClientEndpoint
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
        return UNIXClientEndpoint(reactor, uri.path, timeout=DIAL_TIMEOUT)
    if uri.scheme == "quic":
        from axl.link.quic import QuicClientEndpoint

        return QuicClientEndpoint(reactor, uri.host, uri.port, tls)
    if "%" in uri.host:
        # A zoned link-local literal (multicast peers): HostnameEndpoint's resolution drops
        # the zone, TCP6ClientEndpoint keeps it.
        endpoint = TCP6ClientEndpoint(reactor, uri.host, uri.port, timeout=DIAL_TIMEOUT)
    else:
        endpoint = HostnameEndpoint(reactor, uri.host, uri.port, timeout=DIAL_TIMEOUT)
    if uri.scheme == "tls":
        sni = uri.sni if uri.sni is not None else sni_for_host(uri.host)
        return wrapClientTLS(tls.client_creator(sni), endpoint)
    if uri.scheme in ("socks", "sockstls"):
        endpoint = SocksClientEndpoint(
            endpoint, reactor, uri.target_host, uri.target_port, uri.proxy_user, uri.proxy_password
        )
        if uri.scheme == "sockstls":
            sni = uri.sni if uri.sni is not None else sni_for_host(uri.host)
            endpoint = wrapClientTLS(tls.client_creator(sni, allow_tls12=True), endpoint)
        return endpoint
    if uri.scheme in ("ws", "wss"):
        from axl.link.ws import WebSocketClientEndpoint

        if uri.scheme == "wss":
            creator = tls.client_creator(sni_for_host(uri.host), allow_tls12=True)
            endpoint = wrapClientTLS(creator, endpoint)
        return WebSocketClientEndpoint(endpoint, uri)
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
    if uri.scheme == "quic":
        from axl.link.quic import QuicServerEndpoint

        return QuicServerEndpoint(reactor, uri.port, uri.host, tls)
    if uri.scheme == "unix":
        endpoint = UNIXServerEndpoint(reactor, uri.path)
    elif uri.is_ipv6:
        endpoint = TCP6ServerEndpoint(reactor, uri.port, interface=uri.host)
    else:
        endpoint = TCP4ServerEndpoint(reactor, uri.port, interface=uri.host)
    if uri.scheme == "tls":
        return TLSServerEndpoint(endpoint, tls.server_creator(), clock=reactor)
    if uri.scheme == "ws":
        from axl.link.ws import WebSocketServerEndpoint

        return WebSocketServerEndpoint(endpoint, uri)
    return endpoint
