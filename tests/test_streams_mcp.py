"""Tests for L{axl.streams.mcp}: forwarding MCP envelopes to the router's /route."""

from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from axl.streams.interfaces import IStream
from axl.streams.mcp import MCPStream
from tests.streams_helpers import FakeHTTPServer

A = bytes(range(32))
URL = "http://127.0.0.1:9003/route"


class MCPStreamTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.router = FakeHTTPServer(
            body=b'{"response": {"jsonrpc": "2.0", "id": 1, "result": {}}, "error": null}'
        )
        self.http = StubTreq(self.router)
        self.stream = MCPStream(self.http, URL, self.clock, timeout=5)

    def call(self, envelope: dict) -> dict:  # type: ignore[type-arg]
        d = self.stream.handle(envelope, A)
        self.http.flush()
        return json.loads(self.successResultOf(d))  # type: ignore[no-any-return]

    def test_interface(self) -> None:
        """MCPStream provides IStream and claims envelopes with a non-empty service."""
        verifyObject(IStream, self.stream)
        self.assertTrue(self.stream.matches({"Service": "w"}))
        self.assertFalse(self.stream.matches({"service": ""}))
        self.assertFalse(self.stream.matches({"a2a": True}))

    def test_forward_with_caller_key(self) -> None:
        """The router gets service, request and the caller's full key (body and X-From-Peer-Id)."""
        reply = self.call(
            {"service": "weather", "request": {"id": 1, "method": "tools/list"}}
        )
        self.assertEqual(
            reply,
            {
                "service": "weather",
                "response": {"jsonrpc": "2.0", "id": 1, "result": {}},
            },
        )
        (req,) = self.router.requests
        self.assertEqual((req["method"], req["path"]), ("POST", "/route"))
        self.assertEqual(req["headers"]["x-from-peer-id"], A.hex())
        self.assertEqual(req["headers"]["content-type"], "application/json")
        self.assertEqual(
            json.loads(req["body"]),
            {
                "service": "weather",
                "request": {"id": 1, "method": "tools/list"},
                "from_peer_id": A.hex(),
            },
        )

    def test_headers_both_ways(self) -> None:
        """MCP transport headers go to the router and the router's headers come back in the reply."""
        self.router.answer = (
            200,
            {},
            b'{"response": 1, "error": null, "headers": {"Mcp-Session-Id": "srv-1"}}',
        )
        reply = self.call(
            {"service": "s", "request": {}, "headers": {"Mcp-Method": "tools/call"}}
        )
        self.assertEqual(
            reply,
            {"service": "s", "response": 1, "headers": {"Mcp-Session-Id": "srv-1"}},
        )
        self.assertEqual(
            json.loads(self.router.requests[0]["body"])["headers"],
            {"Mcp-Method": "tools/call"},
        )

    def test_router_error(self) -> None:
        """A router error becomes C{router error: ...}; the HTTP status does not matter."""
        self.router.answer = (
            404,
            {},
            b'{"response": null, "error": "Service not found: nope"}',
        )
        self.assertEqual(
            self.call({"service": "nope"}),
            {
                "service": "nope",
                "response": None,
                "error": "router error: Service not found: nope",
            },
        )

    def test_router_bad_json(self) -> None:
        """A non-JSON router body becomes a parse error envelope."""
        self.router.answer = (500, {}, b"<html>")
        self.assertTrue(
            self.call({"service": "s"})["error"].startswith(
                "failed to parse router response (HTTP 500)"
            )
        )

    def test_router_without_response_answers(self) -> None:
        """A router reply with no C{response} key still gets an answer (AXL stays silent)."""
        self.router.answer = (200, {}, b'{"error": null}')
        self.assertEqual(
            self.call({"service": "s"})["error"],
            "router reply (HTTP 200) has no response",
        )

    def test_router_null_response(self) -> None:
        """C{"response": null} is a valid answer and carried as such."""
        self.router.answer = (200, {}, b'{"response": null, "error": null}')
        self.assertEqual(
            self.call({"service": "s"}), {"service": "s", "response": None}
        )

    def test_router_slow(self) -> None:
        """A router slower than the stream timeout gives an error envelope, not silence."""
        self.router.answer = Deferred()
        d = self.stream.handle({"service": "s"}, A)
        self.http.flush()
        self.clock.advance(5.1)
        self.assertEqual(
            json.loads(self.successResultOf(d)),
            {
                "service": "s",
                "response": None,
                "error": "failed to contact router: no answer within 5 s",
            },
        )

    def test_router_unreachable(self) -> None:
        """A router that cannot be reached gives C{failed to contact router: ...}."""
        stream = MCPStream(StubTreq(FakeHTTPServer()), "http://[bad", self.clock)
        d = stream.handle({"service": "s"}, A)
        self.assertTrue(
            json.loads(self.successResultOf(d))["error"].startswith(
                "failed to contact router: "
            )
        )

    def test_error_reply(self) -> None:
        """The error envelope names the service."""
        self.assertEqual(
            json.loads(self.stream.error_reply({"service": "w"}, "nope")),
            {"service": "w", "response": None, "error": "nope"},
        )
