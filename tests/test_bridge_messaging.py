"""
Tests for the bridge's message routes (L{axl.bridge.messaging} behind L{axl.bridge.app.Bridge}):
two in-memory nodes joined by L{MemoryNet}, fake routers and A2A servers behind StubTreq.
"""

from __future__ import annotations

from typing import Any, ClassVar

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from axl.bridge.app import Bridge
from axl.config import config_from_dict
from axl.crypto.keys import Identity
from axl.node import Node
from axl.streams.service import build_streams_layer
from tests.streams_helpers import FakeHTTPServer, MemoryNet


class Services(Resource):
    """A router (C{/route}) and an A2A server (everything else) on one fake host."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.router = FakeHTTPServer(
            body=b'{"response": {"jsonrpc": "2.0", "id": 1, "result": {"ok": true}}, "error": null}'
        )
        self.a2a = FakeHTTPServer(body=b'{"jsonrpc": "2.0", "id": 7, "result": {}}')

    def render(self, request: Any) -> Any:
        target = self.router if request.path == b"/route" else self.a2a
        return target.render(request)


class TwoNodes(SynchronousTestCase):
    """Nodes A and B; B runs a router and an A2A server unless told otherwise."""

    b_config: ClassVar[dict[str, Any]] = {
        "router_addr": "http://127.0.0.1",
        "a2a_addr": "http://127.0.0.1",
    }
    max_message_size = 1000

    def setUp(self) -> None:
        self.clock = Clock()
        self.net = MemoryNet()
        self.a, self.client_a = self.make_node(1, {})
        self.b, self.client_b = self.make_node(2, self.b_config)
        self.A, self.B = self.a.public_key, self.b.public_key

    def make_node(self, n: int, extra: dict[str, Any]) -> tuple[Node, StubTreq]:
        config = config_from_dict({"max_message_size": self.max_message_size, **extra})
        node = Node(config, Identity(bytes([n]) * 32), self.clock)
        services = Services()
        http = StubTreq(services)
        node.services = services  # type: ignore[attr-defined]
        node.http = http  # type: ignore[attr-defined]
        layer = build_streams_layer(
            node,
            self.clock,
            http=http,
            dial=self.net.dial_from(node.public_key),
            plugin_streams=[],
        )
        node.streams = layer  # type: ignore[attr-defined]
        self.net.listen(node.public_key, config.tcp_port, layer.factory)
        return node, StubTreq(Bridge(node, self.clock).app.resource())

    def settle(self) -> None:
        for _ in range(20):
            self.net.flush()
            for node in (self.a, self.b):
                node.http.flush()  # type: ignore[attr-defined]
            self.client_a.flush()
            self.client_b.flush()

    def call(
        self,
        client: StubTreq,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, Any, bytes]:
        d = client.request(
            method, "http://127.0.0.1:9002" + path, headers=headers or {}, data=data
        )
        self.settle()
        response = self.successResultOf(d)
        body = self.successResultOf(response.content())
        return response.code, response.headers, body

    def header(self, headers: Any, name: str) -> str | None:
        values = headers.getRawHeaders(name)
        return values[0] if values else None

    def send(self, payload: bytes, to: bytes | None = None) -> tuple[int, Any, bytes]:
        dest = (to or self.B).hex()
        return self.call(
            self.client_a, "POST", "/send", {"X-Destination-Peer-Id": dest}, payload
        )


class SendRecvTests(TwoNodes):
    def test_send_then_recv(self) -> None:
        """/send answers 200 + X-Sent-Bytes; B's /recv gives the body and A's full key, then 204."""
        code, headers, body = self.send(b"hello\x00")
        self.assertEqual(
            (code, self.header(headers, "X-Sent-Bytes"), body), (200, "6", b"")
        )
        code, headers, body = self.call(self.client_b, "GET", "/recv")
        self.assertEqual((code, body), (200, b"hello\x00"))
        self.assertEqual(self.header(headers, "X-From-Peer-Id"), self.A.hex())
        self.assertEqual(
            self.header(headers, "Content-Type"), "application/octet-stream"
        )
        self.assertEqual(self.call(self.client_b, "GET", "/recv")[0], 204)

    def test_content_length(self) -> None:
        """Responses carry a Content-Length (not chunked encoding)."""
        self.send(b"12345")
        d = self.client_b.request("GET", "http://x/recv")
        self.settle()
        self.assertEqual(self.successResultOf(d).length, 5)

    def test_reply_to_sender(self) -> None:
        """X-From-Peer-Id is a valid /send destination: B replies and A receives it."""
        self.send(b"ping")
        sender = self.header(
            self.call(self.client_b, "GET", "/recv")[1], "X-From-Peer-Id"
        )
        code, _, _ = self.call(
            self.client_b,
            "POST",
            "/send",
            {"X-Destination-Peer-Id": sender or ""},
            b"pong",
        )
        self.assertEqual(code, 200)
        code, headers, body = self.call(self.client_a, "GET", "/recv")
        self.assertEqual(
            (code, body, self.header(headers, "X-From-Peer-Id")),
            (200, b"pong", self.B.hex()),
        )

    def test_empty_and_max_size(self) -> None:
        """A 0-byte body and a body of exactly max_message_size arrive intact; one more byte is 413."""
        self.assertEqual(self.send(b"")[0], 200)
        self.assertEqual(self.send(b"x" * 1000)[0], 200)
        self.assertEqual(
            self.call(self.client_b, "GET", "/recv")[:1]
            + (self.call(self.client_b, "GET", "/recv")[2],),
            (200, b"x" * 1000),
        )
        code, _, body = self.send(b"x" * 1001)
        self.assertEqual(
            (code, body),
            (413, b"Message too large: 1001 bytes (max_message_size is 1000)\n"),
        )
        self.assertEqual(
            self.net.pairs[0][0].written, 4 + 0 + 4 + 1000
        )  # nothing of it was sent

    def test_send_errors(self) -> None:
        """/send: wrong method 405, no header 400, bad ids 400 (AXL's messages)."""
        code, headers, body = self.call(self.client_a, "GET", "/send")
        self.assertEqual((code, body), (405, b"Method not allowed\n"))
        self.assertEqual(
            self.header(headers, "Content-Type"), "text/plain; charset=utf-8"
        )
        self.assertEqual(
            self.call(self.client_a, "POST", "/send", {}, b"x")[1:][1],
            b"Missing X-Destination-Peer-Id header\n",
        )
        for bad in ("zzzz", "ab" * 31, "ab" * 33, "ab" * 31 + "a"):
            code, _, body = self.call(
                self.client_a, "POST", "/send", {"X-Destination-Peer-Id": bad}, b"x"
            )
            self.assertEqual((code, body), (400, b"Invalid destination peer ID\n"), bad)

    def test_uppercase_key(self) -> None:
        """An uppercase destination key is accepted."""
        code, _, _ = self.call(
            self.client_a,
            "POST",
            "/send",
            {"X-Destination-Peer-Id": self.B.hex().upper()},
            b"x",
        )
        self.assertEqual(code, 200)

    def test_unknown_key_502(self) -> None:
        """A key no node listens on is 502 at once."""
        code, _, body = self.send(b"x", to=b"\x07" * 32)
        self.assertEqual(code, 502)
        self.assertTrue(body.startswith(b"Failed to reach peer: "))

    def test_unreachable_key_504_within_15s(self) -> None:
        """A key whose connect never completes is 504 within 15 s."""
        self.net.black_holes.add(b"\x07" * 32)
        d = self.client_a.request(
            "POST",
            "http://x/send",
            headers={"X-Destination-Peer-Id": "07" * 32},
            data=b"x",
        )
        self.settle()
        self.clock.advance(15)
        self.settle()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 504)

    def test_send_to_self(self) -> None:
        """/send to our own key lands in our own /recv."""
        self.assertEqual(self.send(b"me", to=self.A)[0], 200)
        code, headers, body = self.call(self.client_a, "GET", "/recv")
        self.assertEqual(
            (code, body, self.header(headers, "X-From-Peer-Id")),
            (200, b"me", self.A.hex()),
        )

    def test_recv_methods(self) -> None:
        """HEAD /recv never dequeues; other methods than GET/HEAD are 405."""
        self.send(b"keep")
        code, headers, _ = self.call(self.client_b, "HEAD", "/recv")
        self.assertEqual(
            (code, self.header(headers, "X-From-Peer-Id")), (200, self.A.hex())
        )
        for method in ("POST", "DELETE", "PUT"):
            self.assertEqual(self.call(self.client_b, method, "/recv")[0], 405, method)
        self.assertEqual(self.call(self.client_b, "GET", "/recv")[2], b"keep")
        self.assertEqual(self.call(self.client_b, "HEAD", "/recv")[0], 204)

    def test_recv_long_poll(self) -> None:
        """/recv?wait=S answers as soon as a message arrives, or 204 after S seconds."""
        d = self.client_b.request("GET", "http://x/recv?wait=5")
        self.settle()
        self.assertNoResult(d)
        self.send(b"late")
        response = self.successResultOf(d)
        self.assertEqual(
            (response.code, self.successResultOf(response.content())), (200, b"late")
        )
        d2 = self.client_b.request("GET", "http://x/recv?wait=5")
        self.settle()
        self.clock.advance(5)
        self.settle()
        self.assertEqual(self.successResultOf(d2).code, 204)
        self.assertEqual(self.call(self.client_b, "GET", "/recv?wait=abc")[0], 400)
        self.assertEqual(self.call(self.client_b, "GET", "/recv?wait=-1")[0], 400)

    def test_many_in_order(self) -> None:
        """200 small messages sent back to back arrive in order."""
        ds = [
            self.client_a.request(
                "POST",
                "http://x/send",
                headers={"X-Destination-Peer-Id": self.B.hex()},
                data=b"%d" % i,
            )
            for i in range(200)
        ]
        got = []
        for _ in range(400):
            self.settle()
            message = self.b.streams.queue.get()  # type: ignore[attr-defined]
            if message is None:
                break
            got.append(message.payload)
        self.assertEqual(got, [b"%d" % i for i in range(200)])
        self.assertEqual({self.successResultOf(d).code for d in ds}, {200})


class QueueFullTests(TwoNodes):
    b_config: ClassVar[dict[str, Any]] = {}

    def setUp(self) -> None:
        super().setUp()
        # recv_queue_max_messages may not be a config key yet: bound B's queue directly.
        self.b.streams.queue.max_messages = 2  # type: ignore[attr-defined]

    def test_queue_full_loses_nothing(self) -> None:
        """With B's queue full, /send waits instead of dropping; draining B delivers all, in order."""
        ds = [
            self.client_a.request(
                "POST",
                "http://x/send",
                headers={"X-Destination-Peer-Id": self.B.hex()},
                data=b"m%d" % i,
            )
            for i in range(6)
        ]
        answered: list[Any] = []
        for d in ds:
            d.addCallback(lambda r: answered.append(r) or r)
        self.settle()
        self.assertLess(len(answered), 6)
        got = []
        for _ in range(20):
            code, _, body = self.call(self.client_b, "GET", "/recv")
            if code == 204:
                break
            got.append(body)
        self.assertEqual(got, [b"m%d" % i for i in range(6)])
        self.assertEqual({self.successResultOf(d).code for d in ds}, {200})

    def test_send_timeout_503(self) -> None:
        """A receiver that never drains makes /send fail 503 after the send timeout (30 s)."""
        ds = [
            self.client_a.request(
                "POST",
                "http://x/send",
                headers={"X-Destination-Peer-Id": self.B.hex()},
                data=b"m%d" % i,
            )
            for i in range(6)
        ]
        self.settle()
        self.clock.advance(30)
        self.settle()
        codes = [self.successResultOf(d).code for d in ds]
        self.assertIn(503, codes)
        self.assertEqual(set(codes), {200, 503})
