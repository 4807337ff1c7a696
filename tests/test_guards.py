# -*- test-case-name: tests.test_guards -*-
"""
Guards that refuse something, each shown to refuse (issue 11, item 2), where no other module
exercises it: request-body limits of chunked uploads (no Content-Length) at the bridge, the cap on
a client-supplied C{/recv?wait=S}, and the streams' own bounds (the receive queue's minimum, the
sender's reply bound on C{/send} connections, oldest-first with several waiting senders).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from axl.bridge import Bridge
from axl.bridge.mcp_sessions import McpSessions
from axl.streams.recv_queue import Message, RecvQueue
from axl.streams.registry import StreamRegistry

LIMIT = 100
PEER = "ab" * 32


class FakeSender:
    """Records what the bridge hands to the streams."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []
        self.requests: list[tuple[bytes, bytes]] = []

    def send(self, dest: bytes, payload: bytes) -> Any:
        from twisted.internet.defer import succeed

        self.sent.append((dest, payload))
        return succeed(len(payload))

    def request(self, dest: bytes, payload: bytes, timeout: float) -> Any:
        from twisted.internet.defer import Deferred

        self.requests.append((dest, payload))
        return Deferred()


class ChunkedBodyTests(SynchronousTestCase):
    """Raw HTTP/1.1 to the bridge's site, bodies sent chunked (no Content-Length)."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.sender = FakeSender()
        self.queue = RecvQueue(self.clock)
        bridge = Bridge(
            lambda: {}, self.sender, self.queue, self.clock, McpSessions(self.clock, ttl=60),  # type: ignore[arg-type]
            max_message_size=LIMIT, recv_wait_max=5,
        )  # fmt: skip
        # On the test's clock, without idle timers: nothing of it may reach the global reactor.
        self.site = Site(bridge.app.resource(), timeout=None, reactor=self.clock)

    def http(self, method: str, path: str, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, bytes]:
        proto = self.site.buildProtocol(None)
        t = StringTransport()
        proto.makeConnection(t)
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        body = b""
        if chunks:
            head += "Transfer-Encoding: chunked\r\n"
            body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        proto.dataReceived(head.encode() + b"\r\n" + body)
        raw = t.value()
        status = int(raw.split(b" ", 2)[1])
        return status, raw.split(b"\r\n\r\n", 1)[1]

    def test_chunked_send_over_the_limit_is_413_and_not_sent(self) -> None:
        """A chunked /send body one byte over max_message_size is 413 with its size; nothing is sent."""
        status, body = self.http("POST", "/send", {"X-Destination-Peer-Id": PEER}, [b"a" * 60, b"b" * 41])
        self.assertEqual(status, 413)
        self.assertIn(b"Message too large: 101 bytes (max_message_size is 100)", body)
        self.assertEqual(self.sender.sent, [])

    def test_chunked_send_at_the_limit_is_sent_whole(self) -> None:
        """A chunked /send body of exactly max_message_size is sent whole, not truncated."""
        status, _ = self.http("POST", "/send", {"X-Destination-Peer-Id": PEER}, [b"a" * 60, b"b" * 40])
        self.assertEqual(status, 200)
        self.assertEqual(self.sender.sent, [(bytes.fromhex(PEER), b"a" * 60 + b"b" * 40)])

    def test_chunked_mcp_over_the_limit_is_refused_not_forwarded(self) -> None:
        """
        A chunked /mcp body over the limit is refused (400) and never forwarded: not even when its
        first max_message_size bytes are valid JSON on their own (trailing blanks).
        """
        rpc = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "x"}).encode()
        status, _ = self.http("POST", f"/mcp/{PEER}/svc", {"Content-Type": "application/json"}, [rpc, b" " * LIMIT])
        self.assertEqual(status, 400)
        self.assertEqual(self.sender.requests, [])

    def test_recv_wait_is_capped(self) -> None:
        """/recv?wait=1000 waits only recv_wait_max (5 s) before 204; a negative wait is 400."""
        proto = self.site.buildProtocol(None)
        t = StringTransport()
        proto.makeConnection(t)
        proto.dataReceived(b"GET /recv?wait=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.clock.advance(4.9)
        self.assertEqual(t.value(), b"")
        self.clock.advance(0.2)
        self.assertTrue(t.value().startswith(b"HTTP/1.1 204"))
        self.assertEqual(self.http("GET", "/recv?wait=-1", {}, [])[0], 400)
        self.assertEqual(self.http("GET", "/recv?wait=nan", {}, [])[0], 400)


class QueueGuardTests(SynchronousTestCase):
    def test_queue_needs_room_for_one(self) -> None:
        """A receive queue bounded to no messages or no bytes is refused."""
        self.assertRaises(ValueError, RecvQueue, Clock(), max_messages=0)
        self.assertRaises(ValueError, RecvQueue, Clock(), max_bytes=0)

    def test_oldest_first_with_several_waiting(self) -> None:
        """With several senders waiting, room goes round robin, each sender's messages oldest first."""
        a, b = b"a" * 32, b"b" * 32
        q = RecvQueue(Clock(), max_messages=1)
        q.put(a, b"a0")
        waiting = [q.put(a, b"a1"), q.put(a, b"a2"), q.put(b, b"b1"), q.put(b, b"b2")]
        out = []
        while (m := q.get()) is not None:
            out.append(m)
        self.assertEqual(
            out,
            [Message(a, b"a0"), Message(a, b"a1"), Message(b, b"b1"), Message(a, b"a2"), Message(b, b"b2")],
        )
        for d in waiting:
            self.successResultOf(d)

    def test_registry_without_streams_queues_json(self) -> None:
        """With no stream registered, even an envelope-shaped payload is an ordinary message."""
        q = RecvQueue(Clock())
        registry = StreamRegistry(q, Clock())
        self.assertIsNone(self.successResultOf(registry.dispatch(b'{"service":"s"}', b"c" * 32)))
        self.assertEqual(q.get(), Message(b"c" * 32, b'{"service":"s"}'))
