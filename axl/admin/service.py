# -*- test-case-name: tests.test_admin_service -*-
"""
The admin socket's Twisted side (spec/yggdrasil-extras.md sections 1.1-1.2): L{AdminProtocol}
moves bytes between a connection and the sans-IO L{AdminDecoder} / L{AdminHandler};
L{AdminListenService} binds C{AdminListen} (a 0660 UNIX socket, replacing a stale one but never
a live one, or TCP) and removes the socket file on stop.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
from collections import deque
from typing import Any, Final

from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IPushProducer,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from axl.admin.codec import FIND_ERROR, AdminDecoder, RequestTooLarge
from axl.admin.commands import AdminHandler
from axl.admin.address import AdminAddress
from axl.errors import StartupError
from axl.listening import ListeningService, tcp_server_endpoint
from axl.logs import observer as log_observer

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_QUEUED_REQUESTS",
    "AdminFactory",
    "AdminListenService",
    "AdminProtocol",
]

#: Requests decoded but not yet answered on one connection; past this the connection stops
#: reading until the queue drains (pipelining clients are slowed, never dropped).
MAX_QUEUED_REQUESTS: Final = 64
#: Admin connections open at once; a connection beyond this is closed at once (and logged).
MAX_CONNECTIONS: Final = 64


@implementer(IHalfCloseableProtocol, IPushProducer)
class AdminProtocol(Protocol):
    """
    One admin connection: requests are answered strictly in order, one at a time; without
    C{keepalive} the connection closes after the first answer; on a keepalive connection the
    end of the client's stream gets one more C{failed to find request} envelope, as Go sends.
    """

    log = Logger(observer=log_observer)

    def __init__(self, handler: AdminHandler) -> None:
        self._handler = handler
        self._decoder = AdminDecoder()
        self._queue: deque[Any] = deque()
        self._busy = False
        self._done = False
        self._paused_writes = False
        self._paused_reads = False

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.registerProducer(self, True)  # type: ignore[attr-defined]
        if isinstance(self.factory, AdminFactory):
            self.factory.opened(self)

    def dataReceived(self, data: bytes) -> None:
        if self._done:
            return
        try:
            self._queue.extend(self._decoder.feed(data))
        except RequestTooLarge as e:
            self.log.warn("admin client {peer}: {err}", peer=self._peer(), err=e)
            self._queue.append(FIND_ERROR)
        self._pump()

    def readConnectionLost(self) -> None:
        if not self._done:
            self._queue.extend(self._decoder.eof())
            self._pump()

    def writeConnectionLost(self) -> None:
        self._done = True
        self._queue.clear()

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        self._done = True
        self._queue.clear()
        if isinstance(self.factory, AdminFactory):
            self.factory.closed(self)

    def _peer(self) -> object:
        return self.transport.getPeer() if self.transport is not None else None

    # -- flow control (IPushProducer: the transport's write buffer) ---------------------------

    def pauseProducing(self) -> None:
        self._paused_writes = True

    def resumeProducing(self) -> None:
        self._paused_writes = False
        self._pump()

    def stopProducing(self) -> None:
        self._done = True
        self._queue.clear()

    # -- serving --------------------------------------------------------------------------

    def _pump(self) -> None:
        transport = self.transport
        while not (self._busy or self._done or self._paused_writes) and self._queue:
            value = self._queue.popleft()
            self._busy = True
            self._handler.answer(value).addCallback(self._answered)
        if transport is None or self._done:
            return
        full = len(self._queue) >= MAX_QUEUED_REQUESTS
        if full and not self._paused_reads:
            self._paused_reads = True
            transport.pauseProducing()  # type: ignore[attr-defined]
        elif not full and self._paused_reads:
            self._paused_reads = False
            transport.resumeProducing()  # type: ignore[attr-defined]

    def _answered(self, result: tuple[bytes, bool]) -> None:
        envelope, keep = result
        self._busy = False
        if self._done or self.transport is None:
            return
        self.transport.write(envelope)
        if not keep:
            self._done = True
            self._queue.clear()
            self.transport.loseConnection()
            return
        self._pump()


class AdminFactory(Factory):
    """
    Makes an L{AdminProtocol} per connection, all sharing one L{AdminHandler}; at most
    C{max_connections} are open at once (more are refused: closed without an answer).
    """

    noisy = False
    log = Logger(observer=log_observer)

    def __init__(self, handler: AdminHandler, max_connections: int = MAX_CONNECTIONS) -> None:
        self.handler = handler
        self.max_connections = max_connections
        self.open: set[AdminProtocol] = set()
        self.refused = 0

    def buildProtocol(self, addr: Any) -> AdminProtocol | None:
        if len(self.open) >= self.max_connections:
            self.refused += 1
            if self.refused & (self.refused - 1) == 0:  # 1st, 2nd, 4th, 8th, ...: rate-limited
                self.log.warn("refused an admin connection: {n} are open ({refused} refused so far)",
                              n=len(self.open), refused=self.refused)  # fmt: skip
            return None
        protocol = AdminProtocol(self.handler)
        protocol.factory = self
        return protocol

    def opened(self, protocol: AdminProtocol) -> None:
        """A connection of ours started (it counts towards the limit)."""
        self.open.add(protocol)

    def closed(self, protocol: AdminProtocol) -> None:
        """A connection of ours ended."""
        self.open.discard(protocol)


# ---------------------------------------------------------------------------------------------
# AdminListen


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _socket_in_use(path: str) -> bool:
    """Whether a live server answers on the UNIX socket C{path} (Go dials it for 2 s)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except socket.timeout:
        return True
    except OSError:
        return False
    finally:
        probe.close()
    return True


class AdminListenService(ListeningService):
    """
    Binds the admin socket when started (L{axl.listening.ListeningService}: a failure stops the
    node's start with L{StartupError}). A UNIX socket is created mode 0660; a stale file left by
    a crashed run is replaced, a socket some process still serves is not (the start fails). The
    file is removed on stop.
    """

    name = "axl-admin"
    log = Logger(observer=log_observer)

    def __init__(
        self, reactor: Any, address: AdminAddress, factory: AdminFactory, hint: str = ""
    ) -> None:
        super().__init__(
            _endpoint(reactor, address),
            factory,
            f"AdminListen {address.text}",
            hint,
            lambda port: self.log.info("admin socket listening on {where}", where=address.text),
        )
        self.address = address

    def startService(self) -> None:
        address = self.address
        if address.is_unix and not address.path.startswith("@"):
            _clear_stale(address.path)
        elif not address.is_unix and not _is_loopback(address.host):
            self.log.warn(
                "AdminListen {where} is not a loopback address: the admin socket has no "
                "authentication and anyone who can reach it can add and remove peers",
                where=address.text,
            )
        super().startService()


def _endpoint(reactor: Any, address: AdminAddress) -> IStreamServerEndpoint:
    if address.is_unix:
        path = address.path
        if path.startswith("@"):
            return UNIXServerEndpoint(reactor, "\0" + path[1:])
        return UNIXServerEndpoint(reactor, path, mode=0o660)
    return tcp_server_endpoint(reactor, address.host, address.port)


def _clear_stale(path: str) -> None:
    """Remove a socket file nobody serves; refuse a live socket or any other file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise StartupError(f"AdminListen {path}: {e.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise StartupError(f"AdminListen {path} exists and is not a socket; not replacing it")
    if _socket_in_use(path):
        raise StartupError(f"AdminListen {path} already exists and is in use by another process")
    AdminListenService.log.info("removing stale admin socket {path}", path=path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
