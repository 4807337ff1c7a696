# -*- test-case-name: tests.test_link_core -*-
"""
The thin Twisted adapter around L{LinkCore}: it only moves bytes and connection events (the
link's wire behaviour is the core's: spec/yggdrasil-wire.md sections 2.3-2.7).
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from axl.link.core import LinkCore

__all__ = ["LinkProtocol", "LinkFactory"]


class LinkProtocol(Protocol):
    """Feeds one connection's bytes to its L{LinkCore}."""

    def __init__(self, core: LinkCore) -> None:
        self.core = core

    def connectionMade(self) -> None:
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except Exception:  # not a TCP socket (unix, in-memory): nothing to do
                pass
        assert self.transport is not None  # makeConnection sets it before connectionMade
        self.core.connection_made(self.transport.write, self._disconnect)

    def dataReceived(self, data: bytes) -> None:
        self.core.data_received(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.core.connection_lost(reason.getErrorMessage())

    def _disconnect(self, abort: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        abort_connection = getattr(transport, "abortConnection", None)
        if abort and abort_connection is not None:
            abort_connection()
        else:
            transport.loseConnection()


class LinkFactory(Factory):
    """Builds a L{LinkProtocol} around a fresh core from C{make_core(remote_address)}."""

    noisy = False

    def __init__(self, make_core: Callable[[IAddress | None], LinkCore | None]) -> None:
        self._make_core = make_core

    def buildProtocol(self, addr: IAddress | None) -> LinkProtocol | None:
        core = self._make_core(addr)
        if core is None:
            return None
        proto = LinkProtocol(core)
        proto.factory = self
        return proto
