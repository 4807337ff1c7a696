# -*- test-case-name: tests.test_streams_acknowledged -*-
"""
Tests for the acknowledged message protocol between axl nodes (README "Messaging"): a C{/send}
answered 200 means the receiving node queued the message; every refusal reaches the sender with
its status; a Go AXL receiver (no acknowledged port) keeps the plain frames, where 200 means
TCP-acknowledged; a Go AXL caller on C{tcp_port} still reads exactly one reply frame.
"""

from __future__ import annotations

import json
import struct
from typing import Any, ClassVar

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from axl.errors import ProtocolError
from axl.overlay_address import OverlayAddress
from axl.streams.envelope import encode_mcp_request
from axl.streams.errors import (
    MessageRefused,
    PeerBusy,
    PeerUnreachable,
    RemoteError,
    SendTimedOut,
)
from axl.streams.framing import (
    ACK_OK,
    META_MAX,
    MessageDecoder,
    Status,
    acknowledged_port,
    encode_message,
    parse_acked_body,
    parse_status,
    status_frame,
    write_acked_message,
)
from axl.streams.listener import AcknowledgedMessageFactory, MessageFactory
from axl.streams.mcp import MCPStream
from axl.streams.recv_queue import Message, RecvQueue
from axl.streams.registry import StreamRegistry
from axl.streams.sender import LEGACY_TTL, MessageSender
from tests.streams_helpers import MemoryNet, key
from tests.test_bridge_messaging import TwoNodes

A, B = key(1), key(2)
ACK_PORT = acknowledged_port(7000)


def acked(payload: bytes, meta: bytes = b"") -> bytes:
    """The bytes of one message of the acknowledged protocol."""
    t = StringTransport()
    write_acked_message(t, payload, meta)
    return t.value()


def connected(factory: Any) -> tuple[Any, StringTransport]:
    """A protocol of C{factory} on a StringTransport whose peer is node A."""
    proto = factory.buildProtocol(None)
    t = StringTransport(peerAddress=OverlayAddress(A, 1))
    proto.makeConnection(t)
    return proto, t


def statuses(data: bytes) -> list[Status]:
    return [parse_status(f) for f in MessageDecoder(1 << 20).feed(data)]


class FramingTests(SynchronousTestCase):
    def test_port(self) -> None:
        """The acknowledged port is tcp_port + 1 (tcp_port - 1 at the top of the range)."""
        self.assertEqual((acknowledged_port(7000), acknowledged_port(65535)), (7001, 65534))

    def test_message_layout_and_parse(self) -> None:
        """A message is [length][2-byte metadata length][metadata][payload], split back exactly."""
        self.assertEqual(acked(b"hi"), b"\0\0\0\x04\0\0hi")
        body = acked(b"x" * 70000, b'{"id":"m1"}')[4:]
        self.assertEqual(len(body), 2 + 11 + 70000)
        parsed = parse_acked_body(body)
        self.assertEqual((parsed.meta, parsed.payload), ({"id": "m1"}, b"x" * 70000))

    def test_bad_bodies(self) -> None:
        """Metadata too long, running past the frame, or not a JSON object is a protocol error."""
        self.assertRaises(ValueError, write_acked_message, StringTransport(), b"", b"{}" + b" " * META_MAX)
        for body in (
            b"\0",
            struct.pack("!H", 5) + b"{}",
            struct.pack("!H", META_MAX + 1) + b"{" + b" " * META_MAX + b"}",
            struct.pack("!H", 2) + b"[]",
            struct.pack("!H", 2) + b"{x",
        ):
            self.assertRaises(ProtocolError, parse_acked_body, body)

    def test_status_frames(self) -> None:
        """Status frames round-trip; the common 200 is a constant; garbage is a protocol error."""
        self.assertEqual(status_frame(200), ACK_OK)
        self.assertEqual(parse_status(ACK_OK), Status(200))
        self.assertEqual(parse_status(status_frame(413, "big", 10)), Status(413, "big", 10))
        self.assertEqual(parse_status(status_frame(503, "full", close=True)), Status(503, "full", None, True))
        for bad in (b"", b"[]", b'{"status":"200"}', b'{"status":true}', b"{" + b" " * 5000 + b"}"):
            self.assertRaises(ProtocolError, parse_status, bad)


class ReceiverTests(SynchronousTestCase):
    """The receiving side, driven byte by byte with a StringTransport."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.queue = RecvQueue(self.clock, max_messages=1)
        self.registry = StreamRegistry(self.queue, self.clock)
        self.registry.add(MCPStream(None, "http://x/route", self.clock), enabled=True)
        self.factory = MessageFactory(self.registry, self.clock, max_message_size=100, max_conns_per_peer=1)
        self.acked_factory = AcknowledgedMessageFactory(self.factory)

    def connect(self) -> tuple[Any, StringTransport]:
        return connected(self.acked_factory)

    def test_ack_only_once_queued(self) -> None:
        """The 200 is written when the message is in the queue: a full queue holds it back."""
        proto, t = self.connect()
        proto.dataReceived(acked(b"one") + acked(b"two"))
        self.assertEqual(statuses(t.value()), [Status(200)])
        self.assertEqual(t.producerState, "paused")
        self.assertEqual(self.queue.get(), Message(A, b"one"))
        self.assertEqual(statuses(t.value()), [Status(200), Status(200)])
        self.assertEqual(self.queue.get(), Message(A, b"two"))

    def test_envelopes_are_not_sniffed(self) -> None:
        """A /send payload that looks like an MCP envelope goes to /recv, with MCP enabled."""
        proto, t = self.connect()
        envelope = encode_mcp_request("weather", {"id": 1})
        proto.dataReceived(acked(envelope))
        self.assertEqual(self.queue.get(), Message(A, envelope))
        self.assertEqual(statuses(t.value()), [Status(200)])

    def test_oversize_at_header_then_carries_on(self) -> None:
        """
        A message far over the limit is refused with 413 in its turn (after the earlier message's
        200), its bytes are read and thrown away, and the next message on the connection is taken.
        """
        proto, t = self.connect()
        big = acked(b"y" * 5000)
        stream = acked(b"ok") + big + acked(b"after")
        for i in range(0, len(stream), 700):  # in pieces, as TCP delivers them
            proto.dataReceived(stream[i : i + 700])
            if self.queue.peek() is not None:
                self.queue.get()
        self.assertEqual(
            statuses(t.value()),
            [
                Status(200),
                Status(413, "message of 5002 bytes exceeds the receiver's max_message_size of 100 bytes", 100),
                Status(200),
            ],
        )
        self.assertFalse(t.disconnecting)

    def test_oversize_payload_within_metadata_allowance(self) -> None:
        """A payload one byte over the limit is refused exactly (the frame fits the metadata allowance)."""
        proto, t = self.connect()
        proto.dataReceived(acked(b"z" * 101) + acked(b"z" * 100))
        self.assertEqual(
            statuses(t.value()),
            [
                Status(413, "message of 101 bytes exceeds the receiver's max_message_size of 100 bytes", 100),
                Status(200),
            ],
        )
        self.assertEqual(self.queue.get(), Message(A, b"z" * 100))

    def test_connection_over_the_limit_gets_503(self) -> None:
        """A connection over max_conns_per_peer gets one 503 frame that closes it."""
        self.connect()
        _, t = self.connect()
        self.assertEqual(statuses(t.value()), [Status(503, "per-peer connection limit reached (1)", None, True)])
        self.assertTrue(t.disconnecting)
        self.assertEqual(self.factory.total, 1)

    def test_bad_metadata_drops_the_connection(self) -> None:
        """A frame with broken metadata drops the connection; nothing is queued or acknowledged."""
        proto, t = self.connect()
        proto.dataReceived(encode_message(struct.pack("!H", 50) + b"{}"))
        self.assertTrue(t.disconnecting)
        self.assertEqual(t.value(), b"")
        self.assertIsNone(self.queue.get())


class SenderTests(SynchronousTestCase):
    """A sender and receivers over in-memory connections: an axl receiver, and a Go-like one."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.net = MemoryNet()
        self.queue_b = RecvQueue(self.clock, max_messages=2)
        self.factory_b = MessageFactory(StreamRegistry(self.queue_b, self.clock), self.clock, max_message_size=100)
        self.net.listen(B, 7000, self.factory_b)
        self.net.listen(B, ACK_PORT, AcknowledgedMessageFactory(self.factory_b))
        self.queue_a = RecvQueue(self.clock)
        self.sender = MessageSender(
            self.net.dial_from(A), self.clock, A, StreamRegistry(self.queue_a, self.clock),
            max_message_size=1000, ack_port=ACK_PORT,
        )  # fmt: skip

    def sent(self, payload: bytes) -> Any:
        d = self.sender.send(B, payload)
        self.net.flush()
        return d

    def ports(self) -> list[int]:
        return [s.host.port for _, s in self.net.pairs]

    def test_200_means_queued(self) -> None:
        """With B's queue full, a send B's TCP took still waits; it succeeds once B's app drains."""
        ds = [self.sender.send(B, b"m%d" % i) for i in range(3)]
        self.net.flush()
        self.assertEqual(self.ports(), [ACK_PORT])
        self.assertEqual((self.successResultOf(ds[0]), self.successResultOf(ds[1])), (2, 2))
        self.assertNoResult(ds[2])
        self.assertEqual(self.queue_b.get(), Message(A, b"m0"))
        self.net.flush()
        self.assertEqual(self.successResultOf(ds[2]), 2)

    def test_small_oversize_message_is_413(self) -> None:
        """
        The issue's bug: a message over B's limit but small enough for B's TCP to acknowledge at
        once is 413 with B's limit (it was 200); the connection and later messages carry on.
        """
        first = self.sender.send(B, b"a" * 101)
        second = self.sender.send(B, b"b")
        self.net.flush()
        f = self.failureResultOf(first, MessageRefused)
        self.assertEqual(f.value.limit, 100)
        self.assertEqual(f.value.message, "message of 101 bytes exceeds the receiver's max_message_size of 100 bytes")
        self.assertEqual(self.successResultOf(second), 1)
        self.assertEqual(self.queue_b.get(), Message(A, b"b"))
        self.assertIsNone(self.queue_b.get())
        self.assertEqual(len(self.net.pairs), 1)

    def test_not_accepted_in_time_is_503(self) -> None:
        """A message B does not queue within send_timeout fails with SendTimedOut (not 200)."""
        ds = [self.sender.send(B, b"m%d" % i) for i in range(3)]
        self.net.flush()
        self.clock.advance(30.1)
        f = self.failureResultOf(ds[2], SendTimedOut)
        self.assertIn("did not accept the message within 30 s", f.value.message)
        # Its late acceptance changes nothing and the next message's status is still matched.
        later = self.sender.send(B, b"later")
        self.queue_b.get()
        self.queue_b.get()
        self.net.flush()
        self.assertEqual(self.successResultOf(later), 5)
        self.assertEqual([self.queue_b.get(), self.queue_b.get()], [Message(A, b"m2"), Message(A, b"later")])

    def test_refused_connection_is_503(self) -> None:
        """A receiver at its connection limit refuses the connection: every message is PeerBusy (503)."""
        self.factory_b.max_conns = 0
        ds = [self.sender.send(B, b"x"), self.sender.send(B, b"y")]
        self.net.flush()
        for d in ds:
            f = self.failureResultOf(d, PeerBusy)
            self.assertEqual(f.value.message, "Peer refused the connection: connection limit reached (0)")
        self.assertEqual(self.net.pairs, [])

    def test_unknown_status_is_a_remote_error(self) -> None:
        """A status other than 200/413/503 fails that message as a remote error."""
        d = self.sender.send(B, b"x")
        self.net.flush()
        self.successResultOf(d)
        d = self.sender.send(B, b"y")
        (client, server) = self.net.pairs[0]
        server.protocol._open = False  # the receiver will not answer: we answer for it
        client.protocol.dataReceived(encode_message(status_frame(418, "teapot")))
        self.assertEqual(
            self.failureResultOf(d, RemoteError).value.message, "Peer refused the message (418): teapot"
        )

    def test_bad_status_drops_the_connection(self) -> None:
        """Garbage instead of a status frame drops the connection; the message in flight fails."""
        d = self.sender.send(B, b"x")
        (client, server) = self.net.pairs[0]
        client.protocol.dataReceived(encode_message(b"garbage"))
        self.net.flush()
        self.failureResultOf(d, PeerUnreachable)

    def test_go_receiver_falls_back_to_plain_frames(self) -> None:
        """
        A receiver without the acknowledged port (Go AXL) gets plain frames on tcp_port and 200
        means TCP-acknowledged; it is remembered for LEGACY_TTL, then the port is tried again.
        """
        del self.net.listeners[(B, ACK_PORT)]
        dials: list[int] = []
        dial = self.sender.dial
        self.sender.dial = lambda k, p: (dials.append(p), dial(k, p))[1]  # type: ignore[method-assign]
        d = self.sender.send(B, b"plain")
        self.net.flush()
        self.assertEqual(self.successResultOf(d), 5)
        self.assertEqual(dials, [ACK_PORT, 7000])
        self.assertEqual(self.queue_b.get(), Message(A, b"plain"))
        self.clock.advance(6)  # the idle connection closes
        self.net.flush()
        self.successResultOf(self.sent(b"again"))
        self.assertEqual(dials, [ACK_PORT, 7000, 7000])
        self.clock.advance(LEGACY_TTL)
        self.net.flush()
        self.successResultOf(self.sent(b"third"))
        self.assertEqual(dials, [ACK_PORT, 7000, 7000, ACK_PORT, 7000])

    def test_unsolicited_status_drops_the_connection(self) -> None:
        """A status frame for no message in flight drops the connection (logged); the next send redials."""
        self.successResultOf(self.sent(b"one"))
        (client, _) = self.net.pairs[0]
        with capturedLogs() as events:
            client.protocol.dataReceived(encode_message(ACK_OK))
            self.net.flush()
        self.assertEqual(
            [e["log_format"] for e in events if "status" in e.get("log_format", "")],
            ["dropping the connection to {peer}: a status for no message"],
        )
        self.assertEqual(self.net.pairs, [])
        self.successResultOf(self.sent(b"two"))
        self.assertEqual([self.queue_b.get(), self.queue_b.get()], [Message(A, b"one"), Message(A, b"two")])

    def test_legacy_table_forgets_expired_keys(self) -> None:
        """The table of Go AXL receivers only holds keys marked within LEGACY_TTL."""
        for n in range(5):
            self.sender.mark_legacy(key(10 + n))
        self.clock.advance(LEGACY_TTL)
        self.sender.mark_legacy(key(20))
        self.assertEqual(list(self.sender._legacy), [key(20)])
        self.assertTrue(self.sender.speaks_acks(key(10)))
        self.assertFalse(self.sender.speaks_acks(key(20)))

    def test_go_receiver_oversize_small_message_still_200(self) -> None:
        """Towards a Go AXL receiver 200 keeps meaning TCP-acknowledged (documented)."""
        del self.net.listeners[(B, ACK_PORT)]
        d = self.sender.send(B, b"a" * 101)
        self.net.flush()
        self.assertEqual(self.successResultOf(d), 101)
        self.assertIsNone(self.queue_b.get())

    def test_self_send_is_never_an_envelope(self) -> None:
        """A /send to our own key goes to our /recv even when it looks like an envelope."""
        envelope = encode_mcp_request("weather", {})
        self.assertEqual(self.successResultOf(self.sender.send(A, envelope)), len(envelope))
        self.assertEqual(self.queue_a.get(), Message(A, envelope))


class GoCallerTests(SynchronousTestCase):
    """What a Go AXL node sees on our tcp_port is unchanged: at most one reply frame, no acks."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.queue = RecvQueue(self.clock)
        registry = StreamRegistry(self.queue, self.clock)
        registry.add(MCPStream(None, "http://x/route", self.clock), enabled=False)
        self.factory = MessageFactory(registry, self.clock)

    def connect(self) -> tuple[Any, StringTransport]:
        return connected(self.factory)

    def test_plain_message_gets_no_bytes_back(self) -> None:
        """A Go /send frame is queued and nothing is written back (a Go sender never reads)."""
        proto, t = self.connect()
        proto.dataReceived(encode_message(b"hello"))
        self.assertEqual(self.queue.get(), Message(A, b"hello"))
        self.assertEqual(t.value(), b"")

    def test_disabled_stream_one_error_frame_nothing_queued(self) -> None:
        """A Go MCP caller's envelope for a disabled stream gets exactly one error frame, never /recv."""
        proto, t = self.connect()
        proto.dataReceived(encode_message(encode_mcp_request("weather", {"id": 1})))
        frames = MessageDecoder(1 << 20).feed(t.value())
        self.assertEqual(
            [json.loads(f) for f in frames],
            [{"service": "weather", "response": None, "error": "mcp not enabled on this node"}],
        )
        self.assertIsNone(self.queue.get())
        self.assertEqual(self.queue.waiting_puts, 0)


class BridgeStatusTests(TwoNodes):
    """What an application sees at A's bridge when B (an axl node) refuses a message."""

    b_config: ClassVar[dict[str, Any]] = {"max_message_size": 100, "recv_queue_max_messages": 1}

    def test_small_message_over_the_receivers_limit_is_413(self) -> None:
        """A 101-byte /send to B (limit 100, A's 1000) is 413 with B's reason, not 200."""
        code, _, body = self.send(b"q" * 101)
        self.assertEqual(
            (code, body),
            (413, b"message of 101 bytes exceeds the receiver's max_message_size of 100 bytes\n"),
        )
        self.assertEqual(self.call(self.client_b, "GET", "/recv")[0], 204)
        self.assertEqual(self.send(b"fine")[0], 200)

    def test_200_only_once_queued(self) -> None:
        """With B's one-message queue full, a /send stays unanswered until B's app calls /recv."""
        self.assertEqual(self.send(b"first")[0], 200)
        d = self.client_a.request(
            "POST", "http://127.0.0.1:9002/send", headers={"X-Destination-Peer-Id": self.B.hex()}, data=b"second"
        )
        self.settle()
        self.assertNoResult(d)
        self.assertEqual(self.call(self.client_b, "GET", "/recv")[2], b"first")
        self.settle()
        self.assertEqual(self.successResultOf(d).code, 200)
        self.assertEqual(self.call(self.client_b, "GET", "/recv")[2], b"second")

    def test_receiver_busy_is_503(self) -> None:
        """B at its connection limit: /send is 503 with B's reason."""
        self.b.streams.factory.max_conns = 0
        code, _, body = self.send(b"x")
        self.assertEqual(
            (code, body), (503, b"Peer refused the connection: connection limit reached (0)\n")
        )
