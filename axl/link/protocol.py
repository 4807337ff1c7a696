# -*- test-case-name: tests.test_link_core -*-
"""
The thin Twisted adapter around L{LinkCore}: it only moves bytes and connection events (the
link's wire behaviour is the core's: spec/yggdrasil-wire.md sections 2.3-2.7).
"""

from __future__ import annotations

from typing import Callable

from zope.interface import implementer

from twisted.internet.interfaces import IAddress, IConsumer, IPushProducer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from axl.link.core import LinkCore

__all__ = ["LinkProtocol", "LinkFactory"]


@implementer(IPushProducer)
class LinkProtocol(Protocol):
    """
    Feeds one connection's bytes to its L{LinkCore}.

    It is its transport's streaming producer from the first bytes received on (TLS is set up by
    then: TLS pauses producers while it buffers writes before its handshake, which must not
    stop reading): when the transport's write buffer fills, Twisted pauses it, and it stops
    reading from the peer (and tells the core) until the buffer drains. Close the link through
    its core (L{LinkCore.close}), which gives the producer slot back: TLS's C{loseConnection}
    waits for a registered producer to go.
    """

    _producing = False
    _registered = False

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

    def pauseProducing(self) -> None:
        """The transport's write buffer is full: stop reading until it drains."""
        self.core.writes_blocked()
        pause = getattr(self.transport, "pauseProducing", None)
        if pause is not None:
            pause()

    def resumeProducing(self) -> None:
        """The transport's write buffer drained: read again."""
        self.core.writes_unblocked()
        resume = getattr(self.transport, "resumeProducing", None)
        if resume is not None:
            resume()

    def stopProducing(self) -> None:
        """The transport is going away; C{connectionLost} follows."""

    def dataReceived(self, data: bytes) -> None:
        if not self._registered and self.transport is not None:
            self._registered = True
            consumer = IConsumer(self.transport, None)  # a transport without one: no flow control
            if consumer is not None:
                self._producing = True
                consumer.registerProducer(self, True)
        self.core.data_received(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.core.connection_lost(reason.getErrorMessage())

    def _disconnect(self, abort: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        if self._producing:  # TLS (and iosim) wait for the producer to go before closing
            self._producing = False
            IConsumer(transport).unregisterProducer()
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
