# -*- test-case-name: tests.test_bridge_limits -*-
"""
Tests for the bridge's resource limits (issue 12): L{axl.bridge.limits} (deadlines, connection and
request caps, bodies refused as they arrive) and the route-level ones in L{axl.bridge.app}
(duplicate headers, JSON depth, background forwards, message bytes in flight).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.python.failure import Failure
from twisted.web.resource import Resource

from axl.bridge.limits import BridgeLimits, LimitedSite
from tests.test_bridge_messaging import TwoNodes

LIMITS = BridgeLimits(header_timeout=10, body_timeout=60, max_connections=4, max_requests=2,
                      max_body=1000)  # fmt: skip


class _Slow(Resource):
    """Answers POST /x with the body size, after C{release} fires (so requests stay active)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Any] = []
        self.bodies: list[bytes] = []

    def render(self, request: Any) -> Any:
        from twisted.web.server import NOT_DONE_YET

        self.bodies.append(request.content.read())
        self.pending.append(request)
        return NOT_DONE_YET


class SiteLimitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.resource = _Slow()
        self.site = LimitedSite(self.resource, LIMITS, self.clock)

    def connect(self, n: int = 1) -> tuple[Any, StringTransport]:
        proto = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000 + n))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000 + n))
        proto.makeConnection(transport)
        return proto, transport

    def finish_all(self) -> None:
        for request in self.resource.pending:
            if not request.finished:
                request.write(b"ok")
                request.finish()
        self.resource.pending.clear()

    def test_slowloris_head_deadline(self) -> None:
        """A head trickled a byte a second is cut with 408 at header_timeout, whatever the trickle."""
        proto, transport = self.connect()
        head = b"POST /x HTTP/1.1\r\nHost: a\r\n" + b"X-Pad: " + b"a" * 100
        for byte in head[:20]:
            proto.dataReceived(bytes([byte]))
            self.clock.advance(1)
        self.assertIn(b"408 Request Timeout", transport.value())
        self.assertTrue(transport.disconnecting)
        self.clock.advance(2)  # not taken in time: aborted
        proto.connectionLost(None)
        self.assertEqual(self.site.channels, set())
        self.clock.advance(60)  # the aggregated log's window
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_idle_keepalive_closed(self) -> None:
        """A connection idle after a response (keep-alive) gets header_timeout, then 408 and close."""
        proto, transport = self.connect()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
        self.clock.advance(100)  # handling a request: no deadline
        self.assertFalse(transport.disconnecting)
        self.finish_all()
        self.clock.advance(9.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)

    def test_body_deadline(self) -> None:
        """A body not complete within body_timeout of its head: 408, the request is never handled."""
        proto, transport = self.connect()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 900\r\n\r\n")
        for _ in range(59):
            proto.dataReceived(b"a")
            self.clock.advance(1)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertIn(b"408", transport.value())
        self.assertEqual(self.resource.bodies, [])

    def test_content_length_over_limit_refused_at_once(self) -> None:
        """A Content-Length over max_body gets 413 before any body byte is stored."""
        proto, transport = self.connect()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n")
        self.assertIn(b"413 Payload Too Large", transport.value())
        self.assertIn(b"100000000 bytes", transport.value())
        request = proto.requests[-1]
        for _ in range(1000):  # read and thrown away, so the client can read the 413
            proto.dataReceived(b"a" * 100_000)
        self.assertIsNone(request.content)  # nothing of the body was stored
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.resource.bodies, [])

    def test_refused_body_not_sent_aborted(self) -> None:
        """A refused declared body that stops coming is cut at the body deadline."""
        proto, transport = self.connect()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000\r\n\r\n")
        self.assertFalse(transport.disconnecting)
        aborted: list[bool] = []
        transport.abortConnection = lambda: aborted.append(True)  # type: ignore[method-assign]
        self.clock.advance(59)
        self.assertEqual(aborted, [])
        self.clock.advance(1)
        self.assertEqual(aborted, [True])

    def test_chunked_body_checked_as_it_arrives(self) -> None:
        """A chunked body is refused (413) as soon as it passes max_body; nothing past it is kept."""
        proto, transport = self.connect()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        request = proto.requests[-1]
        for _ in range(3):
            proto.dataReceived(b"190\r\n" + b"a" * 400 + b"\r\n")
        self.assertIn(b"413", transport.value())
        self.assertLessEqual(request.content.tell(), 1000)
        proto.dataReceived(b"0\r\n\r\n")
        self.assertEqual(self.resource.bodies, [])

    def test_body_at_limit_accepted(self) -> None:
        """A body of exactly max_body is handled."""
        proto, transport = self.connect()
        proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + b"a" * 1000)
        self.assertEqual(self.resource.bodies, [b"a" * 1000])

    def test_connection_cap(self) -> None:
        """
        Past max_connections, while every connection has a request in progress, a new one is
        answered 503 and closed; a closed one frees a slot.
        """
        conns = [self.connect(i) for i in range(4)]
        for proto, _ in conns:
            proto.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
        proto, transport = self.connect(9)
        self.assertIn(b"503", transport.value())
        self.assertTrue(transport.disconnecting)
        conns[0][0].connectionLost(None)
        _, transport = self.connect(10)
        self.assertEqual(transport.value(), b"")

    def test_idle_connections_make_room(self) -> None:
        """
        At the cap, a new connection takes the place of the one that has waited longest for a
        request head: 1000 idle connections cannot lock a client out.
        """
        idle = [self.connect(i) for i in range(4)]
        for i in range(4):
            self.clock.advance(1)
            idle.append(self.connect(100 + i))
        self.assertEqual([t.disconnecting for _, t in idle], [True] * 4 + [False] * 4)
        proto, transport = self.connect(9)
        proto.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(len(self.resource.pending), 1)
        self.assertEqual(len(self.site.channels), 4)

    def test_request_cap(self) -> None:
        """Past max_requests handled at once, a request gets 503 at once; finishing frees a slot."""
        for i in range(2):
            proto, _ = self.connect(i)
            proto.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        proto, transport = self.connect(3)
        proto.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertIn(b"503", transport.value())
        self.assertIn(b"bridge_max_requests", transport.value())
        self.finish_all()
        self.assertEqual(self.site.active_requests, 0)
        proto, transport = self.connect(4)
        proto.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(len(self.resource.pending), 1)

    def test_pipelining_bounded(self) -> None:
        """
        While a request is handled the channel stops reading once 16 KiB of pipelined requests
        wait (Twisted's channel), so never-read requests cost at most that plus one read.
        """
        proto, transport = self.connect()
        proto.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n" * 1000)
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(len(self.resource.pending), 1)

    def test_pipelined_answers_wait_for_a_full_write_buffer(self) -> None:
        """
        Pipelined requests already read are not all answered into a write buffer the client
        does not drain: once the transport says it is full, the channel stops parsing them, and
        carries on when it drains (1,000 pipelined GETs answered at once held ~1 MB per
        connection).
        """

        class _Now(Resource):
            isLeaf = True

            def render(self, request: Any) -> bytes:
                return b"x" * 1000

        class _FullAt(StringTransport):
            full = False

            def write(self, data: bytes) -> None:
                super().write(data)
                if not self.full and len(self.value()) >= 4000 and self.producer is not None:
                    self.full = True
                    self.producer.pauseProducing()

        site = LimitedSite(_Now(), LIMITS, self.clock)
        proto = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40001))
        transport = _FullAt(peerAddress=IPv4Address("TCP", "127.0.0.1", 40001))
        proto.makeConnection(transport)
        proto.dataReceived(b"GET /y HTTP/1.1\r\nHost: a\r\n\r\n" * 1000)
        answered = transport.value().count(b"HTTP/1.1 200")
        self.assertLessEqual(answered, 4)
        total = answered
        for _ in range(1000):
            if total >= 1000:
                break
            transport.clear()
            transport.full = False
            proto.resumeProducing()
            total += transport.value().count(b"HTTP/1.1 200")
        self.assertEqual(total, 1000)

    def inflight_site(self) -> tuple[Any, Any]:
        from axl.bridge.limits import InflightBytes

        inflight = InflightBytes(1500, small=100)
        limits = BridgeLimits(max_connections=10, max_requests=10, max_body=1000)
        self.site = LimitedSite(self.resource, limits, self.clock, inflight=inflight)
        return self.site, inflight

    def test_stored_bodies_count_as_they_arrive(self) -> None:
        """
        A stored body counts its declared length in the bridge's in-flight bytes from its head
        on: one that would pass bridge_max_inflight_bytes is 503 (Retry-After) at once, and its
        body is read and thrown away, never stored; the count is given back when the request
        finishes.
        """
        site, inflight = self.inflight_site()
        a, ta = self.connect(1)
        a.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + b"a" * 10)
        self.assertEqual(inflight.used, 1000)
        b, tb = self.connect(2)
        b.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + b"b" * 10)
        self.assertTrue(tb.value().startswith(b"HTTP/1.1 503"))
        self.assertIn(b"Retry-After: 1", tb.value())
        self.assertEqual(inflight.used, 1000)
        b.dataReceived(b"b" * 990)  # thrown away
        self.assertEqual(self.resource.bodies, [])
        small, ts = self.connect(3)
        small.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\n" + b"s" * 50)
        self.assertEqual(self.resource.bodies, [b"s" * 50])  # small bodies always go
        a.dataReceived(b"a" * 990)
        self.assertEqual(self.resource.bodies[-1], b"a" * 1000)
        self.finish_all()
        self.assertEqual(inflight.used, 0)

    def test_chunked_bodies_count_as_they_arrive(self) -> None:
        """A chunked body counts each chunk as it arrives; past the limit it is 503, nothing kept."""
        site, inflight = self.inflight_site()
        inflight.take(1000)  # another request holds 1000
        a, ta = self.connect(1)
        a.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        a.dataReceived(b"190\r\n" + b"c" * 400 + b"\r\n")
        self.assertEqual(inflight.used, 1400)
        a.dataReceived(b"190\r\n" + b"c" * 400 + b"\r\n")
        self.assertTrue(ta.value().startswith(b"HTTP/1.1 503"))
        self.assertEqual(self.resource.bodies, [])
        a.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(inflight.used, 1000)

    def test_lost_mid_body_gives_back(self) -> None:
        """A connection lost in the middle of a stored body gives its count back."""
        site, inflight = self.inflight_site()
        a, ta = self.connect(1)
        a.dataReceived(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 800\r\n\r\n" + b"a" * 10)
        self.assertEqual(inflight.used, 800)
        a.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(inflight.used, 0)

    def test_non_utf8_path(self) -> None:
        """A path that is not UTF-8 once unquoted is 400, with no traceback logged."""
        proto, transport = self.connect()
        with capturedLogs() as events:
            proto.dataReceived(b"GET /mcp/%ff%fe/x HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertIn(b"400", transport.value().split(b"\r\n")[0])
        self.assertIn(b"Non-UTF-8 encoding in URL", transport.value())
        self.assertEqual([e for e in events if "log_failure" in e], [])
        self.assertEqual(self.resource.pending, [])

    def test_refusals_aggregated(self) -> None:
        """10,000 refused connections cost a few log lines."""
        [self.connect(i) for i in range(4)]
        with capturedLogs() as events:
            for i in range(10_000):
                self.connect(100 + i)
            self.clock.advance(60)
        warnings = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertLessEqual(len(warnings), 3)
        self.assertEqual(self.site.refusals.total, 10_000 + 4)  # + the 4 idle ones timed out


class RouteLimitTests(TwoNodes):
    max_message_size = 10_000

    def test_duplicate_destination_header(self) -> None:
        """Two X-Destination-Peer-Id headers are ambiguous: 400, nothing sent."""
        code, _, body = self.call(self.client_a, "POST", "/send",
                                  {"X-Destination-Peer-Id": [self.B.hex(), self.A.hex()]}, b"hi")  # type: ignore[dict-item]
        self.assertEqual((code, body), (400, b"Duplicate X-Destination-Peer-Id header\n"))
        self.assertEqual(self.b.streams.queue.peek(), None)

    def test_deep_json_is_400(self) -> None:
        """JSON nested ~948 deep in /mcp or /a2a is 400 before parsing, not a 500."""
        deep = b"[" * 948 + b"]" * 948
        body = b'{"jsonrpc":"2.0","id":1,"method":"x","params":' + deep + b"}"
        self.assertIsInstance(json.loads(body), dict)  # valid JSON that Python can parse
        for path in (f"/mcp/{self.B.hex()}/svc", f"/a2a/{self.B.hex()}"):
            code, _, text = self.call(self.client_a, "POST", path, {}, body)
            self.assertEqual(code, 400, path)
            self.assertIn(b"nested deeper than 64", text)

    def test_background_forward_cap(self) -> None:
        """Notifications to an unreachable key: past bridge_max_background forwards, 503."""
        self.a.bridge.max_background = 5
        dead = bytes([9]) * 32
        self.net.black_holes.add(dead)
        note = json.dumps({"jsonrpc": "2.0", "method": "notifications/x"}).encode()
        codes = [self.call(self.client_a, "POST", f"/mcp/{dead.hex()}/svc", {}, note)[0]
                 for _ in range(8)]  # fmt: skip
        self.assertEqual(codes, [202] * 5 + [503] * 3)

    def test_background_forwards_count_their_bytes(self) -> None:
        """
        A notification forwarded in the background counts its envelope in the in-flight bytes
        until the forward ends (after its request has been answered 202); small ones get no
        exemption, so bridge_max_background x 64 KiB is not added to the bound.
        """
        dead = bytes([9]) * 32
        self.net.black_holes.add(dead)
        note = json.dumps({"jsonrpc": "2.0", "method": "notifications/x", "params": "p" * 500}).encode()
        self.assertEqual(self.call(self.client_a, "POST", f"/mcp/{dead.hex()}/svc", {}, note)[0], 202)
        held = self.a.bridge.inflight_bytes
        self.assertGreater(held, 500)
        self.a.bridge.max_inflight_bytes = held + 100  # room for no second one
        self.assertEqual(self.call(self.client_a, "POST", f"/mcp/{dead.hex()}/svc", {}, note)[0], 503)
        self.clock.advance(120)  # the forward gives up
        self.settle()
        self.assertEqual(self.a.bridge.inflight_bytes, 0)

    def test_inflight_bytes(self) -> None:
        """/send bodies in flight past bridge_max_inflight_bytes get 503; one alone always goes."""
        self.a.bridge.max_inflight_bytes = 1500
        self.a.bridge.max_message_size = 1000
        self.a.bridge.small_message = 100
        dead = bytes([9]) * 32
        self.net.black_holes.add(dead)
        hdr = {"X-Destination-Peer-Id": dead.hex()}
        d1 = self.client_a.request("POST", "http://127.0.0.1:9002/send", headers=hdr, data=b"a" * 1000)
        self.settle()
        self.assertNoResult(d1)
        code, _, body = self.call(self.client_a, "POST", "/send", hdr, b"b" * 1000)
        self.assertEqual(code, 503)
        self.assertIn(b"bridge_max_inflight_bytes", body)
        self.assertEqual(self.a.bridge.inflight_bytes, 1000)
        code, _, _ = self.call(self.client_a, "POST", "/send", {"X-Destination-Peer-Id": self.B.hex()}, b"s" * 100)
        self.assertEqual(code, 200)  # a small message always goes
