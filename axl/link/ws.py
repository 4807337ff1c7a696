# -*- test-case-name: tests.test_link_ws -*-
"""
Peering over WebSocket: C{ws://} (listen and dial) and C{wss://} (dial only), with autobahn's
Twisted API (spec/yggdrasil-extras.md section 4).

The link's byte stream travels in binary messages of any size: every link write is one message,
and received payloads are concatenated, whatever their boundaries. Subprotocol C{ygg-ws}; a
client that does not offer it gets the upgrade and then Close 1008. C{GET /health} and
C{/healthz} answer 200 C{OK}; any other path upgrades. An C{Origin} header, when present, must
match C{Host} or one of the listener's C{origin=} patterns (else 403). A text message ends the
link with Close 1003; a link that ends closes with 1000.

Autobahn parses and frames; L{WebSocketLinkTransport} makes an open WebSocket look like a
stream transport to the unchanged L{axl.link.protocol.LinkProtocol}.
"""

from __future__ import annotations

import fnmatch
from typing import Any, cast
from urllib.parse import urlsplit

from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from zope.interface import implementer

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IConsumer,
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
    ITransport,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from axl.link.framing import PEER_MAX_MESSAGE_SIZE
from axl.link.uri import PeerURI
from axl.logs import observer as log_observer

__all__ = [
    "SUBPROTOCOL",
    "MAX_WS_MESSAGE",
    "HANDSHAKE_TIMEOUT",
    "MAX_WS_CONNECTIONS",
    "WebSocketLinkTransport",
    "WebSocketClientEndpoint",
    "WebSocketServerEndpoint",
    "origin_allowed",
]

SUBPROTOCOL = "ygg-ws"
# A received message (or frame) larger than this ends the link: a link write is at most one
# ironwood frame (or the meta), far below it. Go has no limit; we need one.
MAX_WS_MESSAGE = 4 * PEER_MAX_MESSAGE_SIZE
# WebSocket connections one listener holds at once (upgrading or open); more are refused (503).
MAX_WS_CONNECTIONS = 512
# The HTTP upgrade must be done within this long (Go's HTTP server: 10 s read timeout).
HANDSHAKE_TIMEOUT = 10.0
_CLOSE_NO_SUBPROTOCOL = "client must speak the ygg-ws subprotocol"
_CLOSE_TEXT = "unexpected frame type read (expected MessageBinary): MessageText"
_HEALTH = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nOK"
)


def origin_allowed(origin: str, host: str, patterns: tuple[str, ...]) -> bool:
    """
    Go's check (coder/websocket): the Origin's C{host[:port]} equals C{Host} (case-insensitive),
    or matches one of C{patterns} (globs; against C{scheme://host[:port]} when the pattern has
    C{://}). C{origin=*} allows everything.
    """
    parts = urlsplit(origin)
    netloc = parts.netloc.lower()
    if netloc and netloc == host.lower():
        return True
    for pattern in patterns:
        target = f"{parts.scheme}://{netloc}" if "://" in pattern else netloc
        if fnmatch.fnmatchcase(target, pattern.lower()):
            return True
    return False


@implementer(ITransport, IConsumer, IPushProducer)
class WebSocketLinkTransport:
    """
    The stream-transport face of an open WebSocket: writes become binary messages. Producers
    register with the underlying TCP or TLS transport, and pausing this transport pauses
    reading from it (the link's flow control, issue 12).
    """

    def __init__(self, ws: Any) -> None:
        self._ws = ws

    def write(self, data: bytes) -> None:
        if data:
            self._ws.sendMessage(bytes(data), isBinary=True)

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self._ws.sendClose(1000)

    def abortConnection(self) -> None:
        """Send a close frame and drop the connection at once."""
        self._ws.sendClose(1000)
        self._ws.dropConnection(abort=True)

    def getPeer(self) -> Any:
        return self._ws.transport.getPeer()

    def getHost(self) -> Any:
        return self._ws.transport.getHost()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register C{producer} with the underlying TCP or TLS transport."""
        self._ws.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Unregister the producer from the underlying transport."""
        self._ws.transport.unregisterProducer()

    def pauseProducing(self) -> None:
        """Stop reading from the underlying transport."""
        self._ws.transport.pauseProducing()

    def resumeProducing(self) -> None:
        """Read from the underlying transport again."""
        self._ws.transport.resumeProducing()

    def stopProducing(self) -> None:
        """Drop the connection."""
        self.abortConnection()


class _LinkOverWebSocket:
    """What the client and server protocols share: from the open WebSocket to the link."""

    log = Logger(observer=log_observer)
    factory: Any
    link: IProtocol | None = None
    _opened: Deferred[IProtocol] | None = None

    def _no_delay(self) -> None:
        """
        Turn Nagle off. autobahn's own attempt runs before the protocol has copied its
        C{tcpNoDelay} option from the factory, so it silently does nothing: without this each
        small link write waits for the previous one's ACK (3x slower bulk transfer).
        """
        transport = getattr(self, "transport", None)
        try:
            transport.setTcpNoDelay(True)  # type: ignore[union-attr]
        except Exception:  # not TCP (in-memory transports in tests)
            pass

    def _start_link(self) -> None:
        ws: Any = self
        link = self.factory.link_factory.buildProtocol(ws.transport.getPeer())
        if link is None:
            ws.sendClose(1000)
            self._open_failed("the link was refused")
            return
        self.link = link
        link.makeConnection(WebSocketLinkTransport(ws))
        opened, self._opened = self._opened, None
        if opened is not None:
            opened.callback(link)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        ws: Any = self
        if not isBinary:
            self.log.warn("dropping ws link from {peer}: it sent a text message", peer=ws.peer)
            ws.sendCloseFrame(code=1003, reasonUtf8=_CLOSE_TEXT.encode(), isReply=False)
            return
        if self.link is not None:
            self.link.dataReceived(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.link is not None:
            link, self.link = self.link, None
            if code in (1000, 1001):
                link.connectionLost(Failure(ConnectionDone("websocket closed")))
            else:
                link.connectionLost(Failure(ConnectionLost(
                    f"websocket closed with code {code}" + (f": {reason}" if reason else ""))))  # fmt: skip
        else:
            self._open_failed(f"websocket closed before opening (code {code}, {reason or 'no reason'})")

    def _open_failed(self, why: str) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            opened.errback(Failure(ConnectionLost(why)))


class _ServerProtocol(_LinkOverWebSocket, WebSocketServerProtocol):  # type: ignore[misc]
    _speaks_ygg = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self._no_delay()

    def processHandshake(self) -> None:
        end = self.data.find(b"\r\n\r\n")
        if end >= 0:
            head = self.data[:end].split(b"\r\n")
            words = head[0].split(b" ")
            upgrade = any(line.lower().startswith(b"upgrade:") for line in head[1:])
            if len(words) >= 2 and words[0] in (b"GET", b"HEAD") and not upgrade:
                if words[1].split(b"?", 1)[0] in (b"/health", b"/healthz"):
                    self.sendData(_HEALTH if words[0] == b"GET" else _HEALTH[:-2])
                    self.dropConnection(abort=False)
                    return
        super().processHandshake()

    def onConnect(self, request: ConnectionRequest) -> str | None:
        origin = request.headers.get("origin")
        if origin is not None:
            if not origin_allowed(origin, request.host, self.factory.origins):
                raise ConnectionDeny(403, "origin not allowed")
        if SUBPROTOCOL in request.protocols:
            self._speaks_ygg = True
            return SUBPROTOCOL
        return None

    def onOpen(self) -> None:
        if not self._speaks_ygg:
            # autobahn refuses codes other than 1000/3000-4999 in sendClose; Go sends 1008 here.
            self.sendCloseFrame(code=1008, reasonUtf8=_CLOSE_NO_SUBPROTOCOL.encode(), isReply=False)
            return
        self._start_link()


class _ClientProtocol(_LinkOverWebSocket, WebSocketClientProtocol):  # type: ignore[misc]
    def connectionMade(self) -> None:
        super().connectionMade()
        self._no_delay()

    def onOpen(self) -> None:
        self._start_link()


class _ServerFactory(WebSocketServerFactory):
    protocol = _ServerProtocol

    def __init__(self, link_factory: IProtocolFactory, origins: tuple[str, ...]) -> None:
        super().__init__(server="axl")  # type: ignore[no-untyped-call]
        self.link_factory = link_factory
        self.origins = origins


class _ClientFactory(WebSocketClientFactory):
    protocol = _ClientProtocol

    def __init__(self, url: str, link_factory: IProtocolFactory) -> None:
        super().__init__(url, protocols=[SUBPROTOCOL])  # type: ignore[no-untyped-call]
        self.link_factory = link_factory
        self.opened: Deferred[IProtocol] | None = None
        self.built: list[_ClientProtocol] = []

    def buildProtocol(self, addr: Any) -> _ClientProtocol:
        proto = cast(_ClientProtocol, super().buildProtocol(addr))
        proto._opened, self.opened = self.opened, None
        self.built.append(proto)
        return proto


def _limits(factory: Any, handshake_timeout: float) -> None:
    """Message size bounds and timeouts, the same on both sides."""
    factory.setProtocolOptions(
        maxFramePayloadSize=MAX_WS_MESSAGE,
        maxMessagePayloadSize=MAX_WS_MESSAGE,
        openHandshakeTimeout=handshake_timeout,
        closeHandshakeTimeout=1 if handshake_timeout else 0,
        autoFragmentSize=0,
        failByDrop=False,
    )


@implementer(IStreamServerEndpoint)
class WebSocketServerEndpoint:
    """
    Listens on C{wrapped} (TCP) and speaks the WebSocket upgrade on every connection; the link
    factory given to L{listen} builds a link for each opened WebSocket.

    @param handshake_timeout: seconds allowed for the upgrade (0: none; for in-memory tests,
        since autobahn's timers run on the global reactor).
    """

    def __init__(
        self, wrapped: IStreamServerEndpoint, uri: PeerURI, handshake_timeout: float = HANDSHAKE_TIMEOUT
    ) -> None:
        self._wrapped, self._uri, self._timeout = wrapped, uri, handshake_timeout

    def factory_for(self, protocolFactory: IProtocolFactory) -> _ServerFactory:
        """The autobahn factory that hands opened WebSockets to C{protocolFactory}."""
        factory = _ServerFactory(protocolFactory, self._uri.origins)
        factory.setProtocolOptions(  # type: ignore[no-untyped-call]
            webStatus=False, perMessageCompressionAccept=lambda offers: None,
            maxConnections=MAX_WS_CONNECTIONS,
        )
        _limits(factory, self._timeout)
        return factory

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        return self._wrapped.listen(self.factory_for(protocolFactory))


@implementer(IStreamClientEndpoint)
class WebSocketClientEndpoint:
    """
    Dials C{wrapped} (TCP, or TLS for wss), sends the upgrade for the URI's path and query with
    subprotocol C{ygg-ws}, and fires with the link protocol once the WebSocket is open.
    """

    def __init__(
        self, wrapped: IStreamClientEndpoint, uri: PeerURI, handshake_timeout: float = HANDSHAKE_TIMEOUT
    ) -> None:
        self._wrapped, self._uri, self._timeout = wrapped, uri, handshake_timeout

    def factory_for(self, protocolFactory: IProtocolFactory) -> _ClientFactory:
        """The autobahn factory whose protocols hand their opened WebSocket to C{protocolFactory}."""
        uri = self._uri
        host = f"[{uri.host}]" if ":" in uri.host else uri.host
        url = f"{uri.scheme}://{host}:{uri.port}{uri.path or '/'}"
        if uri.query:
            url += "?" + uri.query
        factory = _ClientFactory(url, protocolFactory)
        _limits(factory, self._timeout)
        return factory

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:
        factory = self.factory_for(protocolFactory)

        def cancel(d: Deferred[IProtocol]) -> None:
            for proto in factory.built:
                proto._opened = None
                proto.dropConnection(abort=True)

        opened: Deferred[IProtocol] = Deferred(cancel)
        factory.opened = opened
        d = self._wrapped.connect(factory)

        def connected(_: object) -> Deferred[IProtocol]:
            return opened

        return d.addCallback(connected)
