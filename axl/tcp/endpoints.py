# -*- test-case-name: tests.test_tcp_endpoints -*-
"""
Twisted endpoints for overlay TCP: L{OverlayServerEndpoint} (C{IStreamServerEndpoint}) and
L{OverlayClientEndpoint} (C{IStreamClientEndpoint}), so C{StreamServerEndpointService},
C{connectProtocol} and any Twisted protocol run over the overlay unchanged.
"""

from __future__ import annotations

from typing import NoReturn

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import (
    CannotListenError,
    ConnectError,
    ConnectionRefusedError,
    TCPTimedOutError,
)
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from zope.interface import implementer

from axl.crypto import short_key
from axl.logs import observer as log_observer
from axl.overlay_address import OverlayAddress
from axl.tcp.connection import Connection
from axl.tcp.stack import Listener, TCPStack
from axl.tcp.transport import OverlayTransport

__all__ = ["OverlayClientEndpoint", "OverlayListeningPort", "OverlayServerEndpoint"]


@implementer(IListeningPort)
class OverlayListeningPort:
    """
    A listening overlay port, as C{OverlayServerEndpoint.listen} returns it. Stopping it closes
    the listener and stops C{factory} (C{doStop}), as Twisted's own ports do.
    """

    def __init__(self, stack: TCPStack, listener: Listener,
                 factory: IProtocolFactory | None = None) -> None:
        self._stack, self._listener, self._factory = stack, listener, factory

    def startListening(self) -> None:
        """Already listening (endpoints start at once)."""

    def stopListening(self) -> Deferred[None]:
        self._listener.close()
        factory, self._factory = self._factory, None
        if factory is not None:
            factory.doStop()
        return succeed(None)

    def getHost(self) -> OverlayAddress:
        return OverlayAddress(self._stack.public_key, self._listener.port)


@implementer(IStreamServerEndpoint)
class OverlayServerEndpoint:
    """
    Listen on overlay TCP port C{port} of C{stack} (a node's L{TCPStack}: C{node.tcp}).

    @param stack: the userspace TCP stack to listen on.
    @param port: the overlay TCP port.
    """

    log = Logger(observer=log_observer)

    def __init__(self, stack: TCPStack, port: int) -> None:
        self._stack = stack
        self._port = port

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        stack = self._stack
        host = OverlayAddress(stack.public_key, self._port)

        def accept(conn: Connection) -> OverlayTransport | None:
            peer = OverlayAddress(conn.remote_key, conn.remote_port)
            proto = protocolFactory.buildProtocol(peer)
            if proto is None:
                return None
            transport = OverlayTransport(conn, host, peer)
            transport.attach_protocol(proto)
            return transport

        try:
            listener = stack.listen(self._port, accept)
        except CannotListenError as e:
            return fail(e)
        protocolFactory.doStart()
        return succeed(OverlayListeningPort(stack, listener, protocolFactory))


@implementer(IStreamClientEndpoint)
class OverlayClientEndpoint:
    """
    Connect over C{stack} (a node's L{TCPStack}: C{node.tcp}) to overlay TCP port C{port} of
    the node with full key C{peer_key}. Fails with C{TCPTimedOutError} if no handshake
    completes within C{timeout} seconds (default: the stack's C{connect_timeout}, 10 s) and
    with C{ConnectionRefusedError} on RST.

    @param stack: the userspace TCP stack to connect from.
    @param peer_key: the remote node's full 32-byte public key.
    @param port: the remote overlay TCP port.
    @param timeout: seconds to wait for the handshake, or C{None} for the stack's default.
    @raise ValueError: C{peer_key} is not 32 bytes long.
    """

    log = Logger(observer=log_observer)

    def __init__(self, stack: TCPStack, peer_key: bytes, port: int,
                 timeout: float | None = None) -> None:
        if len(peer_key) != 32:
            raise ValueError("peer_key must be a full 32-byte public key")
        self._stack = stack
        self._peer_key, self._port = peer_key, port
        self._timeout = timeout

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """
        Open the connection. The result fires with the protocol once the handshake completes;
        cancelling it (or the timeout, via C{addTimeout}) aborts the half-open connection.
        """
        stack = self._stack
        timeout = self._timeout if self._timeout is not None else stack.connect_timeout
        peer = OverlayAddress(self._peer_key, self._port)
        transport = OverlayTransport(None, OverlayAddress(stack.public_key, 0), peer)

        def cancel(d: Deferred[IProtocol]) -> None:
            # The caller cancelled, or the timeout did: abandon the handshake quietly.
            transport.on_connect = transport.on_connect_failed = None
            if transport.conn is not None:
                transport.conn.abort()

        d: Deferred[IProtocol] = Deferred(cancel)

        def connected(t: OverlayTransport) -> None:
            proto = protocolFactory.buildProtocol(peer)
            if proto is None:
                t.on_connect_failed = None
                t.abortConnection()
                d.errback(_error(ConnectError, "the factory built no protocol"))
                return
            t.attach_protocol(proto)
            d.callback(proto)

        def failed(reason: Exception) -> None:
            if isinstance(reason, (ConnectError, ConnectionRefusedError)):
                d.errback(reason)
            else:
                d.errback(_error(ConnectError, f"connecting to {short_key(self._peer_key)} port "
                                       f"{self._port} failed: {reason}"))

        def timed_out(result: object, seconds: float) -> NoReturn:
            self.log.info("overlay connect to {peer} port {port} timed out after {t} s",
                          peer=short_key(self._peer_key), port=self._port, t=seconds)
            raise _error(TCPTimedOutError, f"no answer from {short_key(self._peer_key)} port "
                                           f"{self._port} within {seconds:g} s")

        transport.on_connect, transport.on_connect_failed = connected, failed
        try:
            conn = stack.connect(self._peer_key, self._port, transport)
        except (RuntimeError, ValueError) as e:
            return fail(_error(ConnectError, str(e)))
        transport.conn = conn
        transport._host = OverlayAddress(stack.public_key, conn.local_port)
        if not d.called:
            d.addTimeout(timeout, stack.clock, onTimeoutCancel=timed_out)
        return d


def _error(cls: type[ConnectError], message: str) -> ConnectError:
    """A Twisted connect error carrying C{message}."""
    return cls(string=message)
