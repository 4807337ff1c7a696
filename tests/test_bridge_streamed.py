# -*- test-case-name: tests.test_bridge_streamed -*-
"""
Tests for streamed C{/send} (issue 12): a body of at least C{stream_threshold} bytes is forwarded
to the destination while it arrives (L{axl.bridge.limits.StreamedBody},
L{axl.streams.streamed.StreamedMessage}), holding at most the overlay send buffer of it. The HTTP
side is a real L{LimitedSite} channel on a C{StringTransport}; the overlay is L{MemoryNet}, whose
send buffer pauses its producer above C{send_limit} and which moves bytes only on C{flush}.
"""

from __future__ import annotations

import random
from io import BytesIO
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from axl.bridge.app import STREAM_HOLD, Bridge
from axl.bridge.limits import STREAM_THRESHOLD, BridgeLimits, LimitedSite
from axl.streams.streamed import STREAM_WINDOW
from tests.test_bridge_messaging import TwoNodes

MIB = 1024 * 1024
#: the overlay send buffer's bound in these tests
LIMIT = 256 * 1024
CHUNK = 64 * 1024


def payload(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


class Client:
    """One HTTP connection to the site, driven by hand."""

    def __init__(self, site: LimitedSite, port: int = 40001) -> None:
        self.proto: Any = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", port))
        self.proto.makeConnection(self.transport)
        self.sent = 0

    def head(self, length: int, headers: dict[str, str]) -> None:
        lines = [b"POST /send HTTP/1.1", b"Host: a", f"Content-Length: {length}".encode()]
        lines += [f"{k}: {v}".encode() for k, v in headers.items()]
        self.proto.dataReceived(b"\r\n".join(lines) + b"\r\n\r\n")

    @property
    def paused(self) -> bool:
        return self.transport.producerState == "paused"

    def feed(self, body: bytes, until: int | None = None) -> None:
        """Send body bytes, a chunk at a time, while the bridge reads (not paused), up to C{until}."""
        end = len(body) if until is None else until
        while self.sent < end and not self.paused and not self.transport.disconnecting:
            chunk = body[self.sent : min(self.sent + CHUNK, end)]
            self.sent += len(chunk)
            self.proto.dataReceived(chunk)

    def response(self) -> tuple[int, dict[str, str], bytes] | None:
        data = self.transport.value()
        if b"\r\n\r\n" not in data:
            return None
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


class StreamedCases:
    """Node A's bridge (a real site) streams to node B (mixed into a L{TwoNodes} test case)."""

    max_message_size = 16 * MIB
    acknowledged: bool
    net: Any
    clock: Any
    a: Any
    b: Any
    A: bytes
    B: bytes

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.net.send_limit = LIMIT
        # streamed from 1 MiB here (the default is STREAM_THRESHOLD) to keep the tests quick
        self.limits = BridgeLimits(max_body=self.max_message_size, body_timeout=60.0, stream_threshold=MIB)
        self.site = LimitedSite(
            self.a.bridge.resource(), self.limits, self.clock, streamed=Bridge.streamed_routes
        )

    def client(self, length: int, dest: bytes | None = None, **headers: str) -> Client:
        c = Client(self.site)
        c.head(length, {"X-Destination-Peer-Id": (dest or self.B).hex(), **headers})
        return c

    def overlay_buffered(self) -> int:
        return sum(c.buffered for c, _ in self.net.pairs)

    def stream_all(self, c: Client, body: bytes) -> int:
        """Feed C{body}, delivering the overlay each time the bridge pauses; the most held at once."""
        most = 0
        while c.sent < len(body):
            c.feed(body)
            most = max(most, self.overlay_buffered())
            self.net.flush()
        return most

    def test_paused_while_overlay_full(self) -> None:
        """
        A 16 MiB /send whose overlay connection does not drain: the HTTP connection is paused
        once the overlay send buffer passes its bound; at most that bound plus one read is held
        (nothing buffered in the bridge), and no answer is given.
        """
        body = payload(16 * MIB)
        c = self.client(len(body))
        c.feed(body)
        self.assertTrue(c.paused)
        self.assertLess(c.sent, 16 * MIB)
        self.assertLessEqual(self.overlay_buffered(), LIMIT + CHUNK + 64)
        request = c.proto.requests[0]
        self.assertEqual(request.streamed_body.buffered, 0)
        self.assertEqual(c.response(), None)
        c.feed(body)  # still paused: nothing more is read
        self.assertLessEqual(self.overlay_buffered(), LIMIT + CHUNK + 64)
        self.assertEqual(self.a.bridge.inflight_bytes, STREAM_HOLD)

    def test_window_bounds_unacknowledged(self) -> None:
        """
        An overlay transport whose own send-buffer bound is large (auto-tuned up for a peer that
        advertises big windows): the body still pauses once STREAM_WINDOW bytes are not yet
        acknowledged, and flows again once half of them are.
        """
        self.net.send_limit = None  # the transport never pauses its producer
        body = payload(16 * MIB)
        c = self.client(len(body))
        c.feed(body)
        self.assertTrue(c.paused)
        pipe = self.net.pairs[0][0]
        self.assertLessEqual(pipe.buffered, STREAM_WINDOW + CHUNK + 64)
        while pipe.buffered > STREAM_WINDOW // 2 + CHUNK and pipe._deliver():
            self.assertTrue(c.paused)
        pipe._deliver()
        self.assertFalse(c.paused)
        most = self.stream_all(c, body)
        self.assertLessEqual(most, STREAM_WINDOW + CHUNK + 64)
        self.assertEqual(c.response()[0], 200)  # type: ignore[index]

    def test_delivered_byte_identical(self) -> None:
        """
        When the overlay drains, the 16 MiB message reaches B's /recv byte for byte, never more
        than the bound held at once; 200 with X-Sent-Bytes comes only after B's status.
        """
        body = payload(16 * MIB)
        c = self.client(len(body), **{"X-Message-Id": "m-1"})
        most = self.stream_all(c, body)
        self.assertLessEqual(most, LIMIT + CHUNK + 64)
        message = self.b.streams.queue.peek()
        assert message is not None
        self.assertEqual((message.sender, message.message_id), (self.A, "m-1" if self.acknowledged else None))
        self.assertTrue(message.payload == body)
        response = c.response()
        assert response is not None
        self.assertEqual((response[0], response[1]["x-sent-bytes"]), (200, str(16 * MIB)))
        self.assertNotIn("connection", response[1])  # the connection stays open
        self.assertFalse(c.transport.disconnecting)
        self.assertEqual(self.a.bridge.inflight_bytes, 0)
        self.assertEqual(self.net.pairs, [])  # the streamed connection is closed
        c.proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])  # no timer of the send is left

    def test_too_large_from_headers(self) -> None:
        """A Content-Length over max_message_size is 413 from the head: nothing forwarded."""
        c = self.client(16 * MIB + 1)
        response = c.response()
        assert response is not None
        self.assertEqual(response[0], 413)
        self.assertEqual(self.net.pairs, [])

    def test_bad_header_before_body(self) -> None:
        """A bad destination is 400 as soon as the head is in; the body is thrown away, then close."""
        c = Client(self.site)
        c.head(4 * MIB, {"X-Destination-Peer-Id": "nothex"})
        response = c.response()
        assert response is not None
        self.assertEqual(response[0], 400)
        self.assertEqual(response[1]["connection"], "close")
        self.assertEqual(self.net.pairs, [])
        c.feed(payload(4 * MIB))
        self.assertEqual(c.sent, 4 * MIB)  # read and discarded
        self.assertTrue(c.transport.disconnecting)

    def test_unreachable_without_reading(self) -> None:
        """
        A destination that never answers the dial: 504 after the connect timeout, the body
        never read meanwhile (the connection is paused), then the connection closes.
        """
        dead = bytes([9]) * 32
        self.net.black_holes.add(dead)
        c = self.client(16 * MIB, dest=dead, Expect="100-continue")
        c.feed(payload(16 * MIB))
        self.assertEqual(c.sent, 0)
        self.assertTrue(c.paused)
        self.clock.advance(self.a.streams.sender.connect_timeout)
        response = c.response()
        assert response is not None
        self.assertEqual(response[0], 504)
        self.assertNotIn(b"100 Continue", c.transport.value())
        self.assertTrue(c.transport.disconnecting)  # the body was never asked for

    def test_refused_at_once(self) -> None:
        """A node with neither port listening: 502 from the head, nothing forwarded, then close."""
        gone = bytes([7]) * 32
        c = self.client(16 * MIB, dest=gone)
        response = c.response()
        assert response is not None
        self.assertEqual((response[0], response[1]["connection"]), (502, "close"))
        self.assertEqual(self.net.pairs, [])
        c.feed(payload(16 * MIB))  # a client that sends anyway is read and ignored, then closed
        self.assertTrue(c.transport.disconnecting)

    def test_expect_continue_when_connected(self) -> None:
        """C{Expect: 100-continue} is answered once the overlay connection is up, not before."""
        body = payload(2 * MIB)
        c = self.client(len(body), Expect="100-continue")
        self.assertTrue(c.transport.value().startswith(b"HTTP/1.1 100 Continue\r\n\r\n"))
        c.transport.clear()
        self.stream_all(c, body)
        self.assertEqual(c.response()[0], 200)  # type: ignore[index]

    def test_client_gone_mid_body(self) -> None:
        """The client disconnecting mid-body aborts the overlay connection; nothing is delivered."""
        for reason in (ConnectionLost(), ConnectionDone()):
            body = payload(4 * MIB)
            c = self.client(len(body))
            c.feed(body, until=MIB)
            self.net.flush()
            pipe = self.net.pairs[0][0]
            c.proto.connectionLost(Failure(reason))
            self.assertTrue(pipe.aborted)
            self.net.flush()
            self.assertEqual(self.b.streams.queue.peek(), None)
            self.assertEqual(self.a.bridge.inflight_bytes, 0)
            self.assertEqual(self.site.active_requests, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_body_deadline_aborts(self) -> None:
        """A client that stops sending mid-body: 408 at the body deadline, the message dropped."""
        body = payload(4 * MIB)
        c = self.client(len(body))
        c.feed(body, until=MIB)
        self.net.flush()
        pipe = self.net.pairs[0][0]
        self.clock.advance(60)
        self.assertIn(b"408 Request Timeout", c.transport.value())
        self.assertTrue(pipe.aborted)
        self.net.flush()
        self.assertEqual(self.b.streams.queue.peek(), None)
        self.assertEqual(c.transport.value().count(b"HTTP/1.1"), 1)  # only the 408

    def test_stalled_overlay_times_out(self) -> None:
        """An overlay connection that takes no data for send_timeout: 503, not sent, connection closed."""
        body = payload(4 * MIB)
        c = self.client(len(body))
        c.feed(body)
        self.assertTrue(c.paused)
        self.clock.advance(self.a.streams.sender.send_timeout)
        response = c.response()
        assert response is not None
        self.assertEqual(response[0], 503)
        self.assertIn(b"took too little data for 30 s; not sent", response[2])
        self.net.flush()
        self.assertEqual(self.b.streams.queue.peek(), None)

    def test_slow_overlay_times_out(self) -> None:
        """
        A peer that takes data a little at a time: the time the body spent paused counts in all,
        so after send_timeout of it the send is 503, though each pause was shorter.
        """
        body = payload(16 * MIB)
        c = self.client(len(body))
        for _ in range(2):
            c.feed(body)
            self.assertTrue(c.paused)
            self.clock.advance(10)
            self.assertEqual(c.response(), None)
            pipe = self.net.pairs[0][0]
            while pipe.buffered > LIMIT // 2 and pipe._deliver():
                pass  # the peer takes some: the body flows again
        c.feed(body)
        self.assertTrue(c.paused)
        self.clock.advance(9.5)
        self.assertEqual(c.response(), None)
        self.clock.advance(0.5)  # the peer had it paused for 30 s in all, never more than 10 s at once
        response = c.response()
        assert response is not None
        self.assertEqual(response[0], 503)

    def test_inflight_counts_the_hold(self) -> None:
        """Streamed sends count STREAM_HOLD each against bridge_max_inflight_bytes, not their size."""
        self.a.bridge.max_inflight_bytes = 2 * STREAM_HOLD + 1
        body = payload(16 * MIB)
        clients = [self.client(len(body)) for _ in range(2)]
        for c in clients:
            c.feed(body)
        self.assertEqual(self.a.bridge.inflight_bytes, 2 * STREAM_HOLD)
        third = self.client(len(body))
        response = third.response()
        assert response is not None
        self.assertEqual((response[0], response[1]["retry-after"]), (503, "1"))
        self.assertTrue(third.transport.disconnecting or response[1]["connection"] == "close")

    def test_to_own_key(self) -> None:
        """A streamed /send to our own key is collected and queued whole (counted whole)."""
        body = payload(2 * MIB)
        c = self.client(len(body), dest=self.A)
        c.feed(body)
        self.assertEqual(c.response()[0], 200)  # type: ignore[index]
        self.assertTrue(self.a.streams.queue.get().payload == body)

    def test_default_threshold(self) -> None:
        """By default a body is streamed from STREAM_THRESHOLD (4 MiB) bytes on; one byte less is stored."""
        site = LimitedSite(self.a.bridge.resource(), BridgeLimits(max_body=self.max_message_size),
                           self.clock, streamed=Bridge.streamed_routes)  # fmt: skip
        self.assertEqual(STREAM_THRESHOLD, 4 * MIB)
        for length, streamed in ((STREAM_THRESHOLD - 1, False), (STREAM_THRESHOLD, True)):
            c = Client(site)
            c.head(length, {"X-Destination-Peer-Id": self.B.hex()})
            self.assertEqual(c.proto.requests[0].streamed_body is not None, streamed, length)
            c.proto.connectionLost(Failure(ConnectionDone()))

    def test_small_body_not_streamed(self) -> None:
        """A body under the threshold is stored whole first, as before."""
        c = self.client(1000)
        request = c.proto.requests[0]
        self.assertIsNone(request.streamed_body)
        c.feed(payload(1000))
        self.net.flush()
        self.assertEqual(c.response()[0], 200)  # type: ignore[index]


class StreamedSendTests(StreamedCases, TwoNodes):
    """B is an axl node: the acknowledged protocol."""

    def test_answer_waits_for_status(self) -> None:
        """
        Every byte delivered is not enough: while B's /recv queue is full the answer waits for
        B's status, and is 200 once /recv made room.
        """
        queue = self.b.streams.queue
        queue.put(self.A, b"first")
        queue.max_bytes = MIB
        body = payload(2 * MIB)
        c = self.client(len(body))
        self.stream_all(c, body)
        self.net.flush()
        self.assertEqual(c.response(), None)
        self.assertEqual(queue.get().payload, b"first")
        self.net.flush()
        response = c.response()
        assert response is not None
        self.assertEqual(response[0], 200)
        self.assertTrue(queue.get().payload == body)

    def test_receiver_refuses_oversize(self) -> None:
        """
        B's own max_message_size is smaller: its 413 status arrives from the frame header, the
        bridge answers 413 with B's reason at once and stops forwarding; the rest of the body is
        read and thrown away, then the connection closes.
        """
        self.b, _ = self.make_node(2, {"max_message_size": MIB})  # type: ignore[attr-defined]
        body = payload(4 * MIB)
        c = self.client(len(body))
        c.feed(body, until=CHUNK)
        self.net.flush()
        response = c.response()
        assert response is not None
        self.assertEqual(response[0], 413)
        self.assertIn(b"exceeds the receiver's max_message_size of 1048576 bytes", response[2])
        self.assertEqual(response[1]["connection"], "close")
        self.assertEqual(self.net.pairs, [])
        c.feed(body)
        self.assertEqual(c.sent, len(body))
        self.assertTrue(c.transport.disconnecting)
        self.assertEqual(self.b.streams.queue.peek(), None)

    def test_unreachable_logged_in_aggregate(self) -> None:
        """100 streamed sends to a key that refuses them cost a few log lines, not 100."""
        gone = bytes([7]) * 32
        with capturedLogs() as events:
            for _ in range(100):
                self.assertEqual(self.client(2 * MIB, dest=gone).response()[0], 502)  # type: ignore[index]
            self.clock.advance(60)
        lines = [e for e in events if e.get("verb") == "undelivered" or "reach" in e.get("log_format", "")]
        self.assertTrue(1 <= len(lines) <= 3, lines)
        self.assertEqual(self.a.streams.sender.unreachable.total, 100)

    def test_message_id_deduplicates_retry(self) -> None:
        """A streamed retry with the same X-Message-Id is 200 and is not delivered twice."""
        body = payload(2 * MIB)
        for _ in range(2):
            c = self.client(len(body), **{"X-Message-Id": "retry-1"})
            self.stream_all(c, body)
            self.assertEqual(c.response()[0], 200)  # type: ignore[index]
        self.assertTrue(self.b.streams.queue.get().payload == body)
        self.assertEqual(self.b.streams.queue.peek(), None)


class GoReceiverTests(StreamedCases, TwoNodes):
    """B is a Go AXL node: no acknowledged port; plain frames on tcp_port, 200 once TCP-acknowledged."""

    acknowledged = False

    def test_plain_frame(self) -> None:
        """The streamed message goes as one plain frame to tcp_port; B is remembered as legacy."""
        body = payload(3 * MIB)
        c = self.client(len(body))
        self.stream_all(c, body)
        self.assertEqual(c.response()[0], 200)  # type: ignore[index]
        self.assertTrue(self.b.streams.queue.get().payload == body)
        self.assertFalse(self.a.streams.sender.speaks_acks(self.B))

    def test_answer_waits_for_tcp_ack(self) -> None:
        """The whole body written is not enough: 200 once B's TCP acknowledged the last byte."""
        body = payload(2 * MIB)
        c = self.client(len(body))
        while c.sent < len(body):
            c.feed(body)
            pipe = self.net.pairs[0][0]
            while pipe.buffered > 2 * CHUNK and pipe._deliver():
                pass
        self.assertEqual(c.response(), None)
        self.net.flush()
        self.assertEqual(c.response()[0], 200)  # type: ignore[index]


class StoredBodyCopyTests(TwoNodes):
    """A stored (not streamed) body is not copied needlessly on its way to the overlay transport."""

    max_message_size = 2 * MIB

    def test_body_taken_without_copy(self) -> None:
        """A body in memory is taken as the same bytes object, and the request lets go of it."""
        data = payload(50_000)

        class FakeRequest:
            content = BytesIO(data)

        request: Any = FakeRequest()
        body = self.a.bridge._take_body(request)
        self.assertIs(body, data)
        self.assertEqual(request.content.getvalue(), b"")

    def test_frame_dropped_once_written(self) -> None:
        """Once a pooled message is written, the sender keeps its size, not its bytes."""
        self.net.black_holes.discard(self.B)
        self.a.streams.sender.send(self.B, payload(MIB))
        channel = self.a.streams.sender._channels[self.B]
        (frame,) = channel.core.inflight  # written, not yet acknowledged (nothing delivered)
        self.assertEqual((frame.payload, frame.size), (b"", MIB))
        self.net.flush()
        self.assertEqual(len(self.b.streams.queue.get().payload), MIB)
