"""
Tests for L{axl.integrations.mcp_router} and L{axl.integrations.registry}: every endpoint, the
forwarding rules and their errors, with StubTreq over Klein fakes.
"""

from __future__ import annotations

import json
from typing import Any

from treq.client import HTTPClient
from treq.testing import StubTreq
from twisted.internet.defer import fail
from twisted.internet.error import ConnectionRefusedError
from twisted.web.iweb import IAgent
from zope.interface import implementer
from twisted.internet.task import Clock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from axl.errors import ConfigError
from axl.integrations.mcp_router import MCPRouter
from axl.integrations.registry import Registry
from tests.integrations_fakes import FakeService, json_body

SERVICE_URL = "http://svc.test/mcp"


@implementer(IAgent)
class _RefusingAgent:
    def request(self, method: bytes, uri: bytes, headers: Any = None, bodyProducer: Any = None) -> Any:
        return fail(ConnectionRefusedError("refused"))


class RouterTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.service = FakeService()
        self.service_http = StubTreq(self.service.app.resource())
        self.registry = Registry(self.clock)
        self.router = MCPRouter(self.registry, self.service_http, self.clock)
        self.http = StubTreq(self.router.app.resource())

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any, Any]:
        d = self.http.request(method, "http://router.test" + path, data=body)
        self.http.flush()
        self.service_http.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(response.content())
        return response.code, json.loads(content), response.headers

    def route(self, body: dict[str, Any]) -> tuple[int, Any]:
        code, reply, _ = self.call("POST", "/route", json_body(body))
        return code, reply


class RegisterTests(RouterTestCase):
    def test_register_and_list(self) -> None:
        """POST /register stores the service; GET /services lists it with AXL's fields."""
        code, body, headers = self.call(
            "POST", "/register", json_body({"service": "weather", "endpoint": SERVICE_URL})
        )
        self.assertEqual((code, body), (200, {"status": "registered", "service": "weather"}))
        self.assertEqual(
            headers.getRawHeaders("Content-Type"), ["application/json; charset=utf-8"]
        )
        code, body, _ = self.call("GET", "/services")
        self.assertEqual(
            body,
            {
                "weather": {
                    "endpoint": SERVICE_URL,
                    "registered_at": "2023-11-14T22:13:20+00:00",
                    "healthy": True,
                }
            },
        )

    def test_reregister_overwrites(self) -> None:
        """Registering a name again replaces its endpoint."""
        self.call("POST", "/register", json_body({"service": "w", "endpoint": SERVICE_URL}))
        self.call("POST", "/register", json_body({"service": "w", "endpoint": "http://x.test/"}))
        self.assertEqual(self.registry.lookup("w").endpoint, "http://x.test/")  # type: ignore[union-attr]

    def test_register_invalid_json(self) -> None:
        """Invalid JSON on /register is a 400 with an 'Invalid JSON' message."""
        code, body, _ = self.call("POST", "/register", b"{nope")
        self.assertEqual(code, 400)
        self.assertTrue(body["error"].startswith("Invalid JSON: "))

    def test_register_non_object(self) -> None:
        """A JSON array on /register is a 400, not a 500."""
        code, body, _ = self.call("POST", "/register", b"[1]")
        self.assertEqual(code, 400)
        self.assertIn("expected a JSON object", body["error"])

    def test_register_missing_fields(self) -> None:
        """/register without both fields is AXL's 400 message."""
        code, body, _ = self.call("POST", "/register", json_body({"service": "w"}))
        self.assertEqual(
            (code, body), (400, {"error": "Both 'service' and 'endpoint' are required"})
        )

    def test_register_bad_endpoint(self) -> None:
        """An endpoint that is not an http(s) URL is rejected with 400."""
        code, body, _ = self.call(
            "POST", "/register", json_body({"service": "w", "endpoint": "ftp://x/"})
        )
        self.assertEqual(code, 400)
        self.assertIn("http", body["error"])
        self.assertEqual(len(self.registry), 0)

    def test_register_non_string(self) -> None:
        """Non-string service or endpoint values are a 400."""
        code, _, _ = self.call("POST", "/register", json_body({"service": 5, "endpoint": "x"}))
        self.assertEqual(code, 400)

    def test_deregister(self) -> None:
        """DELETE /register/{service} removes it; a second DELETE is a 404."""
        self.call("POST", "/register", json_body({"service": "w", "endpoint": SERVICE_URL}))
        code, body, _ = self.call("DELETE", "/register/w")
        self.assertEqual((code, body), (200, {"status": "deregistered", "service": "w"}))
        code, body, _ = self.call("DELETE", "/register/w")
        self.assertEqual((code, body), (404, {"error": "Service not found: w"}))

    def test_health(self) -> None:
        """GET /health counts the services."""
        self.assertEqual(self.call("GET", "/health")[1], {"status": "ok", "service_count": 0})
        self.call("POST", "/register", json_body({"service": "w", "endpoint": SERVICE_URL}))
        self.assertEqual(self.call("GET", "/health")[1], {"status": "ok", "service_count": 1})

    def test_services_empty(self) -> None:
        """GET /services with nothing registered is {}."""
        self.assertEqual(self.call("GET", "/services")[:2], (200, {}))


class PersistenceTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """With a state file, registrations survive a new Registry; deregistration too."""
        path = FilePath(self.mktemp())
        clock = Clock()
        first = Registry(clock, path)
        first.register("a", "http://a.test/")
        first.register("b", "http://b.test/")
        first.deregister("a")
        second = Registry(clock, path)
        self.assertEqual(second.names(), ["b"])
        self.assertEqual(second.lookup("b").endpoint, "http://b.test/")  # type: ignore[union-attr]

    def test_corrupt_file(self) -> None:
        """A state file that is not a JSON object of entries is a ConfigError naming the file."""
        path = FilePath(self.mktemp())
        for content in (b"{", b"[]", b'{"a": {"endpoint": 3}}', b'{"a": {"endpoint": "x"}}'):
            path.setContent(content)
            e = self.assertRaises(ConfigError, Registry, Clock(), path)
            self.assertIn(path.path, str(e))


class RouteTests(RouterTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.registry.register("weather", SERVICE_URL)

    def test_forward_json(self) -> None:
        """A JSON reply is returned as the response; the service gets AXL's headers and body."""
        request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        code, reply = self.route({"service": "weather", "request": request, "from_peer_id": "cd" * 32})
        self.assertEqual(
            (code, reply),
            (200, {"response": {"jsonrpc": "2.0", "id": 1, "result": {"ok": True}}, "error": None}),
        )
        headers, body = self.service.requests[0]
        self.assertEqual(json.loads(body), request)
        self.assertEqual(headers["X-From-Peer-Id"], "cd" * 32)
        self.assertEqual(headers["X-Service"], "weather")
        self.assertEqual(headers["Accept"], "application/json, text/event-stream")
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertNotIn("Mcp-Session-Id", headers)

    def test_default_peer(self) -> None:
        """Without from_peer_id the service sees X-From-Peer-Id: unknown."""
        self.route({"service": "weather", "request": {}})
        self.assertEqual(self.service.requests[0][0]["X-From-Peer-Id"], "unknown")

    def test_transport_headers(self) -> None:
        """MCP transport headers go to the service; its Mcp-Session-Id comes back in 'headers'."""
        self.service.reply = (
            200,
            {"Content-Type": "application/json", "Mcp-Session-Id": "s-1"},
            b'{"jsonrpc": "2.0", "id": 2, "result": {}}',
        )
        code, reply = self.route(
            {
                "service": "weather",
                "request": {"jsonrpc": "2.0", "id": 2, "method": "ping"},
                "headers": {
                    "mcp-session-id": "s-0",
                    "MCP-Protocol-Version": "2025-06-18",
                    "Mcp-Method": "ping",
                    "Authorization": "secret",
                },
            }
        )
        self.assertEqual(code, 200)
        self.assertEqual(reply["headers"], {"Mcp-Session-Id": "s-1"})
        seen = self.service.requests[0][0]
        self.assertEqual(seen["Mcp-Session-Id"], "s-0")
        self.assertEqual(seen["Mcp-Protocol-Version"], "2025-06-18")
        self.assertEqual(seen["Mcp-Method"], "ping")
        self.assertNotIn("Authorization", seen)

    def test_derived_headers(self) -> None:
        """Without envelope headers the router still sends Mcp-Method/Mcp-Name mirrored from the body."""
        self.route({"service": "weather", "request": {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t"}}})
        seen = self.service.requests[0][0]
        self.assertEqual((seen["Mcp-Method"], seen["Mcp-Name"]), ("tools/call", "t"))

    def test_no_headers_key_without_session(self) -> None:
        """AXL's reply shape is kept when the service sends no session: no 'headers' key."""
        _, reply = self.route({"service": "weather", "request": {}})
        self.assertEqual(set(reply), {"response", "error"})

    def test_accepted_and_no_content(self) -> None:
        """202 and 204 from the service mean no response: 200 with response null."""
        for status in (202, 204):
            self.service.reply = (status, {}, b"")
            code, reply = self.route({"service": "weather", "request": {"method": "n"}})
            self.assertEqual((code, reply), (200, {"response": None, "error": None}))
        self.assertTrue(self.registry.lookup("weather").healthy)  # type: ignore[union-attr]

    def test_sse_reply(self) -> None:
        """A text/event-stream reply yields its JSON-RPC response, skipping notifications."""
        sse = (
            b"event: message\r\nid: 1\r\ndata: \r\n\r\n"
            b'event: message\ndata: {"jsonrpc": "2.0", "method": "notifications/message"}\n\n'
            b'event: message\ndata: {"jsonrpc": "2.0", "id": 7,\ndata:  "result": {"x": 1}}\n\n'
        )
        self.service.reply = (200, {"Content-Type": "text/event-stream"}, sse)
        code, reply = self.route({"service": "weather", "request": {}})
        self.assertEqual(
            (code, reply), (200, {"response": {"jsonrpc": "2.0", "id": 7, "result": {"x": 1}}, "error": None})
        )

    def test_service_error_status(self) -> None:
        """A non-2xx service status is 502 'Service error: <status>' and marks it unhealthy."""
        self.service.reply = (500, {}, b"boom")
        code, reply = self.route({"service": "weather", "request": {}})
        self.assertEqual((code, reply), (502, {"response": None, "error": "Service error: 500"}))
        self.assertFalse(self.registry.lookup("weather").healthy)  # type: ignore[union-attr]

    def test_non_json_reply(self) -> None:
        """A 200 reply that is not JSON is 502 'Forward error: ...'."""
        self.service.reply = (200, {"Content-Type": "text/html"}, b"<html>")
        code, reply = self.route({"service": "weather", "request": {}})
        self.assertEqual(code, 502)
        self.assertTrue(reply["error"].startswith("Forward error: 200, reply is not JSON"))

    def test_reply_too_large(self) -> None:
        """A service reply over max_reply bytes is 502 'Forward error: ...larger than...'."""
        router = MCPRouter(self.registry, self.service_http, self.clock, max_reply=1000)
        self.service.reply = (200, {"Content-Type": "application/json"}, b'"' + b"x" * 2000 + b'"')
        http = StubTreq(router.app.resource())
        response = self.successResultOf(
            http.post("http://router.test/route", data=json_body({"service": "weather"}))
        )
        reply = json.loads(self.successResultOf(response.content()))
        self.assertEqual(response.code, 502)
        self.assertIn("larger than 1000 bytes", reply["error"])

    def test_unreachable(self) -> None:
        """A service that cannot be reached is 502 'Forward error: ...'."""
        router = MCPRouter(self.registry, HTTPClient(_RefusingAgent()), self.clock)
        http = StubTreq(router.app.resource())
        response = self.successResultOf(
            http.post("http://router.test/route", data=json_body({"service": "weather"}))
        )
        code, reply = response.code, json.loads(self.successResultOf(response.content()))
        self.assertEqual(code, 502)
        self.assertTrue(reply["error"].startswith("Forward error: "), reply)
        self.assertIn("refused", reply["error"])

    def test_timeout(self) -> None:
        """A service silent for 30 s is 504 'Service timeout'."""
        self.service.hang = True
        d = self.http.post("http://router.test/route", data=json_body({"service": "weather"}))
        self.http.flush()
        self.assertNoResult(d)
        self.clock.advance(30)
        self.http.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 504)
        self.assertEqual(
            json.loads(self.successResultOf(response.content())),
            {"response": None, "error": "Service timeout"},
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unknown_service(self) -> None:
        """An unregistered service is 404 'Service not found: <name>'."""
        code, reply = self.route({"service": "nope", "request": {}})
        self.assertEqual((code, reply), (404, {"response": None, "error": "Service not found: nope"}))

    def test_missing_service(self) -> None:
        """Missing or empty service is 400 "Missing 'service' field"."""
        for body in ({"request": {}}, {"service": ""}):
            code, reply = self.route(body)
            self.assertEqual((code, reply), (400, {"response": None, "error": "Missing 'service' field"}))

    def test_invalid_bodies(self) -> None:
        """Invalid JSON and non-object JSON on /route are 400 'Invalid JSON: ...'."""
        for raw in (b"", b"{", b"[1]", b"null", b'"x"'):
            code, reply, _ = self.call("POST", "/route", raw)
            self.assertEqual(code, 400, raw)
            self.assertTrue(reply["error"].startswith("Invalid JSON: "), raw)

    def test_bad_headers_field(self) -> None:
        """A 'headers' value that is not an object is a 400."""
        code, _ = self.route({"service": "weather", "headers": ["x"]})
        self.assertEqual(code, 400)

    def test_wrong_method(self) -> None:
        """GET /route is a 405."""
        d = self.http.get("http://router.test/route")
        self.assertEqual(self.successResultOf(d).code, 405)


class SessionDeleteTests(RouterTestCase):
    """C{":method": "DELETE"} in an envelope's headers ends the service's MCP session."""

    def setUp(self) -> None:
        super().setUp()
        self.registry.register("weather", SERVICE_URL)

    def delete(self, headers: dict[str, str]) -> tuple[int, Any]:
        return self.route({"service": "weather", "request": None, "headers": headers})

    def test_delete_sent_with_session_header(self) -> None:
        """The service gets DELETE with Mcp-Session-Id and MCP-Protocol-Version, no body; reply is null/null."""
        self.service.reply = (204, {}, b"")
        code, reply = self.delete(
            {":method": "DELETE", "Mcp-Session-Id": "s-9", "MCP-Protocol-Version": "2025-06-18"}
        )
        self.assertEqual((code, reply), (200, {"response": None, "error": None}))
        self.assertEqual(self.service.methods, ["DELETE"])
        headers, body = self.service.requests[0]
        self.assertEqual(headers["Mcp-Session-Id"], "s-9")
        self.assertEqual(headers["Mcp-Protocol-Version"], "2025-06-18")
        self.assertEqual(headers["X-Service"], "weather")
        self.assertEqual(body, b"")

    def test_pseudo_header_never_reaches_the_service(self) -> None:
        """Neither a DELETE nor a POST carries ':method' (or any header with a colon) to the service."""
        self.service.reply = (200, {}, b"")
        self.delete({":method": "DELETE", "Mcp-Session-Id": "s-9"})
        self.service.reply = (200, {"Content-Type": "application/json"}, b'{"jsonrpc": "2.0", "id": 1, "result": {}}')
        self.route({"service": "weather", "request": {"jsonrpc": "2.0", "id": 1, "method": "ping"}, "headers": {":method": "POST"}})
        self.assertEqual(self.service.methods, ["DELETE", "POST"])
        for headers, _ in self.service.requests:
            self.assertEqual([name for name in headers if ":" in name], [])

    def test_done_statuses(self) -> None:
        """200, 202, 204, 404 and 405 all mean the session is over: 200 with response and error null."""
        for status in (200, 202, 204, 404, 405):
            self.service.reply = (status, {}, b"")
            code, reply = self.delete({":method": "DELETE", "Mcp-Session-Id": "s"})
            self.assertEqual((code, reply), (200, {"response": None, "error": None}), status)
        self.assertTrue(self.registry.lookup("weather").healthy)  # type: ignore[union-attr]

    def test_other_status_is_service_error(self) -> None:
        """Any other status is 502 'Service error: <status>', as for a POST."""
        self.service.reply = (500, {}, b"boom")
        code, reply = self.delete({":method": "DELETE", "Mcp-Session-Id": "s"})
        self.assertEqual((code, reply), (502, {"response": None, "error": "Service error: 500"}))
