# -*- test-case-name: tests.test_forward_tcp -*-
"""
Joining two stream connections (a local kernel or unix socket and an overlay TCP connection)
into one forwarded connection, with the limits every forward shares:

 - backpressure both ways: each transport is the other's streaming producer, so a slow reader
   on one side pauses reading on the other (the overlay TCP closes its receive window, the
   kernel socket stops being read);
 - a FIN on one side becomes a FIN (half-close) on the other; once both directions ended both
   are closed; a reset (any loss other than a clean close) resets the other side;
 - an idle timeout: no byte either way for C{idle} seconds closes both sides;
 - a cap on simultaneous connections per forward (L{Forward.admit}), each refusal logged.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from axl.logs import observer as log_observer

__all__ = ["Forward", "Splice", "SpliceEnd", "reset_transport", "EARLY_DATA_MAX"]

EARLY_DATA_MAX = 256 * 1024
"""Most bytes one side may send before its other side is connected (it is paused meanwhile)."""

log = Logger(observer=log_observer)


def reset_transport(transport: Any) -> None:
    """Close C{transport} abruptly; a kernel TCP socket sends RST (SO_LINGER 0)."""
    get_handle = getattr(transport, "getHandle", None)
    if get_handle is not None:
        try:
            sock = get_handle()
            if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abortConnection()


class Forward:
    """
    The bookkeeping of one forward or proxy: its name for logs, its caps, its open connections.

    @ivar active: the accepted ends currently open (dialling or spliced).
    @ivar stats: counters C{accepted}, C{refused} (over the cap), C{failed} (the other side
        could not be reached).
    """

    def __init__(self, name: str, max_conns: int, idle: float, clock: IReactorTime) -> None:
        self.name, self.max_conns, self.idle, self.clock = name, max_conns, idle, clock
        self.active: set[SpliceEnd] = set()
        self.stats = {"accepted": 0, "refused": 0, "failed": 0}

    def admit(self, who: object) -> bool:
        """Whether one more connection (from C{who}, for the log) fits under the cap."""
        if len(self.active) >= self.max_conns:
            self.stats["refused"] += 1
            log.warn("{fwd}: refused a connection from {who}: {n} connections open (max_conns)",
                     fwd=self.name, who=str(who), n=len(self.active))  # fmt: skip
            return False
        self.stats["accepted"] += 1
        return True

    def failed(self, who: object, why: object) -> None:
        """Log a connection whose other side could not be reached."""
        self.stats["failed"] += 1
        log.warn("{fwd}: connection from {who} failed: {why}", fwd=self.name, who=str(who), why=str(why))

    def close_all(self) -> None:
        """Close every open connection (the forward is stopping)."""
        for end in list(self.active):
            if end.transport is not None:
                end.transport.loseConnection()


@implementer(IHalfCloseableProtocol)
class SpliceEnd(Protocol):
    """
    One side of a forwarded connection. Until it is spliced it keeps what arrives (at most
    L{EARLY_DATA_MAX} bytes; the side that dials pauses its transport meanwhile).
    """

    transport: Any = None  # an ITCPTransport (kernel, unix or overlay): half-close, producers
    splice: Splice | None = None
    peer: SpliceEnd | None = None
    eof = False
    lost_reason: Failure | None = None

    def __init__(self) -> None:
        self.early: list[bytes] = []
        self._early_size = 0

    def dataReceived(self, data: bytes) -> None:
        splice = self.splice
        if splice is not None:
            splice.data(self, data)
            return
        self._early_size += len(data)
        if self._early_size > EARLY_DATA_MAX:
            log.warn("closing a forwarded connection that sent over {n} bytes before its other "
                     "side was connected", n=EARLY_DATA_MAX)  # fmt: skip
            reset_transport(self.transport)
            return
        self.early.append(data)

    def readConnectionLost(self) -> None:
        if self.splice is not None:
            self.splice.eof(self)
        else:
            self.eof = True

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = Failure(ConnectionDone())) -> None:
        self.lost_reason = reason
        if self.splice is not None:
            self.splice.lost(self, reason)


@implementer(IPushProducer)
class _Pauser:
    """
    A transport as the other side's producer: pausing and resuming pass through; stopping
    does nothing, because the splice decides how the other side closes (FIN or RST).
    """

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def pauseProducing(self) -> None:
        self._transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._transport.resumeProducing()

    def stopProducing(self) -> None:
        pass


class Splice:
    """
    Joins C{a} (the accepted side, counted in C{forward.active}) and C{b} (the side we dialled):
    flushes what each sent early, makes each the other's producer, resumes both.
    """

    def __init__(self, forward: Forward, a: SpliceEnd, b: SpliceEnd) -> None:
        self.forward, self.a, self.b = forward, a, b
        self.closed = False
        self._clock = forward.clock
        self._last = self._clock.seconds()
        self._timer: IDelayedCall | None = None
        a.peer, b.peer = b, a
        a.splice = b.splice = self
        for end in (a, b):
            assert end.peer is not None and end.peer.transport is not None
            for chunk in end.early:
                end.peer.transport.write(chunk)
            end.early = []
        a.transport.registerProducer(_Pauser(b.transport), True)
        b.transport.registerProducer(_Pauser(a.transport), True)
        for end in (a, b):
            if end.eof:
                end.eof = False
                self.eof(end)
        if not self.closed:
            for end in (a, b):
                end.transport.resumeProducing()
            self._timer = self._clock.callLater(forward.idle, self._check_idle)

    def data(self, end: SpliceEnd, data: bytes) -> None:
        """Bytes from C{end}: to the other side."""
        self._last = self._clock.seconds()
        peer = end.peer
        assert peer is not None and peer.transport is not None
        peer.transport.write(data)

    def eof(self, end: SpliceEnd) -> None:
        """C{end} sent FIN: half-close the other side; close both once both directions ended."""
        if end.eof or self.closed:
            return
        end.eof = True
        peer = end.peer
        assert peer is not None and peer.transport is not None
        if peer.eof:
            self._close_both()
        else:
            peer.transport.loseWriteConnection()

    def lost(self, end: SpliceEnd, reason: Failure) -> None:
        """C{end} is gone: close the other side (cleanly, or with a reset after a reset)."""
        if self.closed:
            return
        self._finish()
        peer = end.peer
        assert peer is not None and peer.transport is not None
        if reason.check(ConnectionDone):
            peer.transport.loseConnection()
        else:
            log.info("{fwd}: one side was reset ({why}); resetting the other",
                     fwd=self.forward.name, why=reason.getErrorMessage())  # fmt: skip
            reset_transport(peer.transport)

    def _finish(self) -> None:
        self.closed = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        for end in (self.a, self.b):
            if end.transport is not None and end.lost_reason is None:
                end.transport.unregisterProducer()

    def _close_both(self) -> None:
        if self.closed:
            return
        self._finish()
        for end in (self.a, self.b):
            if end.transport is not None and end.lost_reason is None:
                end.transport.loseConnection()

    def _check_idle(self) -> None:
        self._timer = None
        idle_for = self._clock.seconds() - self._last
        if idle_for < self.forward.idle:
            self._timer = self._clock.callLater(self.forward.idle - idle_for, self._check_idle)
            return
        log.info("{fwd}: closing a connection idle for {secs:g} s", fwd=self.forward.name,
                 secs=self.forward.idle)  # fmt: skip
        self._close_both()
