"""Tests for L{axl.streams.listener}: the inbound port-7000 protocol and its limits."""

from __future__ import annotations

import json
import struct
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from axl.overlay_address import OverlayAddress
from axl.streams.framing import encode_message
from axl.streams.interfaces import IStream
from axl.streams.listener import MessageFactory, peer_key_of
from axl.streams.recv_queue import Message, RecvQueue
from axl.streams.registry import StreamRegistry

A, B = b"a" * 32, b"b" * 32


class _HalfCloseTransport(StringTransport):
    """A StringTransport that can shut its write side (as the overlay TCP can)."""

    write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


@implementer(IStream)
class EchoStream:
    name = "echo"

    def __init__(self) -> None:
        self.pending: list[Deferred[bytes | None]] = []

    def matches(self, envelope: dict[str, Any]) -> bool:
        return "echo" in envelope

    def handle(
        self, envelope: dict[str, Any], peer_key: bytes
    ) -> Deferred[bytes | None]:
        d: Deferred[bytes | None] = Deferred()
        self.pending.append(d)
        return d

    def error_reply(self, envelope: dict[str, Any], message: str) -> bytes:
        return b"error"


class ListenerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.queue = RecvQueue(self.clock, max_messages=2)
        self.registry = StreamRegistry(self.queue, self.clock)
        self.echo = EchoStream()
        self.registry.add(self.echo)
        self.factory = MessageFactory(
            self.registry,
            self.clock,
            max_message_size=100,
            max_conns=3,
            max_conns_per_peer=2,
            read_timeout=10,
            idle_timeout=60,
        )

    def connect(self, key: bytes = A) -> tuple[Any, StringTransport]:
        proto = self.factory.buildProtocol(OverlayAddress(key, 1))
        transport = StringTransport(peerAddress=OverlayAddress(key, 40000))
        proto.makeConnection(transport)
        return proto, transport

    def connect_half_closeable(self, key: bytes = A) -> tuple[Any, _HalfCloseTransport]:
        proto = self.factory.buildProtocol(OverlayAddress(key, 1))
        transport = _HalfCloseTransport(peerAddress=OverlayAddress(key, 40000))
        proto.makeConnection(transport)
        return proto, transport

    def test_several_frames_queued_with_full_sender_key(self) -> None:
        """Several messages on one connection are queued in order with the sender's full key."""
        proto, t = self.connect()
        proto.dataReceived(encode_message(b"one") + encode_message(b""))
        self.assertEqual(
            [self.queue.get(), self.queue.get()], [Message(A, b"one"), Message(A, b"")]
        )
        self.assertFalse(t.disconnecting)

    def test_reply_on_same_connection(self) -> None:
        """A stream's reply is written back as one frame; reading pauses while the stream works."""
        proto, t = self.connect()
        proto.dataReceived(encode_message(b'{"echo": 1}') + encode_message(b"after"))
        self.assertEqual(t.producerState, "paused")
        self.assertEqual(len(self.queue), 0)
        self.echo.pending[0].callback(b"pong")
        self.assertEqual(t.value(), encode_message(b"pong"))
        self.assertEqual(t.producerState, "producing")
        self.assertEqual(self.queue.get(), Message(A, b"after"))

    def test_oversize_closes(self) -> None:
        """A length above max_message_size closes the connection without queueing anything."""
        proto, t = self.connect()
        proto.dataReceived(b"\x00\x00\x00\x65")
        self.assertTrue(t.disconnecting)
        self.assertEqual(len(self.queue), 0)

    def test_oversize_answered_with_one_error_frame(self) -> None:
        """
        An oversize header gets exactly one reply frame {"error", "max_message_size"} and our
        write side is shut (FIN); the rest of the refused message is read and thrown away,
        and the connection closes once its declared length has gone by. Nothing is queued.
        """
        proto, t = self.connect_half_closeable()
        proto.dataReceived(b"\x00\x00\x00\x65" + b"x" * 50)
        body = (
            b'{"error":"message of 101 bytes exceeds the receiver\'s max_message_size of 100 bytes",'
            b'"max_message_size":100}'
        )
        self.assertEqual(t.value(), struct.pack("!I", len(body)) + body)
        self.assertEqual((t.write_closed, t.disconnecting), (True, False))
        self.assertEqual(t.producerState, "producing")  # still read: the sender can finish
        proto.dataReceived(b"x" * 50)
        self.assertFalse(t.disconnecting)
        proto.dataReceived(b"x" + encode_message(b"late"))
        self.assertTrue(t.disconnecting)
        self.assertEqual(t.value(), struct.pack("!I", len(body)) + body)
        proto.connectionLost()
        self.assertEqual(len(self.queue), 0)
        self.assertEqual(self.factory.total, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_oversize_drain_stalls(self) -> None:
        """A sender that stops sending the refused message is closed after the read timeout."""
        proto, t = self.connect_half_closeable()
        proto.dataReceived(b"\x00\x01\x00\x00")
        self.clock.advance(self.factory.read_timeout - 0.5)
        proto.dataReceived(b"y" * 10)  # progress resets the timer
        self.clock.advance(self.factory.read_timeout - 0.5)
        self.assertFalse(t.disconnecting)
        self.clock.advance(1)
        self.assertTrue(t.disconnecting)

    def test_oversize_keeps_earlier_messages(self) -> None:
        """Messages complete before the oversize header (earlier reads and the same read) are queued."""
        proto, t = self.connect()
        proto.dataReceived(encode_message(b"first"))
        proto.dataReceived(encode_message(b"second") + b"\xff\xff\xff\xff")
        self.assertTrue(t.disconnecting)
        self.assertEqual(
            [self.queue.get(), self.queue.get()], [Message(A, b"first"), Message(A, b"second")]
        )
        self.assertEqual(
            json.loads(t.value()[4:]),
            {
                "error": "message of 4294967295 bytes exceeds the receiver's max_message_size of 100 bytes",
                "max_message_size": 100,
            },
        )

    def test_connection_limits(self) -> None:
        """Connections beyond the per-peer cap, or the total cap, are closed at once; slots come back."""
        p1, t1 = self.connect(A)
        _, t2 = self.connect(A)
        p3, t3 = self.connect(A)
        self.assertEqual(
            (t1.disconnecting, t2.disconnecting, t3.disconnecting), (False, False, True)
        )
        _, t4 = self.connect(B)
        _, t5 = self.connect(B)
        self.assertEqual((t4.disconnecting, t5.disconnecting), (False, True))
        p3.connectionLost()
        p1.connectionLost()
        _, t6 = self.connect(B)
        self.assertFalse(t6.disconnecting)
        self.assertEqual(self.factory.per_peer, {A: 1, B: 2})

    def test_progress_timeout(self) -> None:
        """A message that stops progressing for read_timeout closes; progress resets the timer."""
        proto, t = self.connect()
        proto.dataReceived(b"\x00\x00\x00\x10ab")
        self.clock.advance(9)
        proto.dataReceived(b"cd")
        self.clock.advance(9)
        self.assertFalse(t.disconnecting)
        self.clock.advance(1.5)
        self.assertTrue(t.disconnecting)

    def test_idle_timeout(self) -> None:
        """A connection with no message for idle_timeout is closed."""
        proto, t = self.connect()
        self.clock.advance(29)
        proto.dataReceived(encode_message(b"x"))
        self.clock.advance(59)
        self.assertFalse(t.disconnecting)
        self.clock.advance(2)
        self.assertTrue(t.disconnecting)
        proto.connectionLost()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_first_message_timeout(self) -> None:
        """A new connection that sends nothing is closed after the (shorter) first-message timeout."""
        _, t = self.connect()
        self.clock.advance(29.9)
        self.assertFalse(t.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(t.disconnecting)

    def test_backpressure_when_queue_full(self) -> None:
        """With the queue full the connection stops being read, no timer runs, and nothing is lost."""
        proto, t = self.connect()
        proto.dataReceived(b"".join(encode_message(b"%d" % i) for i in range(5)))
        self.assertEqual(t.producerState, "paused")
        log_flush = self.queue.paused_log._flush  # the aggregated "paused" log line's timer
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.func != log_flush], [])
        got = []
        while len(got) < 5:
            m = self.queue.get()
            assert m is not None
            got.append(m.payload)
        self.assertEqual(got, [b"0", b"1", b"2", b"3", b"4"])
        self.assertEqual(t.producerState, "producing")

    def test_whole_messages_survive_close(self) -> None:
        """Messages that arrived whole are still queued when the connection closes while paused."""
        proto, _ = self.connect()
        proto.dataReceived(b"".join(encode_message(b"%d" % i) for i in range(4)))
        proto.connectionLost()
        got = [self.queue.get() for _ in range(4)]
        self.assertEqual([m.payload for m in got if m], [b"0", b"1", b"2", b"3"])

    def test_peer_key_of(self) -> None:
        """Only an overlay address yields a sender key."""
        self.assertEqual(peer_key_of(OverlayAddress(A, 1)), A)
        self.assertRaises(ValueError, peer_key_of, object())

    def test_bad_peer_address_refused(self) -> None:
        """A transport whose peer is not an overlay address is closed."""
        proto = self.factory.buildProtocol(None)
        t = StringTransport()
        proto.makeConnection(t)
        self.assertTrue(t.disconnecting)
        self.assertEqual(self.factory.total, 0)

    def test_reply_json_error_for_disabled(self) -> None:
        """A disabled stream's envelope is answered on the connection and never queued for /recv."""
        from axl.streams.mcp import MCPStream

        reg = StreamRegistry(self.queue, self.clock)
        reg.add(MCPStream(None, "http://x/route", self.clock), enabled=False)
        factory = MessageFactory(reg, self.clock)
        proto = factory.buildProtocol(None)
        t = StringTransport(peerAddress=OverlayAddress(A, 1))
        proto.makeConnection(t)
        proto.dataReceived(encode_message(b'{"service":"w","request":{}}'))
        self.assertEqual(
            json.loads(t.value()[4:]),
            {"service": "w", "response": None, "error": "mcp not enabled on this node"},
        )
        self.assertIsNone(self.queue.get())

    def test_disabled_reply_not_held_by_full_queue(self) -> None:
        """With the queue full, a disabled stream's error reply is still written at once, and not queued."""
        from axl.streams.mcp import MCPStream

        queue = RecvQueue(self.clock, max_messages=1)
        reg = StreamRegistry(queue, self.clock)
        reg.add(MCPStream(None, "http://x/route", self.clock), enabled=False)
        factory = MessageFactory(reg, self.clock)
        proto = factory.buildProtocol(None)
        t = StringTransport(peerAddress=OverlayAddress(A, 1))
        proto.makeConnection(t)
        proto.dataReceived(encode_message(b"filler") + encode_message(b'{"service":"w"}'))
        self.assertEqual(
            json.loads(t.value()[4:])["error"], "mcp not enabled on this node"
        )
        self.assertEqual(t.producerState, "producing")
        self.assertEqual(queue.get(), Message(A, b"filler"))
        self.assertIsNone(queue.get())

    def test_data_delivered_during_resume_is_processed(self) -> None:
        """Messages a transport hands over synchronously when reading resumes are dispatched."""
        proto, t = self.connect()
        held = encode_message(b"2") + encode_message(b"3")

        def resume() -> None:
            t.producerState = "producing"
            if held_box:
                proto.dataReceived(held_box.pop())

        held_box = [held]
        t.resumeProducing = resume  # type: ignore[method-assign]
        proto.dataReceived(encode_message(b"0") + encode_message(b"1") + encode_message(b"x"))
        self.assertEqual(t.producerState, "paused")
        got = []
        for _ in range(5):
            m = self.queue.get()
            assert m is not None
            got.append(m.payload)
        self.assertEqual(got, [b"0", b"1", b"x", b"2", b"3"])


class BudgetTests(SynchronousTestCase):
    """
    Issue 12: the bytes held by message connections plus the /recv queue's stay within the
    budget (plus the one read that filled it), however many connections send.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.queue = RecvQueue(self.clock, max_messages=1000, max_bytes=1000)
        self.registry = StreamRegistry(self.queue, self.clock)
        self.factory = MessageFactory(
            self.registry, self.clock, max_message_size=800, max_conns=100,
            max_conns_per_peer=100, budget=1000, queued_bytes=lambda: self.queue.size_bytes,
        )  # fmt: skip
        self.queue.on_space.append(self.factory.space_freed)

    def connect(self, n: int) -> tuple[Any, StringTransport]:
        key = bytes([n]) * 32
        proto = self.factory.buildProtocol(OverlayAddress(key, 1))
        transport = StringTransport(peerAddress=OverlayAddress(key, 40000))
        proto.makeConnection(transport)
        return proto, transport

    def held(self) -> int:
        return self.factory.held + self.queue.size_bytes

    def test_many_senders_bounded(self) -> None:
        """
        100 connections each sending 800-byte messages, 100 bytes at a time while not paused:
        the memory held never passes the budget plus one read, nothing is lost, and every
        message arrives once the app reads.
        """
        conns = [self.connect(n) for n in range(1, 101)]
        messages = {n: encode_message(bytes([n]) * 800) for n in range(1, 101)}
        sent = {n: 0 for n in range(1, 101)}
        received: list[bytes] = []
        peak = 0
        for _ in range(2000):
            moved = False
            for n, (proto, transport) in enumerate(conns, start=1):
                if transport.producerState == "paused" or sent[n] >= len(messages[n]):
                    continue
                proto.dataReceived(messages[n][sent[n]: sent[n] + 100])
                sent[n] += 100
                moved = True
                peak = max(peak, self.held())
            if not moved:
                message = self.queue.get()
                if message is None:
                    break
                received.append(message.payload)
        self.assertLessEqual(peak, 1000 + 100)  # the budget plus the one read that filled it
        self.assertEqual(sorted(received), sorted(bytes([n]) * 800 for n in range(1, 101)))
        self.assertEqual(self.factory.held, 0)

    def test_closed_inside_a_message_releases(self) -> None:
        """A connection lost inside a message gives its bytes back to the budget."""
        proto, transport = self.connect(1)
        proto.dataReceived(encode_message(b"x" * 500)[:300])
        self.assertEqual(self.factory.held, 500)  # the whole announced length is reserved
        proto.connectionLost(None)
        self.assertEqual(self.factory.held, 0)

    def test_header_reserves_before_the_body_is_read(self) -> None:
        """
        A header announcing more than the budget has left stops the connection before its
        body is read (the body waits in the sender's TCP), and resumes it once there is room.
        """
        a, ta = self.connect(1)
        a.dataReceived(encode_message(b"a" * 700))  # queued: 300 left
        b, tb = self.connect(2)
        b.dataReceived(encode_message(b"b" * 400)[:10])  # header + 6 bytes: needs 400
        self.assertEqual(tb.producerState, "paused")
        self.assertEqual(self.factory.held + self.queue.size_bytes, 706)
        self.queue.get()
        self.assertEqual(tb.producerState, "producing")
        self.assertEqual(self.factory.held, 400)  # reserved whole
        b.dataReceived(encode_message(b"b" * 400)[10:])
        self.assertEqual(self.queue.get().payload, b"b" * 400)  # type: ignore[union-attr]
        self.assertEqual(self.factory.held, 0)

    def test_first_come_first_served(self) -> None:
        """A large message waiting for room is not overtaken by smaller ones that would fit."""
        a, ta = self.connect(1)
        a.dataReceived(encode_message(b"a" * 600))  # queued: 400 left
        big, tbig = self.connect(2)
        big.dataReceived(encode_message(b"B" * 700)[:4])  # needs 700: waits
        small, tsmall = self.connect(3)
        small.dataReceived(encode_message(b"s" * 50)[:4])  # 50 would fit, but big is first
        self.assertEqual((tbig.producerState, tsmall.producerState), ("paused", "paused"))
        self.queue.get()
        self.assertEqual((tbig.producerState, tsmall.producerState), ("producing", "producing"))
        self.assertEqual(self.factory.held, 750)  # big first, then small in the 300 left

    def test_message_larger_than_the_budget_goes_through_alone(self) -> None:
        """A message longer than the whole budget is read when nothing else is held (no deadlock)."""
        factory = MessageFactory(
            self.registry, self.clock, max_message_size=5000, max_conns=10,
            max_conns_per_peer=10, budget=1000, queued_bytes=lambda: self.queue.size_bytes,
        )  # fmt: skip
        key = b"\x07" * 32
        proto = factory.buildProtocol(OverlayAddress(key, 1))
        transport = StringTransport(peerAddress=OverlayAddress(key, 40000))
        proto.makeConnection(transport)
        proto.dataReceived(encode_message(b"L" * 1500)[:100])
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(factory.held, 1500)

    def test_over_budget_new_message_waits(self) -> None:
        """Over the budget a connection between messages stops reading; a queue get resumes it."""
        a, ta = self.connect(1)
        a.dataReceived(encode_message(b"a" * 700))
        b, tb = self.connect(2)
        b.dataReceived(encode_message(b"b" * 400))  # 1100 >= 1000: b's next read waits
        self.assertEqual(tb.producerState, "paused")
        self.queue.get()
        self.assertEqual(tb.producerState, "producing")

    def test_acknowledged_protocol_over_budget_waits(self) -> None:
        """The acknowledged protocol's connections stop reading past the budget too."""
        from axl.streams.framing import write_acked_message
        from axl.streams.listener import AcknowledgedMessageFactory

        def acked(payload: bytes) -> bytes:
            out = StringTransport()
            write_acked_message(out, payload)
            return out.value()

        factory = AcknowledgedMessageFactory(self.factory)
        protos = []
        for n in (1, 2):
            key = bytes([n]) * 32
            proto = factory.buildProtocol(OverlayAddress(key, 1))
            transport = StringTransport(peerAddress=OverlayAddress(key, 40000))
            proto.makeConnection(transport)
            protos.append((proto, transport))
        protos[0][0].dataReceived(acked(b"a" * 700))
        protos[1][0].dataReceived(acked(b"b" * 400))
        self.assertEqual(protos[1][1].producerState, "paused")
        self.queue.get()
        self.assertEqual(protos[1][1].producerState, "producing")
