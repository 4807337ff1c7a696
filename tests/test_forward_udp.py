"""
Tests for L{axl.forward.udp}: C{local_udp} and C{remote_udp} flows over two in-memory stacks
(L{axl.ipv6.testing}), with a fake local UDP side and a task.Clock: replies find their flow,
idle flows are forgotten, the flow cap drops (with one aggregated log line), only the target
may answer.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import FakeDatagramTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto.address import addr_for_key
from axl.forward.spec import parse_local, parse_remote
from axl.forward.udp import DROP_LOG_INTERVAL, LocalUDPForward, RemoteUDPForward
from axl.ipv6.testing import Stack
from axl.ipv6.udp import Datagram
from tests.forward_fakes import two_stacks, udp_of
from tests.vectors import identity


class FakePort:
    """A connected local UDP socket as listenUDP returns it."""

    def __init__(self, protocol: Any, interface: str, max_packet: int) -> None:
        self.protocol, self.interface, self.max_packet = protocol, interface, max_packet
        self.connected_to: tuple[str, int] | None = None
        self.written: list[bytes] = []
        self.stopped = False

    def connect(self, host: str, port: int) -> None:
        self.connected_to = (host, port)

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def stopListening(self) -> None:
        self.stopped = True


class FakeUDPReactor(Clock):
    """A clock with listenUDP."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[FakePort] = []

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192) -> FakePort:
        fake = FakePort(protocol, interface, maxPacketSize)
        self.ports.append(fake)
        return fake


class UDPForwardTests(SynchronousTestCase):
    """B's local_udp to A's remote_udp, all in memory."""

    def setUp(self) -> None:
        self.reactor = FakeUDPReactor()
        self.net, self.a, self.b = two_stacks(self, self.reactor)
        self.ua, self.ub = ua, ub = udp_of(self.a), udp_of(self.b)
        a_key = self.a.public_key.hex()
        self.remote = RemoteUDPForward(parse_remote("53:127.0.0.1:5353?max_conns=2&idle=30", "udp"), ua, self.reactor)
        self.remote.start()
        self.local = LocalUDPForward(parse_local(f"0:{a_key}.pk.ygg:53?max_conns=2&idle=30", "udp"), ub, self.reactor)
        self.local_transport = FakeDatagramTransport()
        self.local.makeConnection(self.local_transport)

    def send_local(self, data: bytes, client: tuple[str, int]) -> None:
        self.local.datagramReceived(data, client)
        self.net.flush()

    def test_round_trip(self) -> None:
        """A local datagram reaches A's service socket; its reply comes back to that client."""
        self.send_local(b"query", ("127.0.0.1", 40000))
        [port] = self.reactor.ports
        self.assertEqual((port.connected_to, port.written, port.interface), (("127.0.0.1", 5353), [b"query"], "127.0.0.1"))
        self.assertEqual(port.max_packet, 65535)
        port.protocol.datagramReceived(b"answer", ("127.0.0.1", 5353))
        self.net.flush()
        self.assertEqual(self.local_transport.written, [(b"answer", ("127.0.0.1", 40000))])

    def test_flows_per_sender(self) -> None:
        """Two local clients are two flows, each with its own service socket and replies."""
        self.send_local(b"one", ("127.0.0.1", 40000))
        self.send_local(b"two", ("127.0.0.1", 40001))
        self.send_local(b"one again", ("127.0.0.1", 40000))
        p1, p2 = self.reactor.ports
        self.assertEqual((p1.written, p2.written), ([b"one", b"one again"], [b"two"]))
        p2.protocol.datagramReceived(b"to two", None)
        self.net.flush()
        self.assertEqual(self.local_transport.written, [(b"to two", ("127.0.0.1", 40001))])

    def test_idle_flows_forgotten(self) -> None:
        """A flow quiet for idle seconds is closed on both sides; traffic keeps it open."""
        self.send_local(b"x", ("127.0.0.1", 40000))
        self.reactor.advance(20)
        self.send_local(b"y", ("127.0.0.1", 40000))
        self.reactor.advance(20)
        self.assertEqual(len(self.local.flows.flows), 1)
        self.reactor.advance(11)
        self.assertEqual((self.local.flows.flows, self.remote.flows.flows), ({}, {}))
        self.assertTrue(self.reactor.ports[0].stopped)
        self.send_local(b"z", ("127.0.0.1", 40000))
        self.assertEqual(len(self.reactor.ports), 2)

    def test_cap_drops_and_logs_once(self) -> None:
        """Over max_conns new flows are dropped; repeated drops make one log line per interval."""
        with capturedLogs() as events:
            for port in range(40000, 40005):
                self.send_local(b"x", ("127.0.0.1", port))
        self.assertEqual(len(self.local.flows.flows), 2)
        self.assertEqual(self.local.flows.stats["dropped"], 3)
        lines = [formatEvent(e) for e in events if "max_conns" in formatEvent(e)]
        self.assertEqual(len(lines), 1, lines)
        with capturedLogs() as events:
            self.reactor.advance(DROP_LOG_INTERVAL)
        self.assertIn("dropped 2 datagram(s)", " ".join(formatEvent(e) for e in events))

    def test_remote_cap(self) -> None:
        """remote_udp caps its flows too (one per remote sender)."""
        for sport in (1, 2, 3):
            self.ub.send(sport, addr_for_key(self.a.public_key), 53, b"x")
            self.net.flush()
        self.assertEqual((len(self.reactor.ports), self.remote.flows.stats["dropped"]), (2, 1))

    def test_only_target_answers(self) -> None:
        """A datagram to a flow's overlay port from anyone but the target is dropped."""
        self.send_local(b"x", ("127.0.0.1", 40000))
        [oport] = self.local._oport.values()
        c = Stack(self.net, identity("C"), self.reactor)
        self.addCleanup(c.stop)
        assert c.overlay.udp is not None
        c.overlay.udp.send(53, addr_for_key(self.b.public_key), oport, b"spoof")
        self.net.flush()
        self.assertEqual(self.local_transport.written, [])
        self.assertEqual(self.local.flows.stats["dropped"], 1)

    def test_oversize_dropped(self) -> None:
        """A local datagram larger than an overlay packet carries is dropped and counted."""
        self.send_local(bytes(self.ub.max_payload + 1), ("127.0.0.1", 40000))
        self.assertEqual((self.reactor.ports, self.local.flows.stats["dropped"]), ([], 1))

    def test_stop(self) -> None:
        """Stopping closes every flow, unbinds the port and leaves no timer."""
        self.send_local(b"x", ("127.0.0.1", 40000))
        self.local.stop()
        self.remote.stop()
        self.assertTrue(self.reactor.ports[0].stopped)
        self.assertEqual([c for c in self.reactor.getDelayedCalls() if c.getTime() - self.reactor.seconds() <= 30.0
                          and c.func.__qualname__.startswith(("_Flow", "_Flows"))], [])  # fmt: skip
        got: list[Datagram] = []
        self.ua.bind(53, got.append)  # the overlay port is free again
