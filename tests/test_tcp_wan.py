# -*- test-case-name: tests.test_tcp_wan -*-
"""
WAN conditions (issue 19 item 5) without netem: the delay link of L{tests.delaylink}, first on
its own with a Clock and string transports, then end to end between the TLS peer links of three
whole nodes X - L - Y in this process (10 ms each way per link, a 40 ms round trip X to Y),
where a transfer over overlay TCP must arrive intact. Throughput is measured by
C{bench/bench_tcp_wan.py}, not here; these tests assert no timing.
"""

from __future__ import annotations

import hashlib
import io

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.protocols.basic import FileSender
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from axl.tcp.endpoints import OverlayClientEndpoint, OverlayServerEndpoint
from tests.delaylink import DelayLink, _DelayLine
from tests.inprocess import InProcessNodesTestCase
from tests.test_e2e_twistd import free_port

WAIT = 60.0


class DelayLineTests(SynchronousTestCase):
    """One direction of the delay link, on a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.src, self.dst = StringTransport(), StringTransport()
        self.line = _DelayLine(self.clock, 0.01, 1000, self.src, self.dst)

    def test_delays_in_order(self) -> None:
        """Each chunk leaves C{delay} after it came, in order, and is counted."""
        self.line.data(b"abc")
        self.clock.advance(0.004)
        self.line.data(b"def")
        self.clock.advance(0.0059)
        self.assertEqual(self.dst.value(), b"")
        self.clock.advance(0.0002)
        self.assertEqual(self.dst.value(), b"abc")
        self.clock.advance(0.004)
        self.assertEqual(self.dst.value(), b"abcdef")
        self.assertEqual((self.line.queued, self.line.forwarded), (0, 6))

    def test_cap_pauses_source(self) -> None:
        """At C{max_in_flight} queued bytes the source is paused, and resumed once drained."""
        self.line.data(b"x" * 600)
        self.assertEqual(self.src.producerState, "producing")
        self.line.data(b"y" * 400)
        self.assertEqual(self.src.producerState, "paused")
        self.assertEqual(self.line.peak, 1000)
        self.clock.advance(0.0101)
        self.assertEqual(self.src.producerState, "producing")
        self.assertEqual(len(self.dst.value()), 1000)

    def test_destination_backpressure(self) -> None:
        """While the destination pauses its producer (the line), the source is paused too."""
        self.assertIs(self.dst.producer, self.line)
        self.line.pauseProducing()
        self.assertEqual(self.src.producerState, "paused")
        self.line.data(b"z" * 2000)                      # full as well
        self.line.resumeProducing()
        self.assertEqual(self.src.producerState, "paused")
        self.clock.advance(0.011)
        self.assertEqual(self.src.producerState, "producing")

    def test_close_after_drain(self) -> None:
        """A closed source closes the destination only after the queued data left."""
        self.line.data(b"last")
        self.line.close()
        self.assertFalse(self.dst.disconnecting)
        self.clock.advance(0.011)
        self.assertEqual(self.dst.value(), b"last")
        self.assertTrue(self.dst.disconnecting)

    def test_bad_arguments(self) -> None:
        """A negative delay or a zero cap is refused."""
        self.assertRaises(ValueError, DelayLink, reactor, "127.0.0.1", 1, -0.1)
        self.assertRaises(ValueError, DelayLink, reactor, "127.0.0.1", 1, 0.01, 0)


class Sink(Protocol):
    """Hashes what arrives; C{done} fires at the close."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.n = 0
        self.done: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.sha.update(data)
        self.n += len(data)

    def connectionLost(self, reason: Failure) -> None:
        self.done.callback(None)


class DelayedLineTests(InProcessNodesTestCase):
    """X - L - Y with 10 ms each way on both TLS links."""

    timeout = WAIT + 30

    def test_transfer_intact(self) -> Deferred[None]:
        """8 MiB from a producer on X reach Y through L intact, and both links were delayed."""
        return ensureDeferred(self._scenario())

    async def _scenario(self) -> None:
        listen = free_port()
        self.start_node("A", {"Listen": [f"tls://127.0.0.1:{listen}"]})
        links, nodes = [], []
        for name in ("B", "C"):
            link = DelayLink(reactor, "127.0.0.1", listen, 0.01)
            port = await link.listen()
            self.addCleanup(link.stop)
            links.append(link)
            nodes.append(self.start_node(name, {"Peers": [f"tls://127.0.0.1:{port}"]}))
        x, y = nodes
        sink = Sink()
        server = await OverlayServerEndpoint(y.tcp, 5001).listen(Factory.forProtocol(lambda: sink))
        self.addCleanup(server.stopListening)
        proto, waited = Protocol(), 0.0
        while proto.transport is None and waited < WAIT:
            try:
                await connectProtocol(OverlayClientEndpoint(x.tcp, y.public_key, 5001, timeout=5),
                                      proto)
            except Exception:
                await deferLater(reactor, 0.5, lambda: None)
                waited += 0.5
        self.assertIsNotNone(proto.transport, "no overlay connection X -> Y through L")
        blob = hashlib.shake_256(b"wan").digest(8 * 1024 * 1024)
        await FileSender().beginFileTransfer(io.BytesIO(blob), proto.transport)
        proto.transport.loseConnection()
        await sink.done
        self.assertEqual(sink.n, len(blob))
        self.assertEqual(sink.sha.digest(), hashlib.sha256(blob).digest())
        for link in links:                               # the data went through the delay lines
            self.assertGreaterEqual(max(line.forwarded for line in link.lines), len(blob))
