# -*- test-case-name: tests.test_tcp_transport -*-
"""
L{OverlayTransport}: the thin Twisted adapter around one L{Connection}. It is an
C{ITCPTransport} (write, writeSequence, loseConnection, loseWriteConnection, abortConnection,
getPeer/getHost as L{OverlayAddress}), an C{IPushProducer} for the data it delivers (pausing it
closes the receive window) and an C{IConsumer}: a registered producer is paused while more
than the connection's C{send_limit} (C{snd_buf}, auto-tuned up to twice the flight the windows
allow) wait for acknowledgement, and resumed when half of that drained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IHalfCloseableProtocol,
    IProtocol,
    IProducer,
    IPullProducer,
    IPushProducer,
    ITCPTransport,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from axl.interfaces import IAcknowledgingTransport
from axl.logs import observer as log_observer
from axl.overlay_address import OverlayAddress
from axl.tcp.connection import CLOSED, Connection

__all__ = ["OverlayTransport"]


@implementer(ITCPTransport, IPushProducer, IConsumer, IAcknowledgingTransport)
class OverlayTransport:
    """
    Created before the connection is established; C{protocol} is attached with
    L{attach_protocol} once it is. Until then C{on_connect}/C{on_connect_failed} (set by the
    client endpoint) hear the outcome.
    """

    log = Logger(observer=log_observer)

    def __init__(self, conn: Connection | None, host: OverlayAddress, peer: OverlayAddress) -> None:
        self.conn = conn
        self._host, self._peer = host, peer
        self.protocol: IProtocol | None = None
        self.connected = 0
        self.disconnecting = False
        self.disconnected = False
        self._write_closed = False
        self._close_when_unregistered = False
        self.producer: IProducer | None = None
        self._streaming = False
        self._producer_paused = False
        self._pull_call: IDelayedCall | None = None
        self._half_call: IDelayedCall | None = None
        self.on_connect: Callable[[OverlayTransport], None] | None = None
        self.on_connect_failed: Callable[[Exception], None] | None = None
        self._ack_waiters: list[tuple[int, Deferred[None]]] = []

    # ---- connection events (AppEvents) -------------------------------------------------------

    def tcp_established(self) -> None:
        """The handshake completed: tell the client endpoint."""
        if self.on_connect is not None:
            cb, self.on_connect, self.on_connect_failed = self.on_connect, None, None
            cb(self)

    def attach_protocol(self, protocol: IProtocol) -> None:
        """Connect C{protocol} to this transport (C{makeConnection})."""
        self.protocol = protocol
        self.connected = 1
        protocol.makeConnection(self)

    def tcp_data(self, data: bytes) -> None:
        """Hand C{data} to the protocol."""
        if self.protocol is not None:
            self.protocol.dataReceived(data)

    def tcp_eof(self) -> None:
        """The peer half-closed: C{readConnectionLost} for a half-closeable protocol, else close."""
        proto = self.protocol
        if proto is None:
            return
        if IHalfCloseableProtocol.providedBy(proto):
            proto.readConnectionLost()
        else:
            self.loseConnection()

    def tcp_writable(self) -> None:
        """The send buffer drained: resume a paused streaming producer or pull again."""
        if self.producer is None:
            return
        if self._streaming:
            if self._producer_paused:
                self._producer_paused = False
                cast(IPushProducer, self.producer).resumeProducing()
        else:
            self._schedule_pull()

    def tcp_closed(self, reason: Exception) -> None:
        """
        The connection ended: fail a pending connect; else fail the acknowledgement waiters,
        stop the producer and call C{connectionLost}.
        """
        if self.disconnected:
            return
        self.disconnected = True
        self.connected = 0
        for call in (self._pull_call, self._half_call):
            if call is not None and call.active():
                call.cancel()
        self._pull_call = self._half_call = None
        if self.on_connect_failed is not None:
            cb, self.on_connect, self.on_connect_failed = self.on_connect_failed, None, None
            cb(reason)
            return
        waiters, self._ack_waiters = self._ack_waiters, []
        for _, d in waiters:
            d.errback(Failure(reason))
        producer, self.producer = self.producer, None
        if producer is not None:
            producer.stopProducing()
        if self.protocol is not None:
            self.protocol.connectionLost(Failure(reason))

    # ---- ITransport --------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue C{data}; ignored once the connection is closing or closed (as Twisted does)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        conn = self.conn
        if not data or conn is None or self.disconnected or self._write_closed or conn.app_closed:
            return
        if conn.sndbuf.fin_queued or conn.state == CLOSED:
            return
        conn.send(data)
        if self.producer is not None:
            if conn.send_buffered > conn.send_limit:
                conn.wants_writable()
                if self._streaming and not self._producer_paused:
                    self._producer_paused = True
                    cast(IPushProducer, self.producer).pauseProducing()
            elif not self._streaming:
                self._schedule_pull()

    def when_acknowledged(self) -> Deferred[None]:
        """
        A Deferred that fires once the peer's TCP has acknowledged every byte written so far,
        and fails with the connection's loss reason if the connection ends first (the shape of
        C{axl.interfaces.IAcknowledgingTransport}).
        """
        conn = self.conn
        if conn is None or self.disconnected:
            return fail(ConnectionLost("not connected"))
        target = conn.sndbuf.written
        if conn.sndbuf.acked >= target:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._ack_waiters.append((target, d))
        conn.on_acked = self._acked
        return d

    def _acked(self, total: int) -> None:
        ready = [d for target, d in self._ack_waiters if target <= total]
        if ready:
            self._ack_waiters = [(t, d) for t, d in self._ack_waiters if t > total]
            if not self._ack_waiters and self.conn is not None:
                self.conn.on_acked = None
            for d in ready:
                d.callback(None)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Close after sending what is queued (and after a registered producer unregisters)."""
        if self.disconnecting or self.disconnected:
            return
        self.disconnecting = True
        if self.producer is not None and not self._write_closed:
            self._close_when_unregistered = True
            return
        self._close()

    def _close(self) -> None:
        conn = self.conn
        if conn is not None:
            conn.app_closed = True
            conn.close()

    def loseWriteConnection(self) -> None:
        """Half-close: send FIN; reading continues until the peer closes."""
        if self._write_closed or self.disconnected:
            return
        self._write_closed = True
        if self.conn is not None:
            self.conn.close()
            if IHalfCloseableProtocol.providedBy(self.protocol):
                # as Twisted's TCP does once the write side is shut (never re-entrantly)
                self._half_call = self.conn._clock.callLater(0, self._write_lost)

    def _write_lost(self) -> None:
        self._half_call = None
        if self.protocol is not None and not self.disconnected:
            IHalfCloseableProtocol(self.protocol).writeConnectionLost()

    def abortConnection(self) -> None:
        """Reset the connection now."""
        if self.conn is not None and not self.disconnected:
            self.conn.abort()

    def getPeer(self) -> OverlayAddress:  # type: ignore[override]  # not an IP address
        return self._peer

    def getHost(self) -> OverlayAddress:  # type: ignore[override]
        return self._host

    # the ITCPTransport socket options have no meaning here
    def getTcpNoDelay(self) -> bool:
        return True

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass

    def getTcpKeepAlive(self) -> bool:
        return False

    def setTcpKeepAlive(self, enabled: bool) -> None:
        pass

    # ---- IPushProducer (our reading) ---------------------------------------------------------

    def pauseProducing(self) -> None:
        if self.conn is not None:
            self.conn.pause_reading()

    def resumeProducing(self) -> None:
        if self.conn is not None and not self.disconnected:
            self.conn.resume_reading()

    def stopProducing(self) -> None:
        self.loseConnection()

    # ---- IConsumer ---------------------------------------------------------------------------

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """
        Register C{producer}: an C{IPushProducer} when C{streaming}, else an C{IPullProducer}
        (as C{IConsumer} says; the casts below rely on that contract, as Twisted's
        C{FileDescriptor} does).
        """
        if self.producer is not None:
            raise RuntimeError(f"Cannot register producer {producer!r}, because producer "
                               f"{self.producer!r} was never unregistered.")
        if self.disconnected:
            producer.stopProducing()
            return
        self.producer, self._streaming, self._producer_paused = producer, bool(streaming), False
        if not streaming:
            if not IPullProducer.providedBy(producer) and not hasattr(producer, "resumeProducing"):
                raise TypeError("a pull producer needs resumeProducing")
            self._schedule_pull()
        elif self.conn is not None and self.conn.send_buffered > self.conn.send_limit:
            self._producer_paused = True
            cast(IPushProducer, producer).pauseProducing()
            self.conn.wants_writable()

    def unregisterProducer(self) -> None:
        self.producer = None
        if self._pull_call is not None and self._pull_call.active():
            self._pull_call.cancel()
        self._pull_call = None
        if self._close_when_unregistered:
            self._close_when_unregistered = False
            self._close()

    def _schedule_pull(self) -> None:
        if self._pull_call is None and self.conn is not None:
            self._pull_call = self.conn._clock.callLater(0, self._pull)

    def _pull(self) -> None:
        self._pull_call = None
        producer, conn = self.producer, self.conn
        if producer is None or self._streaming or conn is None or self.disconnected:
            return
        if conn.send_buffered > conn.send_limit // 2:
            conn.wants_writable()
            return
        cast(IPullProducer, producer).resumeProducing()

