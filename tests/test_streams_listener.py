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
        self.assertEqual(self.clock.getDelayedCalls(), [])
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
