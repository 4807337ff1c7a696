# -*- test-case-name: tests.test_tcp_transport -*-
"""
Tests for L{axl.tcp.transport.OverlayTransport}: ITCPTransport behaviour, producer/consumer
backpressure on both the send buffer and the receive window, half-close, abort.
"""

from __future__ import annotations

import io
import random

from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IPushProducer,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.protocols.basic import FileSender
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from axl.crypto import addr_for_key
from axl.tcp.common import TCPConfig
from axl.tcp.endpoints import OverlayClientEndpoint, OverlayServerEndpoint
from axl.tcp.reassembly import OOO_SEGMENT_COST
from axl.tcp.segment import decode_segment
from axl.tcp.seq import MASK, seq_diff
from axl.tcp.stack import TCPStack
from axl.tcp.testing import FakeIPv6Layer, LossyNetwork, run_until
from tests.test_tcp_endpoints import KEY_A, KEY_B, Collector, make_pair, wait


def connected_pair(server_protocol: type[Protocol] = Collector, **kw: float):
    """A client Collector connected to a server protocol over two in-memory stacks."""
    clock, net, a, b = make_pair(**kw)
    servers: list[Protocol] = []

    class F(Factory):
        def buildProtocol(self, addr):
            p = server_protocol()
            servers.append(p)
            return p

    OverlayServerEndpoint(b, 80).listen(F())
    client = Collector()
    d = connectProtocol(OverlayClientEndpoint(a, KEY_B, 80), client)
    wait(clock, d)
    run_until(clock, lambda: bool(servers))
    return clock, net, a, b, client, servers[0]


def configured_pair(cfg: TCPConfig, delay: float):
    """A client and a server Collector on two stacks with C{cfg}, C{delay} apart each way."""
    clock = Clock()
    net = LossyNetwork(clock, delay=delay)
    a = TCPStack(FakeIPv6Layer(KEY_A, net), KEY_A, clock, config=cfg)
    b = TCPStack(FakeIPv6Layer(KEY_B, net), KEY_B, clock, config=cfg)
    server = Collector()
    OverlayServerEndpoint(b, 80).listen(Factory.forProtocol(lambda: server))
    client = Collector()
    wait(clock, connectProtocol(OverlayClientEndpoint(a, KEY_B, 80), client))
    run_until(clock, lambda: server.transport is not None)
    return clock, client, server


@implementer(IPushProducer)
class ChunkProducer:
    """Writes C{chunk}-sized pieces on every clock tick while not paused, up to C{total}."""

    def __init__(self, clock, transport, total: int, chunk: int = 65536) -> None:
        self.clock, self.transport, self.total, self.chunk = clock, transport, total, chunk
        self.sent = 0
        self.paused = False
        self.pauses = 0
        self.max_buffered = 0
        self.max_limit = 0
        self.stopped = False
        self._call = clock.callLater(0, self._tick)

    def _tick(self) -> None:
        self._call = None
        while not self.paused and self.sent < self.total:
            n = min(self.chunk, self.total - self.sent)
            self.transport.write(bytes([self.sent // self.chunk % 256]) * n)
            self.sent += n
            self.max_buffered = max(self.max_buffered, self.transport.conn.send_buffered)
            self.max_limit = max(self.max_limit, self.transport.conn.send_limit)
        if self.sent >= self.total:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.paused = False
        if self._call is None:
            self._call = self.clock.callLater(0, self._tick)

    def stopProducing(self) -> None:
        self.stopped = True


class TransportTests(SynchronousTestCase):
    """The transport as a protocol sees it."""

    def test_interfaces(self) -> None:
        """The transport provides ITCPTransport, IConsumer and IPushProducer."""
        _clock, _net, _a, _b, client, _server = connected_pair()
        for iface in (ITCPTransport, IConsumer, IPushProducer):
            self.assertTrue(verifyObject(iface, client.transport), iface)
        self.assertTrue(client.transport.getTcpNoDelay())
        self.assertRaises(TypeError, client.transport.write, "text")

    def test_streaming_producer_backpressure(self) -> None:
        """
        A streaming producer writing 32 MiB is paused whenever more than the connection's send
        limit waits, and resumed as it drains; memory stays bounded and every byte arrives in
        order.
        """
        clock, _net, a, _b, client, server = connected_pair(delay=0.005)
        total = 32 * 1024 * 1024
        producer = ChunkProducer(clock, client.transport, total)
        client.transport.registerProducer(producer, True)
        run_until(clock, lambda: server.reason is not None, 600)
        self.assertEqual(len(server.data), total)
        self.assertEqual(server.data[::65536], bytes(i % 256 for i in range(512)))
        self.assertGreater(producer.pauses, 1)
        self.assertLessEqual(producer.max_buffered, producer.max_limit + 65536)
        self.assertLessEqual(producer.max_limit, a.config.snd_buf_max)
        server.reason.trap(ConnectionDone)

    def test_send_limit_autotunes(self) -> None:
        """
        On a path whose windows allow more than snd_buf in flight, the pause threshold grows
        to twice that flight, but never past snd_buf_max; on a closed window it stays at
        snd_buf.
        """
        cfg = TCPConfig(snd_buf=256 * 1024, snd_buf_max=1024 * 1024)
        clock, client, server = configured_pair(cfg, delay=0.02)
        conn = client.transport.conn
        self.assertEqual(conn.send_limit, cfg.snd_buf)   # the SYN's window (64 KiB) caps it
        cwnd, peer_wnd = conn.cc.cwnd, conn._max_snd_wnd
        conn._max_snd_wnd = 1 << 30
        conn.cc.cwnd = 100                               # so does a small cwnd
        self.assertEqual(conn.send_limit, cfg.snd_buf)
        conn.cc.cwnd, conn._max_snd_wnd = cwnd, peer_wnd
        total = 8 * 1024 * 1024
        producer = ChunkProducer(clock, client.transport, total)
        client.transport.registerProducer(producer, True)
        run_until(clock, lambda: server.reason is not None, 600)
        self.assertEqual(len(server.data), total)
        self.assertEqual(producer.max_limit, cfg.snd_buf_max)
        self.assertGreater(producer.max_buffered, cfg.snd_buf + 65536)
        self.assertLessEqual(producer.max_buffered, cfg.snd_buf_max + 65536)

    def test_pull_producer(self) -> None:
        """A pull producer (FileSender) streams a 3 MiB file; its Deferred fires at the end."""
        clock, _net, _a, _b, client, server = connected_pair(delay=0.002)
        blob = bytes(range(256)) * (3 * 4096)
        d = FileSender().beginFileTransfer(io.BytesIO(blob), client.transport)
        wait(clock, d, 600)
        self.successResultOf(d)
        run_until(clock, lambda: len(server.data) == len(blob), 600)
        self.assertEqual(bytes(server.data), blob)

    def test_receive_backpressure(self) -> None:
        """
        A protocol that pauses its transport stops receiving: the window closes and the
        sender stalls; resuming delivers everything.
        """
        clock, _net, _a, b, client, server = connected_pair(delay=0.001)
        server.transport.pauseProducing()
        blob = b"z" * (b.config.rcv_buf * 3)
        client.transport.write(blob)
        run_until(clock, lambda: False, 5)
        self.assertEqual(len(server.data), 0)
        conn = client.transport.conn
        self.assertEqual(conn.snd_wnd, 0)
        self.assertGreater(conn.send_buffered, b.config.rcv_buf)
        server.transport.resumeProducing()
        run_until(clock, lambda: len(server.data) == len(blob), 600)
        self.assertEqual(len(server.data), len(blob))

    def test_receive_window_autotunes(self) -> None:
        """
        While the app keeps up, the receive window grows from rcv_buf towards twice what a
        round trip carries, never past rcv_buf_max; a receiver that is not read keeps rcv_buf.
        """
        cfg = TCPConfig(rcv_buf=256 * 1024, rcv_buf_max=2 * 1024 * 1024)
        clock, client, server = configured_pair(cfg, delay=0.02)
        spaces: list[int] = []
        read = server.dataReceived

        def watch(data: bytes) -> None:
            spaces.append(server.transport.conn.rcv_space)
            read(data)

        server.dataReceived = watch  # type: ignore[method-assign]
        blob = bytes(range(256)) * (16 * 4096)
        client.transport.write(blob)
        run_until(clock, lambda: len(server.data) == len(blob), 600)
        self.assertEqual(bytes(server.data), blob)
        self.assertEqual(spaces[0], cfg.rcv_buf)
        self.assertEqual(max(spaces), cfg.rcv_buf_max)
        self.assertEqual(spaces, sorted(spaces))                 # it never shrank
        self.assertGreater(len(set(spaces)), 2)                  # it grew in steps

        clock, client, server = configured_pair(cfg, delay=0.02)
        server.transport.pauseProducing()
        client.transport.write(blob)
        run_until(clock, lambda: False, 5)
        conn = server.transport.conn
        self.assertEqual(conn.rcv_space, cfg.rcv_buf)
        self.assertLessEqual(len(conn._rpending), cfg.rcv_buf)

    def test_half_close(self) -> None:
        """
        loseWriteConnection sends FIN; an IHalfCloseableProtocol server gets readConnectionLost,
        can still answer, and the client reads the answer before the connection ends.
        """

        @implementer(IHalfCloseableProtocol)
        class Answerer(Collector):
            def readConnectionLost(self) -> None:
                self.transport.write(b"answer to " + bytes(self.data))
                self.transport.loseConnection()

            def writeConnectionLost(self) -> None:
                pass

        clock, _net, _a, _b, client, _server = connected_pair(Answerer)
        client.transport.write(b"question")
        client.transport.loseWriteConnection()
        client.transport.write(b"ignored")
        run_until(clock, lambda: client.reason is not None)
        self.assertEqual(bytes(client.data), b"answer to question")
        client.reason.trap(ConnectionDone)

    def test_write_connection_lost(self) -> None:
        """
        After loseWriteConnection a half-closeable protocol is told writeConnectionLost on the
        next clock turn (never inside the call), and still reads until the peer closes.
        """

        @implementer(IHalfCloseableProtocol)
        class HalfClient(Collector):
            write_lost = False

            def readConnectionLost(self) -> None:
                self.transport.loseConnection()

            def writeConnectionLost(self) -> None:
                self.write_lost = True

        @implementer(IHalfCloseableProtocol)
        class Quiet(Collector):
            def readConnectionLost(self) -> None:
                pass

            def writeConnectionLost(self) -> None:
                pass

        clock, _net, _a, _b, client, server = connected_pair(Quiet)
        half = HalfClient()
        client.transport.protocol = half
        half.transport = client.transport
        client.transport.loseWriteConnection()
        self.assertFalse(half.write_lost)
        clock.advance(0)
        self.assertTrue(half.write_lost)
        server.transport.write(b"late reply")
        server.transport.loseConnection()
        run_until(clock, lambda: half.reason is not None)
        self.assertEqual(bytes(half.data), b"late reply")
        half.reason.trap(ConnectionDone)

    def test_peer_close_closes_plain_protocol(self) -> None:
        """A protocol without half-close support sees connectionLost(ConnectionDone) on peer FIN."""
        clock, _net, _a, _b, client, server = connected_pair()
        server.transport.write(b"bye")
        server.transport.loseConnection()
        server.transport.write(b"too late")
        run_until(clock, lambda: client.reason is not None and server.reason is not None)
        self.assertEqual(bytes(client.data), b"bye")
        client.reason.trap(ConnectionDone)
        server.reason.trap(ConnectionDone)

    def test_abort(self) -> None:
        """abortConnection resets: the peer's protocol loses the connection (not cleanly)."""
        clock, _net, _a, _b, client, server = connected_pair()
        client.transport.abortConnection()
        run_until(clock, lambda: server.reason is not None)
        server.reason.trap(ConnectionLost)
        self.assertIsNotNone(client.reason)

    def test_lose_connection_waits_for_producer(self) -> None:
        """loseConnection with a registered producer closes only once it unregisters."""
        clock, _net, _a, _b, client, server = connected_pair()

        @implementer(IPushProducer)
        class Idle:
            def pauseProducing(self): pass
            def resumeProducing(self): pass
            def stopProducing(self): pass

        client.transport.registerProducer(Idle(), True)
        self.assertRaises(RuntimeError, client.transport.registerProducer, Idle(), True)
        client.transport.loseConnection()
        run_until(clock, lambda: False, 1)
        self.assertIsNone(server.reason)
        client.transport.unregisterProducer()
        run_until(clock, lambda: server.reason is not None)
        server.reason.trap(ConnectionDone)

    def test_producer_stopped_on_disconnect(self) -> None:
        """A registered producer is told stopProducing when the connection is lost."""
        clock, _net, _a, _b, client, server = connected_pair()
        producer = ChunkProducer(clock, client.transport, 0)
        producer._call.cancel()
        client.transport.registerProducer(producer, True)
        server.transport.abortConnection()
        run_until(clock, lambda: client.reason is not None)
        self.assertTrue(producer.stopped)

    def test_when_acknowledged(self) -> None:
        """
        when_acknowledged fires once the peer's TCP acknowledged everything written before the
        call (not merely when written), at once if nothing is outstanding, and fails with the
        loss reason if the connection ends first.
        """
        clock, net, _a, _b, client, server = connected_pair(delay=0.01)
        self.successResultOf(client.transport.when_acknowledged())
        client.transport.write(b"x" * 300_000)
        d = client.transport.when_acknowledged()
        clock.advance(0.015)
        self.assertNoResult(d)
        run_until(clock, lambda: d.called, 10)
        self.successResultOf(d)
        self.assertEqual(len(server.data), 300_000)
        net.down.add(KEY_B)
        client.transport.write(b"lost")
        d2 = client.transport.when_acknowledged()
        client.transport.abortConnection()
        self.failureResultOf(d2)


class PausedCollector(Collector):
    """A Collector whose app stops reading as soon as it is connected."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.transport.pauseProducing()


KEY_C = bytes([3]) * 32
GAP = 1000          # the stream offset a peer that leaves a gap open never sends


class ReceiveBudgetTests(SynchronousTestCase):
    """
    L{TCPConfig.rcv_budget} (C{tcp_rcv_budget_bytes}): what a stack holds undelivered (for
    apps that are not reading, and out of order on every connection) stays within one
    stack-wide budget; readers still make progress.

    Stack B is checked after every packet it receives: the budget's count equals the bytes its
    connections hold, and every SACK block B sends names data B holds.
    """

    cfg = TCPConfig(rcv_buf=256 * 1024, rcv_buf_max=2 * 1024 * 1024, rcv_budget=600 * 1024)

    def setUp(self) -> None:
        self.clock = Clock()
        net = LossyNetwork(self.clock, delay=0.005)
        self.a = TCPStack(FakeIPv6Layer(KEY_A, net), KEY_A, self.clock, config=self.cfg)
        layer_b = FakeIPv6Layer(KEY_B, net)
        self.errors: list[str] = []
        self.gaps_open: set[bytes] = set()      # keys whose byte GAP (and so all after) is lost
        self.lossy: dict[bytes, random.Random] = {}     # keys losing 10 % of data segments
        self._watch(layer_b)
        self.b = TCPStack(layer_b, KEY_B, self.clock, config=self.cfg)
        self.c = TCPStack(FakeIPv6Layer(KEY_C, net), KEY_C, self.clock, config=self.cfg)
        self.dropped_by: dict[bytes, int] = {}
        on_drop = self.b.rcv_budget.on_drop
        assert on_drop is not None

        def count_drop(key: bytes, n: int, why: str) -> None:
            self.dropped_by[key] = self.dropped_by.get(key, 0) + n
            on_drop(key, n, why)

        self.b.rcv_budget.on_drop = count_drop
        self.paused: list[Collector] = []
        self.readers: list[Collector] = []
        OverlayServerEndpoint(self.b, 80).listen(Factory.forProtocol(self._paused))
        OverlayServerEndpoint(self.b, 81).listen(Factory.forProtocol(self._reader))
        self.held_max = 0

    def _watch(self, layer: FakeIPv6Layer) -> None:
        """Filter what B receives (gaps kept open, losses) and check B after every packet."""
        deliver, send = layer.deliver, layer.send_ipv6
        keys = {addr_for_key(k): k for k in (KEY_A, KEY_C)}

        def lost(source_key: bytes, packet: bytes) -> bool:
            seg = decode_segment(memoryview(packet)[40:])
            conn = self.b._conns.get((seg.dport, source_key, seg.sport))
            if conn is None or not seg.payload:
                return False
            if source_key in self.gaps_open:
                start = seq_diff(seg.seq, (conn.irs + 1) & MASK)
                if start <= GAP < start + len(seg.payload):
                    return True
            rng = self.lossy.get(source_key)
            return rng is not None and rng.random() < 0.1

        def filtered(source_key: bytes, packet: bytes) -> None:
            if not lost(source_key, packet):
                deliver(source_key, packet)
            held = self._held()
            if held != self.b.rcv_budget.used:
                self.errors.append(f"budget counts {self.b.rcv_budget.used}, {held} held")

        def sent(packet: bytes) -> None:
            seg = decode_segment(memoryview(packet)[40:])
            conn = self.b._conns.get((seg.sport, keys[bytes(packet[24:40])], seg.dport))
            for lo, hi in seg.sack:
                assert conn is not None
                a, b = seq_diff(lo, conn.irs + 1), seq_diff(hi, conn.irs + 1)
                if not any(r[0] <= a < b <= r[1] for r in conn.ooo.ranges):
                    self.errors.append(f"SACKed [{a}, {b}) but holds {conn.ooo.ranges}")
            send(packet)

        layer.deliver = filtered  # type: ignore[method-assign]
        layer.send_ipv6 = sent  # type: ignore[method-assign]

    def _paused(self) -> Collector:
        self.paused.append(PausedCollector())
        return self.paused[-1]

    def _reader(self) -> Collector:
        self.readers.append(Collector())
        return self.readers[-1]

    def _connect(self, port: int, stack: TCPStack | None = None) -> Collector:
        client = Collector()
        wait(self.clock, connectProtocol(OverlayClientEndpoint(stack or self.a, KEY_B, port), client))
        return client

    def _held(self) -> int:
        """Bytes stack B holds undelivered (pending or out of order), all connections."""
        held = sum(len(c._rpending) + sum(len(s) + OOO_SEGMENT_COST for s in c.ooo.segments.values())
                   for c in self.b._conns.values() if c.state)
        self.held_max = max(self.held_max, held)
        return held

    def _advance(self, done, seconds: float) -> bool:
        return run_until(self.clock, lambda: self._held() < 0 or done(), seconds)

    def test_paused_readers_share_the_budget(self) -> None:
        """
        Six connections whose apps never read, 512 KiB each (3 MiB against a 600 KiB budget):
        stack B never holds more than the budget, the drops are logged aggregated, and once
        the apps read again every byte arrives intact and in order.
        """
        blobs = [bytes([i]) * 1000 + bytes(range(256)) * 2044 for i in range(6)]
        clients = [self._connect(80) for _ in blobs]
        for client, blob in zip(clients, blobs):
            client.transport.write(blob)
        self._advance(lambda: False, 30)
        budget = self.b.rcv_budget
        self.assertLessEqual(self.held_max, self.cfg.rcv_budget)
        self.assertGreater(self.held_max, self.cfg.rcv_budget // 2)      # it was used
        self.assertEqual(budget.used, sum(len(c._rpending) for c in self.b._conns.values()))
        self.assertEqual(sum(len(s.data) for s in self.paused), 0)
        self.assertGreater(budget.dropped, 0)                     # the windows raced the budget
        self.assertGreater(self.b.drops.total, 0)                 # and it was logged
        for server in self.paused:
            server.transport.resumeProducing()
        self._advance(lambda: all(len(s.data) == 524_264 for s in self.paused), 600)
        self.assertEqual(sorted(bytes(s.data) for s in self.paused), sorted(blobs))
        self.assertEqual(budget.used, 0)
        self.assertLessEqual(self.held_max, self.cfg.rcv_budget)

    def test_reader_keeps_its_window(self) -> None:
        """
        With the budget used up by paused connections, a connection whose app reads still
        auto-tunes up to C{rcv_buf_max} and gets its 8 MiB through.
        """
        for client in [self._connect(80) for _ in range(4)]:
            client.transport.write(b"p" * 512 * 1024)
        self._advance(lambda: False, 10)
        self.assertGreater(self.b.rcv_budget.used, self.cfg.rcv_budget - 256 * 1024)
        client = self._connect(81)
        self._advance(lambda: bool(self.readers), 10)
        blob = bytes(range(256)) * (32 * 1024)
        client.transport.write(blob)
        spaces: list[int] = []
        self._advance(lambda: spaces.append(self.readers[0].transport.conn.rcv_space) or
                  len(self.readers[0].data) == len(blob), 600)
        self.assertEqual(bytes(self.readers[0].data), blob)
        self.assertEqual(max(spaces), self.cfg.rcv_buf_max)
        self.assertLessEqual(self.held_max, self.cfg.rcv_budget)

    def tearDown(self) -> None:
        self.assertEqual(self.errors[:3], [])

    def _flood(self, n: int) -> list[Collector]:
        """
        A's C{n} connections to B's readers each send L{GAP} bytes (which open B's full
        window), then 256 KiB whose first segment is lost for good (A leaves the gap open): B
        could hold up to a window (256 KiB) out of order on each.
        """
        self.gaps_open.add(KEY_A)
        clients = [self._connect(81) for _ in range(n)]
        for client in clients:
            client.transport.write(b"h" * GAP)
        self._advance(lambda: all(len(r.data) == GAP for r in self.readers), 10)
        for i, client in enumerate(clients):
            client.transport.write(bytes([i]) * 256 * 1024)
        self._advance(lambda: False, 20)
        self.assertEqual([len(r.data) for r in self.readers], [GAP] * n)
        return clients

    def test_out_of_order_flood_stays_within_budget(self) -> None:
        """
        Twelve connections holding gaps open (3 MiB of windows against a 600 KiB budget): B
        never holds more than the budget, the out-of-order data beyond it is dropped (never
        SACKed, see L{_watch}) and logged aggregated; once A resends the gaps every byte
        arrives intact and the budget is free again.
        """
        self._flood(12)
        budget = self.b.rcv_budget
        self.assertLessEqual(self.held_max, self.cfg.rcv_budget)
        self.assertGreater(self.held_max, self.cfg.rcv_budget - 64 * 1024)   # it was used
        self.assertGreater(budget.dropped, 0)
        self.assertGreater(self.b.drops.total, 0)
        self.gaps_open.clear()
        self._advance(lambda: all(len(r.data) == GAP + 256 * 1024 for r in self.readers), 600)
        self.assertEqual(sorted(bytes(r.data) for r in self.readers),
                         [b"h" * GAP + bytes([i]) * 256 * 1024 for i in range(12)])
        self.assertEqual(budget.used, 0)
        self.assertLessEqual(self.held_max, self.cfg.rcv_budget)

    def test_budget_returns_to_zero_when_connections_end(self) -> None:
        """
        Connections holding out-of-order data give it back however they end: our app aborts,
        the peer resets, our app closes (FIN_WAIT_2 times out), the peer closes, the stack stops.
        """
        clients = self._flood(6)
        budget = self.b.rcv_budget
        conns = [r.transport.conn for r in self.readers]
        self.assertTrue(all(c.ooo.held for c in conns))
        before, first = budget.used, conns[0].ooo.held
        self.readers[0].transport.abortConnection()
        self.assertEqual((budget.used, conns[0].ooo.held), (before - first, 0))
        clients[1].transport.abortConnection()
        self.readers[2].transport.loseConnection()
        clients[3].transport.loseConnection()
        self._advance(lambda: False, 120)
        self.assertEqual([c.state == 0 for c in conns], [True, True, True, False, False, False])
        self.assertEqual(budget.used, sum(c.ooo.held for c in conns[3:]))
        self.assertGreater(budget.used, 0)
        self.b.stop()
        self._advance(lambda: not self.b._conns, 10)
        self.assertEqual((self.b._conns, budget.used), ({}, 0))

    def test_reader_progresses_while_budget_is_held(self) -> None:
        """
        While A's gaps and a paused connection hold the whole budget (nothing left), C sends
        2 MiB to a reading app with 10 % of its segments lost: C's out-of-order data finds no
        room (dropped, resent), yet its in-order data is delivered at once, never held, and the
        transfer completes intact.
        """
        self._flood(12)
        soak = self._connect(80, self.c)                 # a paused app takes what is left
        soak.transport.write(b"s" * 64 * 1024)
        self._advance(lambda: False, 1)
        self.assertEqual(self.b.rcv_budget.used, self.cfg.rcv_budget)
        dropped = self.dropped_by.get(KEY_C, 0)
        self.lossy[KEY_C] = random.Random(7)
        client = self._connect(81, self.c)
        self._advance(lambda: len(self.readers) == 13, 1)
        reader = self.readers[-1]
        blob = bytes(range(256)) * 8 * 1024
        client.transport.write(blob)
        self.assertTrue(self._advance(lambda: len(reader.data) == len(blob), 30))
        self.assertEqual(bytes(reader.data), blob)
        self.assertEqual(self.b.rcv_budget.used, self.cfg.rcv_budget)   # held all along
        self.assertGreater(self.dropped_by[KEY_C], dropped)      # it did meet a full budget
        self.assertLessEqual(self.held_max, self.cfg.rcv_budget)
