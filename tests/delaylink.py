"""
A user-space delay link for benchmarks and end-to-end tests (the kernels here have no netem):
a TCP forwarder on 127.0.0.1 that delays each direction of every connection by C{delay}
seconds and holds at most C{max_in_flight} bytes per direction in the delay line. When the line
is full it stops reading from the sender (so the sender's kernel buffers fill and its TCP backs
off, as behind a real bottleneck), and it stops reading too while the receiving side does not
take data (Twisted's producer/consumer flow control). Data is never dropped or reordered.

Used between the TLS peer links of nodes to emulate a WAN path (spec/axl-node.md has no
requirement here; issue 19 item 5 asks for it). Importable (L{DelayLink}) or run on its own:

    python -m tests.delaylink --to 127.0.0.1:PORT [--listen PORT] [--delay-ms 10]
        [--max-in-flight BYTES]

which prints C{listening on PORT} once ready and runs until killed.
"""

from __future__ import annotations

import argparse
import sys
from collections import deque

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IPushProducer, IReactorTCP
from twisted.internet.interfaces import IReactorTime, ITransport
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "DelayLink"]

DEFAULT_MAX_IN_FLIGHT = 4 * 1024 * 1024   # per direction: a 400 MB/s ceiling at 10 ms
READ_SIZE = 256 * 1024                     # per read (Twisted's default is 64 KiB): less CPU


@implementer(IPushProducer)
class _DelayLine:
    """
    One direction: data read from C{src} is written to C{dst} C{delay} seconds later. It is
    the producer registered on C{dst}, and pauses C{src} while the line is full or C{dst} is.
    """

    def __init__(self, clock: IReactorTime, delay: float, cap: int, src: ITransport,
                 dst: ITransport) -> None:
        self._clock, self._delay, self._cap = clock, delay, cap
        self._src, self._dst = src, dst
        self._queue: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.peak = 0
        self.forwarded = 0
        self._call: IDelayedCall | None = None
        self._full = self._dst_paused = self._src_paused = False
        self._closing = False
        dst.registerProducer(self, True)  # type: ignore[attr-defined]

    def data(self, data: bytes) -> None:
        """C{data} arrived from C{src}."""
        self._queue.append((self._clock.seconds() + self._delay, data))
        self.queued += len(data)
        self.peak = max(self.peak, self.queued)
        if self._call is None:
            self._call = self._clock.callLater(self._delay, self._flush)
        if self.queued >= self._cap and not self._full:
            self._full = True
            self._update()

    def close(self) -> None:
        """C{src} is gone: close C{dst} once the line has drained."""
        self._closing = True
        if not self._queue:
            self._dst.loseConnection()

    def abort(self) -> None:
        """C{dst} is gone: forget the line and stop reading C{src}."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._queue.clear()
        self.queued = 0
        self._src.loseConnection()

    def _flush(self) -> None:
        self._call = None
        now = self._clock.seconds()
        q = self._queue
        out: list[bytes] = []
        while q and q[0][0] <= now + 0.0002:
            out.append(q.popleft()[1])
        n = sum(map(len, out))
        self.queued -= n
        self.forwarded += n
        if out:
            self._dst.writeSequence(out)
        if q:
            self._call = self._clock.callLater(max(q[0][0] - now, 0.0), self._flush)
        elif self._closing:
            self._dst.loseConnection()
        if self._full and self.queued < self._cap:
            self._full = False
            self._update()

    def _update(self) -> None:
        want = self._full or self._dst_paused
        if want != self._src_paused:
            self._src_paused = want
            if want:
                self._src.pauseProducing()  # type: ignore[attr-defined]
            else:
                self._src.resumeProducing()  # type: ignore[attr-defined]

    def pauseProducing(self) -> None:
        self._dst_paused = True
        self._update()

    def resumeProducing(self) -> None:
        self._dst_paused = False
        self._update()

    def stopProducing(self) -> None:
        self.abort()


class _Side(Protocol):
    """One end of a forwarded connection; feeds its outgoing line."""

    line: _DelayLine | None = None
    reverse: _DelayLine | None = None
    pending: list[bytes]

    def __init__(self) -> None:
        self.pending = []

    def dataReceived(self, data: bytes) -> None:
        if self.line is None:
            self.pending.append(data)           # before the other end is connected
        else:
            self.line.data(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.line is not None:
            self.line.close()


class _Inbound(_Side):
    def __init__(self, link: DelayLink) -> None:
        super().__init__()
        self._link = link

    def connectionMade(self) -> None:
        self.transport.pauseProducing()  # type: ignore[attr-defined]
        self._link._open(self)


class DelayLink:
    """
    Listens on 127.0.0.1 and forwards every connection to C{target_host:target_port}, each
    direction delayed by C{delay} seconds with at most C{max_in_flight} bytes in its line.

    @ivar lines: every direction of every connection so far (their C{forwarded} and C{peak}
        byte counts are for reports).
    """

    def __init__(self, reactor: IReactorTCP, target_host: str, target_port: int, delay: float,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        if delay < 0 or max_in_flight <= 0:
            raise ValueError("delay must be >= 0 and max_in_flight > 0")
        self._reactor = reactor
        self._target = (target_host, target_port)
        self.delay, self.max_in_flight = delay, max_in_flight
        self.lines: list[_DelayLine] = []
        self._port: IListeningPort | None = None
        self._sides: list[_Side] = []

    def listen(self, port: int = 0) -> Deferred[int]:
        """Start listening on 127.0.0.1:C{port} (0: any); fires with the port number."""
        endpoint = TCP4ServerEndpoint(self._reactor, port, interface="127.0.0.1")
        d = endpoint.listen(Factory.forProtocol(lambda: _Inbound(self)))

        def listening(p: IListeningPort) -> int:
            self._port = p
            return int(p.getHost().port)  # type: ignore[attr-defined]

        return d.addCallback(listening)

    def stop(self) -> Deferred[None] | None:
        """Stop listening and drop every forwarded connection."""
        for side in self._sides:
            if side.transport is not None:
                side.transport.abortConnection()  # type: ignore[attr-defined]
        self._sides.clear()
        port, self._port = self._port, None
        return port.stopListening() if port is not None else None  # type: ignore[return-value]

    def _open(self, inbound: _Inbound) -> None:
        host, port = self._target
        outbound = _Side()
        self._sides += [inbound, outbound]
        d = connectProtocol(TCP4ClientEndpoint(self._reactor, host, port), outbound)

        def connected(_: object) -> None:
            clock: IReactorTime = self._reactor  # type: ignore[assignment]
            a, b = inbound.transport, outbound.transport
            assert a is not None and b is not None
            for t in (a, b):        # no Nagle: it would hold a tail for the peer's delayed ACK
                t.setTcpNoDelay(True)  # type: ignore[attr-defined]
                t.bufferSize = READ_SIZE  # type: ignore[attr-defined]
            inbound.line = _DelayLine(clock, self.delay, self.max_in_flight, a, b)
            outbound.line = _DelayLine(clock, self.delay, self.max_in_flight, b, a)
            self.lines += [inbound.line, outbound.line]
            for side in (inbound, outbound):
                pending, side.pending = side.pending, []
                for data in pending:
                    side.line.data(data)  # type: ignore[union-attr]
            a.resumeProducing()  # type: ignore[attr-defined]

        def failed(_: Failure) -> None:
            if inbound.transport is not None:
                inbound.transport.loseConnection()

        d.addCallbacks(connected, failed)


def main(argv: list[str] | None = None) -> None:
    """Run one delay link until killed (see the module docstring)."""
    from twisted.internet import reactor

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--to", required=True, help="HOST:PORT to forward to")
    p.add_argument("--listen", type=int, default=0, help="port on 127.0.0.1 (default: any)")
    p.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay (default 10)")
    p.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT,
                   help="bytes held per direction (default 4 MiB)")
    args = p.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    link = DelayLink(reactor, host, int(port), args.delay_ms / 1000, args.max_in_flight)

    def ready(port: int) -> None:
        print(f"listening on {port}", flush=True)

    def failed(f: Failure) -> None:
        print(f"cannot listen: {f.value}", file=sys.stderr, flush=True)
        reactor.stop()  # type: ignore[attr-defined]

    link.listen(args.listen).addCallbacks(ready, failed)
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
