"""
Tests for the bridge's message routes (L{axl.bridge.app.Bridge}):
two in-memory nodes joined by L{MemoryNet}, fake routers and A2A servers behind StubTreq.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from axl.bridge.app import Bridge
from axl.bridge.http import absolute_card_urls, bridge_authority
from axl.config import config_from_dict
from axl.crypto.keys import Identity
from axl.bridge.topology import topology_document
from axl.service import build_bridge
from axl.streams.service import StreamsLayer, build_streams_layer
from axl.streams.framing import acknowledged_port
from axl.streams.listener import AcknowledgedMessageFactory
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


class _NoPeers:
    def peers_info(self) -> list[dict[str, Any]]:
        return []

    def tree_info(self) -> list[dict[str, object]]:
        return []


@dataclass
class BridgeNode:
    """One in-memory node down to its streams: what the bridge is built on, and its fake services."""

    public_key: bytes
    streams: StreamsLayer
    bridge: Bridge
    services: Services
    http: StubTreq


class TwoNodes(SynchronousTestCase):
    """Nodes A and B; B runs a router and an A2A server unless told otherwise."""

    b_config: ClassVar[dict[str, Any]] = {
        "router_addr": "http://127.0.0.1",
        "a2a_addr": "http://127.0.0.1",
    }
    max_message_size = 1000
    #: Whether the nodes listen on the acknowledged port too (axl nodes), or only on tcp_port
    #: (like Go AXL nodes).
    acknowledged = True

    def setUp(self) -> None:
        self.clock = Clock()
        self.net = MemoryNet()
        self.a, self.client_a = self.make_node(1, {})
        self.b, self.client_b = self.make_node(2, self.b_config)
        self.A, self.B = self.a.public_key, self.b.public_key

    def make_node(self, n: int, extra: dict[str, Any]) -> tuple[BridgeNode, StubTreq]:
        config = config_from_dict({"max_message_size": self.max_message_size, **extra})
        identity = Identity(bytes([n]) * 32)
        services = Services()
        http = StubTreq(services)
        layer = build_streams_layer(
            config,
            identity.public_key,
            self.clock,
            self.net.dial_from(identity.public_key),
            http,
            plugin_streams=[],
        )
        bridge = build_bridge(
            config, self.clock, layer, partial(topology_document, identity, _NoPeers(), _NoPeers())
        )
        node = BridgeNode(identity.public_key, layer, bridge, services, http)
        self.net.listen(node.public_key, config.tcp_port, layer.factory)
        if self.acknowledged:
            self.net.listen(
                node.public_key, acknowledged_port(config.tcp_port), AcknowledgedMessageFactory(layer.factory)
            )
        return node, StubTreq(bridge.resource())  # what the site serves: /send and /recv hot routes

    def settle(self) -> None:
        for _ in range(20):
            self.net.flush()
            for node in (self.a, self.b):
                node.http.flush()
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
        head = 4 + 2  # the frame's length, then the (empty) metadata's length
        self.assertEqual(self.net.pairs[0][0].written, head + 0 + head + 1000)  # nothing of it was sent

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
            message = self.b.streams.queue.get()
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
        self.b.streams.queue.max_messages = 2

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


class OversizeTests(TwoNodes):
    """B's max_message_size (64 KiB) is below A's (1 MiB): B refuses with an error frame."""

    max_message_size = 1 << 20
    b_config: ClassVar[dict[str, Any]] = {
        **TwoNodes.b_config,
        "max_message_size": 64 * 1024,
    }

    def refusal(self, size: int) -> str:
        return f"message of {size} bytes exceeds the receiver's max_message_size of 65536 bytes"

    def test_send_over_receivers_limit_is_413(self) -> None:
        """/send of a message over B's limit (but within A's) answers 413 with B's text, not 502."""
        size = 64 * 1024 + 1
        code, _, body = self.send(b"x" * size)
        self.assertEqual((code, body), (413, self.refusal(size).encode() + b"\n"))
        self.assertEqual(self.call(self.client_b, "GET", "/recv")[0], 204)
        self.assertEqual(self.send(b"fine")[0], 200)
        self.assertEqual(self.call(self.client_b, "GET", "/recv")[2], b"fine")

    def test_mcp_over_receivers_limit_is_jsonrpc_error(self) -> None:
        """/mcp with a request over B's limit gets HTTP 200 and JSON-RPC -32603 with B's text."""
        request = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"a": "x" * 70000}}
        code, _, body = self.call(
            self.client_a,
            "POST",
            f"/mcp/{self.B.hex()}/weather",
            {"Content-Type": "application/json"},
            json.dumps(request).encode(),
        )
        self.assertEqual(code, 200)
        reply = json.loads(body)
        self.assertEqual((reply["id"], reply["error"]["code"]), (5, -32603))
        self.assertRegex(
            reply["error"]["message"],
            r"^message of \d+ bytes exceeds the receiver's max_message_size of 65536 bytes$",
        )
        self.assertEqual(self.b.services.router.requests, [])  # type: ignore[attr-defined]

    def test_a2a_over_receivers_limit_is_remote_error(self) -> None:
        """/a2a with a request over B's limit gets its usual remote-error answer (502 JSON) with B's text."""
        request = {"jsonrpc": "2.0", "id": 8, "method": "message/send", "params": {"a": "x" * 70000}}
        code, _, body = self.call(
            self.client_a,
            "POST",
            f"/a2a/{self.B.hex()}",
            {"Content-Type": "application/json"},
            json.dumps(request).encode(),
        )
        self.assertEqual(code, 502)
        reply = json.loads(body)
        self.assertEqual((reply["id"], reply["error"]["code"]), (8, -32603))
        self.assertIn("exceeds the receiver's max_message_size of 65536 bytes", reply["error"]["message"])


def _card(url: Any) -> dict[str, Any]:
    """An agent card shaped as AXL's A2A server serves it (spec/axl-node.md section 10)."""
    return {
        "name": "MCP Router A2A Agent",
        "supportedInterfaces": [{"url": url, "protocolBinding": "JSONRPC"}],
        "version": "1.0.0",
        "capabilities": {"streaming": True, "pushNotifications": False},
        "skills": [{"id": "weather", "name": "Weather Service", "tags": ["weather", "mcp"]}],
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3",
        "url": url,
    }


class RemoteAgentCardTests(TwoNodes):
    """GET /a2a/{peer}: the remote card's relative interface URLs become our bridge's URL."""

    def get_card(self, answer: bytes, headers: dict[str, str] | None = None, path_key: str | None = None) -> tuple[int, bytes]:
        self.b.services.a2a.answer = (200, {}, answer)  # type: ignore[attr-defined]
        code, _, body = self.call(self.client_a, "GET", "/a2a/" + (path_key or self.B.hex()), headers)
        return code, body

    def test_relative_url_made_absolute_from_host(self) -> None:
        """
        Relative C{supportedInterfaces[*].url} and top-level C{url} become
        C{http://<Host header>/a2a/<peer>}; every other field is unchanged.
        """
        card = _card("/a2a/" + self.B.hex())
        code, body = self.get_card(json.dumps(card).encode())
        self.assertEqual(code, 200)
        expected = dict(card)
        url = "http://127.0.0.1:9002/a2a/" + self.B.hex()
        expected["url"] = url
        expected["supportedInterfaces"] = [{"url": url, "protocolBinding": "JSONRPC"}]
        self.assertEqual(json.loads(body), expected)

    def test_other_host_and_upper_case_peer(self) -> None:
        """The Host header the client used decides the authority; the peer id is written in lower case."""
        card = _card("/a2a/x")
        code, body = self.get_card(
            json.dumps(card).encode(), {"Host": "localhost:8123"}, self.B.hex().upper()
        )
        self.assertEqual(code, 200)
        url = "http://localhost:8123/a2a/" + self.B.hex()
        got = json.loads(body)
        self.assertEqual((got["url"], got["supportedInterfaces"][0]["url"]), (url, url))

    def test_ipv6_host(self) -> None:
        """A bracketed IPv6 Host header is kept bracketed in the URL."""
        code, body = self.get_card(json.dumps(_card("/a2a/k")).encode(), {"Host": "[::1]:9002"})
        self.assertEqual(code, 200)
        self.assertEqual(json.loads(body)["url"], "http://[::1]:9002/a2a/" + self.B.hex())

    def test_absolute_url_untouched(self) -> None:
        """Absolute interface URLs are served exactly as the remote produced them."""
        card = _card("https://agent.example/a2a")
        card["supportedInterfaces"].append({"url": "/a2a/k", "protocolBinding": "GRPC"})
        code, body = self.get_card(json.dumps(card).encode())
        self.assertEqual(code, 200)
        got = json.loads(body)
        self.assertEqual(got["url"], "https://agent.example/a2a")
        self.assertEqual(
            [i["url"] for i in got["supportedInterfaces"]],
            ["https://agent.example/a2a", "http://127.0.0.1:9002/a2a/" + self.B.hex()],
        )

    def test_card_without_urls_unchanged(self) -> None:
        """A card object with no relative URL is passed on unchanged."""
        card = {"name": "n", "supportedInterfaces": ["odd", {"protocolBinding": "JSONRPC"}], "url": 5}
        self.assertEqual(json.loads(self.get_card(json.dumps(card).encode())[1]), card)

    def test_non_object_card_passed_through(self) -> None:
        """A JSON card that is not an object is passed through as it was (no rewriting)."""
        self.assertEqual(self.get_card(b'["/a2a/k", {"url": "/a2a/k"}]'), (200, b'["/a2a/k",{"url":"/a2a/k"}]'))
        self.assertEqual(self.get_card(b'"/a2a/k"'), (200, b'"/a2a/k"'))

    def test_non_json_card_is_502(self) -> None:
        """A card body that is not JSON at all still answers 502 (as before)."""
        self.assertEqual(self.get_card(b"<html>")[0], 502)

    def test_post_reply_not_rewritten(self) -> None:
        """A POSTed JSON-RPC answer with a C{url} field is not a card and stays as it is."""
        self.b.services.a2a.answer = (200, {}, b'{"jsonrpc": "2.0", "id": 1, "url": "/a2a/k"}')  # type: ignore[attr-defined]
        code, _, body = self.call(self.client_a, "POST", "/a2a/" + self.B.hex(), {}, b'{"id": 1}')
        self.assertEqual((code, json.loads(body)["url"]), (200, "/a2a/k"))


class CardHelperTests(SynchronousTestCase):
    """The pure helpers behind the card rewrite."""

    def test_authority_from_host_header(self) -> None:
        """A well-formed Host header (name, IPv4, bracketed IPv6, with or without port) is used as is."""
        for host in ("127.0.0.1:9002", "localhost", "[::1]:9002", "[fe80::1%25eth0]:80", " node.lan:1 "):
            self.assertEqual(bridge_authority(host, "127.0.0.1", 9002), host.strip())

    def test_authority_fallback_to_config(self) -> None:
        """No Host header, or a malformed one, falls back to bridge_addr:api_port, IPv6 bracketed."""
        self.assertEqual(bridge_authority(None, "127.0.0.1", 9002), "127.0.0.1:9002")
        self.assertEqual(bridge_authority("", "::1", 9102), "[::1]:9102")
        self.assertEqual(bridge_authority("a b/c", "localhost", 1), "localhost:1")
        self.assertEqual(bridge_authority("::1", "fe80::1%eth0", 2), "[fe80::1%25eth0]:2")

    def test_authority_wildcard_uses_local_address(self) -> None:
        """A wildcard bridge_addr is replaced by the socket's local address when known."""
        self.assertEqual(bridge_authority(None, "0.0.0.0", 9002, "10.0.0.5"), "10.0.0.5:9002")
        self.assertEqual(bridge_authority(None, "::", 9002, "::1"), "[::1]:9002")
        self.assertEqual(bridge_authority(None, "::", 9002), "[::]:9002")

    def test_rewrite_is_a_copy(self) -> None:
        """The input card is not modified; None means nothing was relative."""
        card = _card("/a2a/k")
        card["additionalInterfaces"] = [{"url": "a2a/k", "transport": "JSONRPC"}, {"url": "//h/x"}]
        new = absolute_card_urls(card, "http://b/a2a/p")
        assert new is not None
        self.assertEqual(card["url"], "/a2a/k")
        self.assertEqual(card["supportedInterfaces"][0]["url"], "/a2a/k")
        self.assertEqual(
            [i["url"] for i in new["additionalInterfaces"]], ["http://b/a2a/p", "//h/x"]
        )
        self.assertIsNone(absolute_card_urls(_card("http://x/y"), "http://b/a2a/p"))
        self.assertIsNone(absolute_card_urls({"url": ""}, "http://b/a2a/p"))


class DeliveryStatusTests(SynchronousTestCase):
    """The one mapping from the streams' delivery errors to HTTP statuses."""

    def test_each_kind(self) -> None:
        """Unreachable and remote errors are 502, a full peer 503, a timeout 504, a refusal 413."""
        from axl.bridge.app import delivery_status
        from axl.streams import errors

        cases = [
            (errors.PeerUnreachable("x"), 502),
            (errors.RemoteError("x"), 502),
            (errors.SendTimedOut("x"), 503),
            (errors.PeerTimedOut("x"), 504),
            (errors.MessageRefused("x", 10), 413),
            (errors.DeliveryError("x"), 502),
        ]
        self.assertEqual([delivery_status(e) for e, _ in cases], [code for _, code in cases])

    def test_subclass_inherits(self) -> None:
        """A more specific kind defined later gets its parent's status."""
        from axl.bridge.app import delivery_status
        from axl.streams.errors import PeerTimedOut

        class Slow(PeerTimedOut):
            pass

        self.assertEqual(delivery_status(Slow("x")), 504)
