"""
In-memory fakes for the application-layer tests: a network of overlay "connections" between
node keys that models what the streams code relies on — a receiver that stops reading (paused)
stops acknowledging, and L{IAcknowledgingTransport.when_acknowledged} fires once the peer's
protocol has been handed the bytes.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.interfaces import IStreamClientEndpoint, ITransport
from twisted.python.failure import Failure
from zope.interface import implementer, implementer_only

from axl.overlay_address import OverlayAddress
from axl.streams.interfaces import IAcknowledgingTransport


#: The most one delivery step moves (like one TCP segment, if a large one).
SEGMENT = 64 * 1024


def key(n: int) -> bytes:
    """A distinct, valid-looking 32-byte key."""
    return bytes([n]) * 32


@implementer(ITransport, IAcknowledgingTransport)
class PipeTransport:
    """One end of an in-memory connection."""

    def __init__(
        self, net: MemoryNet, host: OverlayAddress, peer: OverlayAddress
    ) -> None:
        self.net = net
        self.host = host
        self.peer = peer
        self.other: PipeTransport = None  # type: ignore[assignment]
        self.protocol: Any = None
        self.outbox: deque[bytes] = deque()
        self.written = 0
        self.delivered = 0
        self.waiters: list[tuple[int, Deferred[None]]] = []
        self.reading_paused = False
        self.disconnecting = False
        self.closed = False
        self.producer: Any = None
        self.producer_paused = False
        self.aborted = False
        self.close_when_unregistered = False

    def write(self, data: bytes) -> None:
        if self.disconnecting or self.closed:
            return
        self.outbox.append(bytes(data))
        self.written += len(data)
        limit = self.net.send_limit
        if limit is not None and self.producer is not None and not self.producer_paused:
            if self.written - self.delivered > limit:
                # like the overlay transport: its producer waits while the send buffer is full
                self.producer_paused = True
                self.producer.pauseProducing()

    @property
    def buffered(self) -> int:
        """Bytes written and not yet handed to the other end (the send buffer)."""
        return self.written - self.delivered

    def writeSequence(self, seq: list[bytes]) -> None:
        for data in seq:
            self.write(data)

    def when_acknowledged(self) -> Deferred[None]:
        if self.delivered >= self.written:
            return succeed(None)
        if self.closed:
            return fail(ConnectionLost())
        d: Deferred[None] = Deferred()
        self.waiters.append((self.written, d))
        return d

    def pauseProducing(self) -> None:
        self.reading_paused = True

    def resumeProducing(self) -> None:
        self.reading_paused = False

    def stopProducing(self) -> None:
        self.loseConnection()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer
        self.producer_paused = False

    def unregisterProducer(self) -> None:
        self.producer = None
        if self.close_when_unregistered:
            self.close_when_unregistered = False
            self.disconnecting = True

    def loseConnection(self) -> None:
        # Like the overlay transport (and Twisted's): with a producer registered, the close
        # waits until it unregisters.
        if self.producer is not None:
            self.close_when_unregistered = True
            return
        self.disconnecting = True

    def abortConnection(self) -> None:
        self.disconnecting = True
        self.aborted = True
        self.outbox.clear()

    def getPeer(self) -> OverlayAddress:
        return self.peer

    def getHost(self) -> OverlayAddress:
        return self.host

    def _deliver(self) -> bool:
        """
        Move up to one segment (L{SEGMENT} bytes) of our outbox into the other end's protocol
        if it is reading; L{MemoryNet.flush} alternates directions between segments, so a
        reply can overtake the acknowledgement of a long message, as over TCP.
        """
        other = self.other
        if not self.outbox or other.reading_paused or other.closed:
            return False
        data = self.outbox.popleft()
        if len(data) > SEGMENT:
            data, rest = data[:SEGMENT], data[SEGMENT:]
            self.outbox.appendleft(rest)
        self.delivered += len(data)
        other.protocol.dataReceived(data)
        self._fire_acks()
        limit = self.net.send_limit
        if self.producer_paused and limit is not None and self.buffered <= limit // 2:
            self.producer_paused = False
            if self.producer is not None:
                self.producer.resumeProducing()
        return True

    def _fire_acks(self) -> None:
        ready = [d for (mark, d) in self.waiters if mark <= self.delivered]
        self.waiters = [(m, d) for (m, d) in self.waiters if m > self.delivered]
        for d in ready:
            d.callback(None)

    def _close(self, reason: Failure) -> None:
        if self.closed:
            return
        self.closed = True
        waiters, self.waiters = self.waiters, []
        for _, d in waiters:
            d.errback(ConnectionLost())
        self.protocol.connectionLost(reason)


@implementer_only(ITransport)
class PlainPipeTransport(PipeTransport):
    """A pipe end that does not report acknowledgements (like an ordinary TCP transport)."""


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    def __init__(self, net: MemoryNet, src: bytes, dst: bytes, port: int) -> None:
        self.net, self.src, self.dst, self.port = net, src, dst, port

    def connect(self, factory: Any) -> Deferred[Any]:
        return self.net.connect(self.src, self.dst, self.port, factory)


class MemoryNet:
    """Nodes (keys) with listening factories on ports; C{flush} moves all bytes."""

    def __init__(self) -> None:
        self.listeners: dict[tuple[bytes, int], Any] = {}
        self.black_holes: set[bytes] = set()
        self.pairs: list[tuple[PipeTransport, PipeTransport]] = []
        self.pending_connects: list[Deferred[Any]] = []
        self.transport_class: type[PipeTransport] = PipeTransport
        #: when set, a registered producer is paused while more than this many bytes wait
        #: to be delivered, and resumed at half (as the overlay transport's send buffer does)
        self.send_limit: int | None = None

    def listen(self, node: bytes, port: int, factory: Any) -> None:
        self.listeners[(node, port)] = factory

    def dial_from(self, src: bytes) -> Any:
        return lambda dst, port: MemoryEndpoint(self, src, dst, port)

    def connect(self, src: bytes, dst: bytes, port: int, factory: Any) -> Deferred[Any]:
        if dst in self.black_holes:
            d: Deferred[Any] = Deferred()
            self.pending_connects.append(d)
            return d
        server_factory = self.listeners.get((dst, port))
        if server_factory is None:
            return fail(ConnectionRefusedError("no listener"))
        make = self.transport_class
        c = make(
            self,
            OverlayAddress(src, 40000 + len(self.pairs)),
            OverlayAddress(dst, port),
        )
        s = make(
            self,
            OverlayAddress(dst, port),
            OverlayAddress(src, 40000 + len(self.pairs)),
        )
        c.other, s.other = s, c
        client = factory.buildProtocol(c.peer)
        server = server_factory.buildProtocol(s.peer)
        c.protocol, s.protocol = client, server
        self.pairs.append((c, s))
        server.makeConnection(s)
        client.makeConnection(c)
        return succeed(client)

    def flush(self) -> None:
        """Deliver everything deliverable and process closes, until nothing moves."""
        for _ in range(100000):
            moved = False
            for c, s in self.pairs:
                if not c.closed:
                    moved |= c._deliver()
                    moved |= s._deliver()
                    for a, b in ((c, s), (s, c)):
                        if (
                            not a.closed
                            and a.disconnecting
                            and (not a.outbox or a.aborted)
                        ):
                            a._close(Failure(ConnectionDone()))
                            b._close(Failure(ConnectionDone()))
                            moved = True
            self.pairs = [(c, s) for (c, s) in self.pairs if not c.closed]
            if not moved:
                return
        raise AssertionError("the memory network did not settle")


from twisted.web.resource import Resource


class FakeHTTPServer(Resource):
    """
    A leaf resource that records requests and answers from C{self.answer}: a tuple
    (code, headers dict, body bytes), or a Deferred firing with one (never fires = slow server).
    """

    isLeaf = True

    def __init__(
        self,
        code: int = 200,
        body: bytes = b"{}",
        headers: dict[bytes, bytes] | None = None,
    ) -> None:
        super().__init__()
        self.answer: Any = (
            code,
            headers or {b"Content-Type": b"application/json"},
            body,
        )
        self.requests: list[dict[str, Any]] = []

    def render(self, request: Any) -> Any:
        self.requests.append(
            {
                "method": request.method.decode(),
                "path": request.path.decode(),
                "headers": {
                    k.decode().lower(): v[0].decode()
                    for k, v in request.requestHeaders.getAllRawHeaders()
                },
                "body": request.content.read(),
            }
        )
        answer = self.answer
        if isinstance(answer, Deferred):
            from twisted.web.server import NOT_DONE_YET

            def later(a: Any) -> None:
                self._write(request, a)
                request.finish()

            answer.addCallback(later)
            return NOT_DONE_YET
        return self._write(request, answer, finish=False)

    @staticmethod
    def _write(request: Any, answer: Any, finish: bool = True) -> Any:
        code, headers, body = answer
        request.setResponseCode(code)
        for k, v in headers.items():
            request.setHeader(k, v)
        if finish:
            request.write(body)
            return None
        return body
