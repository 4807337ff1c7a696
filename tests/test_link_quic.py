# -*- test-case-name: tests.test_link_quic -*-
"""
Tests for L{axl.link.quic} (spec/yggdrasil-extras.md section 3): aioquic connections driven in
memory by L{QuicDriver} and L{QuicServerPort} on a L{Clock}, datagrams moved by hand; and end
to end, 16 MiB C{/send} between two in-process nodes whose only link is C{quic://}.
"""

from __future__ import annotations

from typing import Any

from zope.interface import implementer

from aioquic.quic.connection import QuicConnection
from twisted.internet.address import IPv4Address
from twisted.internet.defer import inlineCallbacks
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from axl.link.core import LinkCore, LinkState
from axl.link.protocol import LinkFactory
from axl.link.quic import (
    HANDSHAKE_TIMEOUT,
    INITIAL_WINDOW,
    KEEPALIVE_PERIOD,
    RECEIVE_WINDOW,
    SEND_BUFFER_HIGH,
    STREAM_TIMEOUT,
    QuicDriver,
    QuicServerPort,
    quic_configuration,
    suitable_addresses,
)
from axl.link.testing import RecordingHandler, identity, make_core
from axl.link.tls import LinkTLS
from tests.inprocess import InProcessNodesTestCase
from tests.transport_helpers import assert_link_and_bulk, free_udp_port

SERVER = ("127.0.0.1", 9001)
CLIENT = ("127.0.0.2", 40000)
TLS = {n: LinkTLS(identity(n)) for n in (1, 2)}


class _UDP:
    """The server port's transport: records datagrams."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def write(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", *SERVER)


@implementer(IPushProducer)
class _Producer:
    def __init__(self) -> None:
        self.events: list[str] = []

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.events.append("stop")


class Harness:
    """One client driver and one server port, with link cores on both ends."""

    def __init__(self, max_connections: int = 16, silent_client: bool = False) -> None:
        self.clock = Clock()
        self.server_handler, self.client_handler = RecordingHandler(), RecordingHandler()
        self.server_cores: list[LinkCore] = []
        self.closed: list[str] = []

        def server_core(addr: Any) -> LinkCore:
            core = make_core(identity(1), self.clock, self.server_handler, inbound=True,
                             uri=f"quic://{addr.host}:{addr.port}")  # fmt: skip
            self.server_cores.append(core)
            return core

        self.server = QuicServerPort(self.clock, TLS[1], LinkFactory(server_core), max_connections)
        self.udp = _UDP()
        self.server.makeConnection(self.udp)  # type: ignore[arg-type]
        self.client_out: list[bytes] = []
        self.client_core = make_core(identity(2), self.clock, self.client_handler, uri="quic://s:1")
        factory: Any = LinkFactory(lambda addr: self.client_core)
        if silent_client:
            factory = Factory.forProtocol(Protocol)  # opens stream 0 but never writes on it
        self.client = QuicDriver(
            QuicConnection(configuration=quic_configuration(TLS[2], is_client=True)),
            self.clock, lambda data, addr: self.client_out.append(data), SERVER, None,
            lambda driver, sid: factory.buildProtocol(driver.peer_address()),
            lambda driver, reason: self.closed.append(reason),
        )  # fmt: skip

    def pump(self, drop_to_server: bool = False) -> int:
        """
        Move datagrams both ways, advancing the clock 5 ms whenever none are in flight (aioquic
        paces its sending), until 20 ms pass with none; return how many moved.
        """
        moved = idle = 0
        for _ in range(100000):
            out, self.client_out = self.client_out, []
            back, self.udp.sent = self.udp.sent, []
            if not out and not back:
                idle += 1
                if idle > 4:
                    return moved
                self.clock.advance(0.005)
                continue
            idle = 0
            moved += len(out) + len(back)
            for data in out:
                if not drop_to_server:
                    self.server.datagramReceived(data, CLIENT)
            for data, addr in back:
                self.assertEqual(addr, CLIENT)
                self.client.datagram_received(data, SERVER)
        raise AssertionError("datagrams never settle")

    def assertEqual(self, a: Any, b: Any) -> None:
        assert a == b, (a, b)

    def up(self) -> None:
        self.client.connect()
        self.pump()


class QuicDriverTests(SynchronousTestCase):
    def test_configuration(self) -> None:
        """No ALPN, no SNI, no certificate verification, 60 s idle timeout, no datagrams."""
        config = quic_configuration(TLS[1], is_client=True)
        self.assertEqual((config.alpn_protocols, config.server_name), (None, None))
        self.assertEqual((config.idle_timeout, config.max_datagram_frame_size), (60.0, None))
        self.assertEqual(config.verify_mode, 0)

    def test_link_on_stream_zero(self) -> None:
        """The handshake completes, the client opens stream 0 with its meta, and both link
        cores come up with each other's keys; frames cross both ways."""
        h = Harness()
        h.up()
        self.assertEqual(h.client.stream_id, 0)
        [server_core] = h.server_cores
        self.assertEqual(server_core.uri, "quic://127.0.0.2:40000")
        self.assertTrue(h.client_core.is_up and server_core.is_up)
        self.assertEqual(server_core.remote_key, identity(2).public_key)
        self.assertEqual(h.client_core.remote_key, identity(1).public_key)
        h.client_core.send_frame(5, b"y" * 100_000)
        server_core.send_frame(6, b"z" * 3000)
        h.pump()
        self.assertEqual(h.server_handler.frames(), [(5, b"y" * 100_000)])
        self.assertEqual(h.client_handler.frames(), [(6, b"z" * 3000)])

    def test_close_fins_then_closes_connection(self) -> None:
        """Closing our link FINs the stream; the peer's link ends on that FIN and its QUIC
        connection is closed, so ours ends too (Go only FINs: we do not rely on it)."""
        h = Harness()
        h.up()
        [server_core] = h.server_cores
        h.client_core.close("test")
        h.pump()
        self.assertIs(server_core.state, LinkState.CLOSED)
        self.assertEqual(h.server.drivers, {})  # the server closed its QUIC connection
        h.clock.advance(3.0)  # our side: aioquic reports the close after its draining period
        self.assertTrue(h.client.closed)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_fin_only_peer(self) -> None:
        """A peer that FINs and keeps its connection open (Go) still gets its connection
        closed by us: our link ends on the FIN and we send CONNECTION_CLOSE."""
        h = Harness()
        h.up()
        h.client.connection.send_stream_data(0, b"", end_stream=True)
        h.client.transmit()
        h.pump()
        [server_core] = h.server_cores
        self.assertIs(server_core.state, LinkState.CLOSED)
        self.assertEqual(h.server.drivers, {})
        h.clock.advance(3.0)
        self.assertIs(h.client_core.state, LinkState.CLOSED)
        self.assertTrue(h.client.closed)
        self.assertEqual(h.closed, ["QUIC connection closed (error 0x0)"])

    def test_keepalive_ping(self) -> None:
        """After KEEPALIVE_PERIOD without sending, a PING goes out."""
        h = Harness()
        h.up()
        h.clock.advance(KEEPALIVE_PERIOD - 0.5)
        h.client_out.clear()
        h.udp.sent.clear()
        # the link's own keepalive timers may have sent; now stay quiet for the whole period
        h.clock.advance(KEEPALIVE_PERIOD)
        self.assertTrue(h.client_out or h.udp.sent, "no datagram after 20 s of silence")
        self.assertGreaterEqual(h.client._ping_id, 1)

    def test_silent_client_dropped(self) -> None:
        """A client that completes the QUIC handshake but sends no stream data is closed by
        the listener after STREAM_TIMEOUT (it cannot hold a connection slot)."""
        h = Harness(silent_client=True)
        h.up()
        self.assertEqual(len(set(h.server.drivers.values())), 1)
        self.assertEqual(h.server_cores, [])
        h.clock.advance(STREAM_TIMEOUT)
        h.pump()
        self.assertEqual(h.server.drivers, {})

    def test_handshake_timeout(self) -> None:
        """A server that never answers ends the dial after HANDSHAKE_TIMEOUT."""
        h = Harness()
        h.client.connect()
        h.pump(drop_to_server=True)
        h.clock.advance(HANDSHAKE_TIMEOUT)
        self.assertTrue(h.client.closed)
        self.assertIn("handshake not finished", h.closed[0])
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_send_backpressure(self) -> None:
        """A producer on the link transport is paused while over SEND_BUFFER_HIGH bytes wait
        unacknowledged, and resumed once the peer has taken them."""
        h = Harness()
        h.up()
        transport = h.client.link_transport
        assert transport is not None
        producer = _Producer()
        transport.registerProducer(producer, True)
        frames = SEND_BUFFER_HIGH // 100_000 + 1
        for _ in range(frames):
            h.client_core.send_frame(5, b"x" * 100_000)
        self.assertEqual(producer.events, ["pause"])
        for _ in range(200):
            h.pump()
            h.clock.advance(0.05)
            if producer.events[-1] == "resume":
                break
        self.assertEqual(producer.events, ["pause", "resume"])
        self.assertEqual(len(h.server_handler.frames()), frames)

    def test_link_flow_control(self) -> None:
        """
        The link registers as the QUIC stream's producer: while the peer acknowledges nothing
        and more than SEND_BUFFER_HIGH bytes wait in aioquic, the link counts what it writes,
        drops Traffic past its bound (and in the shared budget), and drops a peer that keeps
        not reading; once acknowledgements drain the buffer it is unblocked.
        """
        h = Harness()
        h.up()
        core = h.client_core
        transport = h.client.link_transport
        assert transport is not None
        self.assertIsNotNone(transport._producer)  # the LinkProtocol, since its first bytes
        for _ in range(SEND_BUFFER_HIGH // 100_000 + 1):
            core.send_frame(9, b"x" * 100_000)
        h.pump(drop_to_server=True)  # nothing reaches the server: nothing is acknowledged
        self.assertGreater(transport.buffered(), SEND_BUFFER_HIGH)
        for _ in range(15):
            core.send_frame(9, b"x" * 100_000)
        self.assertEqual(core.dropped_frames, 5)  # 10 x 100 KB fit in the 1 MiB bound
        self.assertGreater(core.blocked_bytes, 900_000)
        self.assertEqual(core._budget.used, core.blocked_bytes)
        for _ in range(200):
            h.pump()
            h.clock.advance(0.05)
            if not core.blocked_bytes:
                break
        self.assertEqual(core.blocked_bytes, 0)
        self.assertIs(core.state, LinkState.UP)
        self.assertLess(transport.buffered(), SEND_BUFFER_HIGH // 4)
        for _ in range(SEND_BUFFER_HIGH // 100_000 + 1):
            core.send_frame(9, b"x" * 100_000)
        h.pump(drop_to_server=True)
        for _ in range(30):  # not Traffic: past twice the bound the peer is dropped
            core.send_frame(4, b"a" * 100_000)
        self.assertIs(core.state, LinkState.CLOSED)
        self.assertIn("not reading", core.last_error)

    def test_receive_windows_slide(self) -> None:
        """
        In-order data moves the receive windows along, RECEIVE_WINDOW past what was delivered
        (aioquic alone doubles them as data arrives): after 5 MiB they are 6 MiB, not 8 or more.
        """
        h = Harness()
        h.up()
        for _ in range(50):
            h.client_core.send_frame(5, b"y" * 100_000)
            h.pump()
        [driver] = set(h.server.drivers.values())
        stream = driver.connection._streams[0]
        delivered = stream.receiver.starting_offset()
        self.assertGreater(delivered, 5_000_000)
        self.assertEqual(len(h.server_handler.frames()), 50)
        self.assertLessEqual(stream.max_stream_data_local, delivered + RECEIVE_WINDOW)
        limit = driver.connection._local_max_data
        self.assertLessEqual(limit.value, limit.used + RECEIVE_WINDOW)

    def test_out_of_order_data_bounded(self) -> None:
        """
        A peer that sends one byte ever further ahead on the link stream (leaving gaps aioquic
        keeps as zero bytes) makes the listener hold at most RECEIVE_WINDOW: the window does
        not grow while nothing is delivered.
        """
        h = Harness()
        h.up()
        [driver] = set(h.server.drivers.values())
        receiver = driver.connection._streams[0].receiver
        sender = h.client.connection._streams[0].sender
        for _ in range(4):  # each round: 900 KB written, all but the last byte "already sent"
            start = sender._buffer_stop
            h.client.connection.send_stream_data(0, bytes(900_000))
            sender._pending.subtract(start, start + 900_000 - 1)
            h.client.transmit()
            h.pump()
            h.clock.advance(1.0)
            h.pump()
        self.assertGreater(len(receiver._buffer), 800_000)  # the first gap is held
        self.assertLessEqual(len(receiver._buffer), RECEIVE_WINDOW)
        self.assertLessEqual(driver.connection.held(), RECEIVE_WINDOW)

    def test_no_link_small_window(self) -> None:
        """
        A connection whose link stream is not known yet (here: out-of-order bytes on another
        stream) holds at most INITIAL_WINDOW, however many rounds the peer tries.
        """
        h = Harness(silent_client=True)
        h.up()
        [driver] = set(h.server.drivers.values())
        sid = h.client.connection.get_next_available_stream_id()
        for _ in range(3):
            sender = h.client.connection._get_or_create_stream_for_send(sid).sender
            start = sender._buffer_stop
            h.client.connection.send_stream_data(sid, bytes(50_000))
            sender._pending.subtract(start, start + 50_000 - 1)
            h.client.transmit()
            h.pump()
        self.assertIsNone(driver.stream_id)
        self.assertGreater(driver.connection.held(), 40_000)
        self.assertLessEqual(driver.connection.held(), INITIAL_WINDOW)

    def test_connection_bound(self) -> None:
        """A listener keeps at most max_connections; further INITIALs are ignored."""
        h = Harness(max_connections=1)
        h.up()
        other: list[bytes] = []
        second = QuicDriver(
            QuicConnection(configuration=quic_configuration(TLS[2], is_client=True)),
            h.clock, lambda data, addr: other.append(data), SERVER, None,
            lambda d, s: None, lambda d, r: None,
        )  # fmt: skip
        second.connect()
        before = len(h.server.drivers)
        with capturedLogs() as events:
            for _ in range(5):  # a client retransmitting its INITIAL
                for data in other:
                    h.server.datagramReceived(data, ("127.0.0.3", 1))
        self.assertEqual(len(h.server.drivers), before)
        self.assertEqual(h.udp.sent, [])
        warnings = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 1)  # aggregated, not one per packet

    def test_version_negotiation(self) -> None:
        """An unknown QUIC version gets a version negotiation packet."""
        h = Harness()
        packet = bytes([0xC0]) + b"\x0a\x0a\x0a\x0a" + b"\x08" + b"d" * 8 + b"\x08" + b"s" * 8
        h.server.datagramReceived(packet + b"\x00" * 1200, CLIENT)
        [(data, addr)] = h.udp.sent
        self.assertEqual(data[1:5], b"\x00\x00\x00\x00")

    def test_garbage_ignored(self) -> None:
        """Undecodable datagrams are dropped without a reply or a connection."""
        h = Harness()
        h.server.datagramReceived(b"\x00", CLIENT)
        h.server.datagramReceived(b"\x40" + b"\x00" * 30, CLIENT)
        self.assertEqual((h.udp.sent, h.server.drivers), ([], {}))

    def test_suitable_addresses(self) -> None:
        """Address selection drops unspecified, multicast and 200::/7 (extras 2.1)."""
        hosts = ["0.0.0.0", "224.0.0.1", "200::1", "3ff::1", "::1", "10.0.0.1", "ff02::1"]
        self.assertEqual(suitable_addresses(hosts), ["::1", "10.0.0.1"])


class QuicSendTests(InProcessNodesTestCase):
    timeout = 240

    @inlineCallbacks
    def test_quic_send(self) -> Any:
        """16 MiB /send from B to A whose only link is quic://."""
        port = free_udp_port()
        a = self.start_node("A", {"Listen": [f"quic://127.0.0.1:{port}"]})
        b = self.start_node("B", {"Peers": [f"quic://127.0.0.1:{port}"]})
        yield assert_link_and_bulk(self, a, b, "quic")
