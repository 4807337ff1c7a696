# -*- test-case-name: tests.test_tcp_stack -*-
"""
Tests for L{axl.tcp.stack.TCPStack}: two (or more) stacks on an in-memory lossy link driven by
a Clock; demultiplexing, RST for unknown ports, ports, ISNs, local delivery, stopping.
"""

from __future__ import annotations

import os
import random

from twisted.internet.error import (
    ConnectionDone,
    ConnectionLost,
    ConnectionRefusedError,
)
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from axl.interfaces import IIPv6Layer
from axl.tcp.connection import CLOSED, ESTABLISHED, TIME_WAIT
from axl.tcp.segment import ACK, RST, SYN, build_tcp, decode_segment
from axl.tcp.stack import EPHEMERAL_PORTS, TCPStack
from axl.tcp.testing import FakeIPv6Layer, LossyNetwork, run_until

KEY_A, KEY_B, KEY_C = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32


class App:
    """Collects data; optionally closes after C{close_after} bytes."""

    def __init__(self, close_after: int | None = None) -> None:
        self.conn = None
        self.data = bytearray()
        self.established = self.eof = False
        self.reason: Exception | None = None
        self.close_after = close_after

    def tcp_established(self) -> None:
        self.established = True

    def tcp_data(self, data: bytes) -> None:
        self.data += data

    def tcp_eof(self) -> None:
        self.eof = True
        if self.conn is not None and self.conn.state != CLOSED:
            self.conn.close()

    def tcp_writable(self) -> None:
        pass

    def tcp_closed(self, reason: Exception) -> None:
        self.reason = reason


def make_net(clock: Clock, mtu: int = 65535, **kw: float) -> tuple[LossyNetwork, TCPStack, TCPStack]:
    net = LossyNetwork(clock, **kw)
    a = TCPStack(FakeIPv6Layer(KEY_A, net, mtu=mtu), KEY_A, clock)
    b = TCPStack(FakeIPv6Layer(KEY_B, net, mtu=mtu), KEY_B, clock)
    return net, a, b


def serve(stack: TCPStack, port: int) -> list[App]:
    apps: list[App] = []

    def accept(conn):
        app = App()
        app.conn = conn
        apps.append(app)
        return app

    stack.listen(port, accept)
    return apps


class TransferTests(SynchronousTestCase):
    """Bulk data across the lossy link."""

    def transfer(self, size: int, mtu: int, **kw: float) -> None:
        clock = Clock()
        net, a, b = make_net(clock, mtu=mtu, **kw)
        servers = serve(b, 80)
        client = App()
        conn = a.connect(KEY_B, 80, client)
        client.conn = conn
        data = random.Random(1).randbytes(size)
        self.assertTrue(run_until(clock, lambda: client.established, 60))
        conn.send(data)
        conn.close()
        self.assertTrue(run_until(clock, lambda: servers and servers[0].eof, 3600))
        self.assertTrue(bytes(servers[0].data) == data, "data corrupted")
        self.assertTrue(run_until(clock, lambda: not b.connections, 3600))
        self.assertIsInstance(servers[0].reason, ConnectionDone)
        for _ in range(130):
            clock.advance(1)
        self.assertEqual(a.connections, [])
        self.assertEqual(clock.getDelayedCalls(), [])
        return net

    def test_16mib_lossy(self) -> None:
        """16 MiB arrive intact under 10 % loss, 5 % duplication, 10 ms delay + 20 ms jitter."""
        net = self.transfer(16 * 1024 * 1024, 65535, loss=0.1, duplicate=0.05, delay=0.01,
                            jitter=0.02, seed=7)
        self.assertGreater(net.lost, 20)

    def test_1mib_lossy_small_mtu(self) -> None:
        """1 MiB at MTU 1280 (MSS 1220, as with gVisor) arrives intact under the same conditions."""
        self.transfer(1024 * 1024, 1280, loss=0.1, duplicate=0.05, delay=0.01, jitter=0.02, seed=3)

    def test_clean_link_both_ways(self) -> None:
        """Both directions at once on a clean link, then a clean close on both sides."""
        clock = Clock()
        _net, a, b = make_net(clock)
        servers = serve(b, 80)
        client = App()
        conn = a.connect(KEY_B, 80, client)
        client.conn = conn
        run_until(clock, lambda: client.established)
        up, down = os.urandom(3_000_000), os.urandom(2_000_000)
        conn.send(up)
        servers[0].conn.send(down)
        run_until(clock, lambda: len(servers[0].data) == len(up) and len(client.data) == len(down))
        self.assertEqual((bytes(servers[0].data), bytes(client.data)), (up, down))
        conn.close()
        run_until(clock, lambda: not b.connections)
        self.assertEqual(conn.state, TIME_WAIT)


class StackTests(SynchronousTestCase):
    """Demultiplexing, RST, ports, ISN, local delivery."""

    def test_fake_layer_provides_interface(self) -> None:
        """The in-memory IPv6 layer implements IIPv6Layer."""
        self.assertTrue(verifyObject(IIPv6Layer, FakeIPv6Layer(KEY_A)))

    def test_unknown_port_refused(self) -> None:
        """A SYN to a port without listener gets RST; the connect fails with ConnectionRefusedError."""
        clock = Clock()
        _net, a, b = make_net(clock)
        app = App()
        a.connect(KEY_B, 81, app)
        run_until(clock, lambda: app.reason is not None)
        self.assertIsInstance(app.reason, ConnectionRefusedError)
        self.assertEqual(b.stats["rst_sent"], 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_segment_for_no_connection_gets_rst(self) -> None:
        """An ACK for no connection is answered with RST <SEQ=SEG.ACK>; an RST gets nothing."""
        layer = FakeIPv6Layer(KEY_B, record=True)
        stack = TCPStack(layer, KEY_B, Clock())
        src, dst = FakeIPv6Layer(KEY_A).address, layer.address
        tcp = build_tcp(src, dst, 5000, 80, 1, 12345, ACK, 100)
        pkt = b"\x60\0\0\0" + len(tcp).to_bytes(2, "big") + b"\x06\x40" + src + dst + tcp
        stack.packet_received(KEY_A, pkt)
        rst = decode_segment(layer.sent[0][40:])
        self.assertEqual((rst.flags, rst.seq, rst.dport), (RST, 12345, 5000))
        tcp = build_tcp(src, dst, 5000, 80, 1, 0, RST, 0)
        stack.packet_received(KEY_A, b"\x60\0\0\0" + len(tcp).to_bytes(2, "big") + b"\x06\x40" + src + dst + tcp)
        self.assertEqual(len(layer.sent), 1)

    def test_malformed_and_bad_checksum_dropped(self) -> None:
        """
        Truncated packets and (when verifying) bad checksums are dropped and logged: one line at
        once, the rest counted in the minute's summary line.
        """
        layer = FakeIPv6Layer(KEY_B, record=True)
        clock = Clock()
        stack = TCPStack(layer, KEY_B, clock, verify_checksums=True)
        src, dst = FakeIPv6Layer(KEY_A).address, layer.address
        tcp = bytearray(build_tcp(src, dst, 5000, 80, 1, 0, SYN, 100))
        tcp[-1] ^= 0xFF
        good_len = len(tcp).to_bytes(2, "big")
        with capturedLogs() as logs:
            stack.packet_received(KEY_A, b"\x60\0\0\0" + good_len + b"\x06\x40" + src + dst + bytes(tcp))
            stack.packet_received(KEY_A, b"\x60\0\0\0" + good_len + b"\x06\x40" + src + dst)
            stack.packet_received(KEY_A, b"\x60\0\0\0\0\x14\x06\x40" + src + dst + b"\x00\x50" + bytes(10) + b"\xf0" + bytes(5))
            clock.advance(60)
        self.assertEqual(stack.stats["dropped"], 3)
        self.assertEqual(len(logs), 2)
        self.assertEqual(logs[1]["n"], 2)
        self.assertEqual(layer.sent, [])

    def test_syn_flood_from_one_key(self) -> None:
        """
        1000 SYNs from one key hold at most BACKLOG_PER_PEER half-open connections; another key
        still gets in; the drops cost two log lines a minute.
        """
        from axl.tcp.stack import BACKLOG_PER_PEER

        layer = FakeIPv6Layer(KEY_B, record=True)
        clock = Clock()
        stack = TCPStack(layer, KEY_B, clock)
        listener = stack.listen(80, lambda conn: App())
        src, dst = FakeIPv6Layer(KEY_A).address, layer.address
        with capturedLogs() as logs:
            for port in range(1000, 2000):
                tcp = build_tcp(src, dst, port, 80, 1, 0, SYN, 100)
                stack.packet_received(KEY_A, b"\x60\0\0\0" + len(tcp).to_bytes(2, "big") + b"\x06\x40" + src + dst + tcp)
            clock.advance(60)
        self.assertEqual(listener.half_open, BACKLOG_PER_PEER)
        self.assertLessEqual(len(logs), 2)
        other = FakeIPv6Layer(KEY_C).address
        tcp = build_tcp(other, dst, 1000, 80, 1, 0, SYN, 100)
        stack.packet_received(KEY_C, b"\x60\0\0\0" + len(tcp).to_bytes(2, "big") + b"\x06\x40" + other + dst + tcp)
        self.assertEqual(listener.half_open_by_peer, {KEY_A: BACKLOG_PER_PEER, KEY_C: 1})
        self.successResultOf(stack.stop(0))

    def test_ephemeral_ports_and_demux(self) -> None:
        """Three connections to the same port use distinct ephemeral ports; data stays apart."""
        clock = Clock()
        _net, a, b = make_net(clock)
        servers = serve(b, 80)
        clients = [App() for _ in range(3)]
        conns = [a.connect(KEY_B, 80, c) for c in clients]
        ports = {c.local_port for c in conns}
        self.assertEqual(len(ports), 3)
        self.assertTrue(all(EPHEMERAL_PORTS[0] <= p <= EPHEMERAL_PORTS[1] for p in ports))
        run_until(clock, lambda: all(c.established for c in clients))
        for i, c in enumerate(conns):
            c.send(bytes([i]) * 1000)
        run_until(clock, lambda: all(len(s.data) == 1000 for s in servers))
        self.assertEqual(sorted(bytes(s.data[:1]) for s in servers), [b"\0", b"\1", b"\2"])

    def test_isn_rfc6528(self) -> None:
        """ISNs differ per 4-tuple and advance with a 4-microsecond clock for the same tuple."""
        clock = Clock()
        _net, a, _b = make_net(clock)
        isn1 = a.connect(KEY_B, 80, App()).iss
        isn2 = a.connect(KEY_B, 80, App()).iss
        self.assertNotEqual(isn1, isn2)
        layer = FakeIPv6Layer(KEY_C)
        s1 = TCPStack(layer, KEY_C, clock, secret=b"k" * 32)
        c1 = s1._new_connection(1000, KEY_B, 80).iss
        clock.advance(1)
        c2 = s1._new_connection(1000, KEY_B, 81).iss
        c3 = s1._new_connection(1000, KEY_B, 80)
        self.assertEqual((c3.iss - c1) % 2**32, 250_000)
        self.assertNotEqual(c2, c3.iss)

    def test_listen_twice_fails(self) -> None:
        """A second listener on the same port raises CannotListenError."""
        from twisted.internet.error import CannotListenError
        stack = TCPStack(FakeIPv6Layer(KEY_A), KEY_A, Clock())
        stack.listen(80, lambda c: None)
        self.assertRaises(CannotListenError, stack.listen, 80, lambda c: None)
        self.assertRaises(CannotListenError, stack.listen, 0, lambda c: None)

    def test_rejected_by_accept(self) -> None:
        """If the listener's accept returns None the connection is reset."""
        clock = Clock()
        _net, a, b = make_net(clock)
        b.listen(80, lambda c: None)
        app = App()
        a.connect(KEY_B, 80, app)
        run_until(clock, lambda: app.reason is not None)
        self.assertIsInstance(app.reason, ConnectionLost)

    def test_connect_to_self(self) -> None:
        """A connection to our own key is delivered locally, both ways."""
        clock = Clock()
        a = TCPStack(FakeIPv6Layer(KEY_A), KEY_A, clock)
        servers = serve(a, 7000)
        client = App()
        conn = a.connect(KEY_A, 7000, client)
        client.conn = conn
        run_until(clock, lambda: client.established)
        conn.send(b"to myself")
        servers[0].conn.send(b"hello me")
        run_until(clock, lambda: len(client.data) == 8 and len(servers[0].data) == 9)
        self.assertEqual((bytes(servers[0].data), bytes(client.data)), (b"to myself", b"hello me"))

    def test_packet_too_big(self) -> None:
        """packet_too_big with a quoted packet of ours lowers that connection's MSS."""
        clock = Clock()
        _net, a, b = make_net(clock)
        serve(b, 80)
        conn = a.connect(KEY_B, 80, App())
        run_until(clock, lambda: conn.state == ESTABLISHED)
        src, dst = a.address, b.address
        tcp = build_tcp(src, dst, conn.local_port, 80, 0, 0, ACK, 0)
        quoted = b"\x60\0\0\0" + len(tcp).to_bytes(2, "big") + b"\x06\x40" + src + dst + tcp
        a.packet_too_big(1400, quoted)
        self.assertEqual(conn.smss, 1400 - 60 - 12)


class FailureTests(SynchronousTestCase):
    """Peers that vanish or repeat themselves."""

    def test_peer_vanishes(self) -> None:
        """
        When the peer disappears mid-transfer the connection fails with TCPTimedOutError after
        the back-off, is removed from the stack, and no timers are left.
        """
        from twisted.internet.error import TCPTimedOutError
        clock = Clock()
        net, a, b = make_net(clock)
        serve(b, 80)
        client = App()
        conn = a.connect(KEY_B, 80, client)
        run_until(clock, lambda: client.established)
        conn.send(os.urandom(200_000))
        net.down.add(KEY_B)
        self.assertTrue(run_until(clock, lambda: client.reason is not None, 3600))
        self.assertIsInstance(client.reason, TCPTimedOutError)
        self.assertGreater(clock.seconds(), 60)
        self.assertEqual(a.connections, [])
        net.cancel()
        b.stop(0)
        clock.advance(1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_duplicate_syn_one_connection(self) -> None:
        """A retransmitted SYN gets the SYN-ACK again and does not create a second connection."""
        layer = FakeIPv6Layer(KEY_B, record=True)
        stack = TCPStack(layer, KEY_B, Clock())
        stack.listen(80, lambda c: App())
        src, dst = FakeIPv6Layer(KEY_A).address, layer.address
        tcp = build_tcp(src, dst, 5000, 80, 77, 0, SYN, 65535)
        pkt = b"\x60\0\0\0" + len(tcp).to_bytes(2, "big") + b"\x06\x40" + src + dst + tcp
        stack.packet_received(KEY_A, pkt)
        stack.packet_received(KEY_A, pkt)
        self.assertEqual(len(stack.connections), 1)
        acks = [decode_segment(p[40:]) for p in layer.sent]
        self.assertEqual([(s.flags, s.ack) for s in acks], [(SYN | ACK, 78), (SYN | ACK, 78)])


class StopTests(SynchronousTestCase):
    """Stopping the stack."""

    def test_stop_closes_gracefully(self) -> None:
        """stop() sends FIN; an answering peer closes cleanly and no delayed calls remain."""
        clock = Clock()
        net, a, b = make_net(clock)
        servers = serve(b, 80)
        client = App()
        a.connect(KEY_B, 80, client)
        run_until(clock, lambda: client.established)
        d = a.stop()
        run_until(clock, lambda: d.called, 10)
        self.successResultOf(d)
        self.assertIsInstance(client.reason, ConnectionDone)
        self.assertTrue(servers[0].eof)
        net.cancel()
        b.stop()
        clock.advance(5)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stop_resets_after_grace(self) -> None:
        """If the peer has vanished, stop() resets the connections after the grace period."""
        clock = Clock()
        net, a, b = make_net(clock)
        serve(b, 80)
        client = App()
        conn = a.connect(KEY_B, 80, client)
        run_until(clock, lambda: client.established)
        conn.send(b"x" * 1000)
        net.down.add(KEY_B)
        d = a.stop(grace=2.0)
        clock.advance(1.9)
        self.assertNoResult(d)
        clock.advance(0.2)
        self.successResultOf(d)
        self.assertEqual(conn.state, CLOSED)
        self.assertEqual(a.connections, [])
        net.cancel()
        b.stop()
        clock.advance(3)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stop_with_time_wait_and_half_open(self) -> None:
        """TIME_WAIT and half-open connections end at once on stop(); nothing is left behind."""
        clock = Clock()
        net, a, b = make_net(clock)
        servers = serve(b, 80)
        client = App()
        conn = a.connect(KEY_B, 80, client)
        client.conn = conn
        run_until(clock, lambda: client.established and servers)
        conn.close()
        run_until(clock, lambda: conn.state == TIME_WAIT)
        layer = FakeIPv6Layer(KEY_C, record=True)
        c = TCPStack(layer, KEY_C, clock)
        c.listen(80, lambda conn: App())
        src, dst = FakeIPv6Layer(KEY_A).address, layer.address
        tcp = build_tcp(src, dst, 5000, 80, 1, 0, SYN, 100)
        c.packet_received(KEY_A, b"\x60\0\0\0" + len(tcp).to_bytes(2, "big") + b"\x06\x40" + src + dst + tcp)
        self.assertEqual(len(c.connections), 1)
        d1, d2 = a.stop(), c.stop()
        self.successResultOf(d1)
        self.successResultOf(d2)
        self.assertEqual((a.connections, c.connections), ([], []))
        self.assertEqual(decode_segment(layer.sent[-1][40:]).flags & RST, RST)
        net.cancel()
        b.stop(0)
        clock.advance(1)
        self.assertEqual(clock.getDelayedCalls(), [])
