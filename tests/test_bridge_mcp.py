"""
Tests for C{/mcp/{peer}/{service}} and C{/a2a/{peer}} on the bridge, across two in-memory nodes
(B runs fake router and A2A servers), and for L{axl.bridge.mcp_sessions}.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.bridge.mcp_sessions import McpSessions
from tests.test_bridge_messaging import TwoNodes

INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18"},
}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}


class McpTests(TwoNodes):
    def mcp(
        self,
        body: Any,
        service: str = "weather",
        headers: dict[str, str] | None = None,
        method: str = "POST",
        peer: str | None = None,
    ) -> tuple[int, Any, bytes]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        path = f"/mcp/{peer if peer is not None else self.B.hex()}/{service}"
        return self.call(
            self.client_a,
            method,
            path,
            {"Content-Type": "application/json", **(headers or {})},
            data,
        )

    def routed(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.b.services.router.requests]  # type: ignore[attr-defined]

    def test_tools_list_round_trip(self) -> None:
        """The documented tools/list call returns the remote service's JSON; the router saw A's key."""
        code, headers, body = self.mcp(LIST)
        self.assertEqual(
            (code, json.loads(body)),
            (200, {"jsonrpc": "2.0", "id": 1, "result": {"ok": True}}),
        )
        self.assertEqual(self.header(headers, "Content-Type"), "application/json")
        (routed,) = self.routed()
        self.assertEqual(routed["service"], "weather")
        self.assertEqual(routed["request"], LIST)
        self.assertEqual(routed["from_peer_id"], self.A.hex())
        self.assertEqual(routed["headers"], {"Mcp-Method": "tools/list"})
        self.assertEqual(
            self.b.services.router.requests[0]["headers"]["x-from-peer-id"],
            self.A.hex(),
        )  # type: ignore[attr-defined]

    def test_bad_paths_and_ids(self) -> None:
        """Paths without peer and service are 400; an invalid peer id is 400 (not 502)."""
        for path in (
            "/mcp",
            "/mcp/",
            "/mcp/" + self.B.hex(),
            "/mcp/" + self.B.hex() + "/",
        ):
            code, _, body = self.call(self.client_a, "POST", path, {}, b"{}")
            self.assertEqual(
                (code, body), (400, b"URL must be /mcp/{peer_id}/{service}\n"), path
            )
        code, _, body = self.mcp(LIST, peer="abc")
        self.assertEqual((code, body), (400, b"Invalid peer ID\n"))

    def test_method_and_json_errors(self) -> None:
        """GET is 405; a body that is not a JSON object is 400 Invalid JSON-RPC."""
        self.assertEqual(self.mcp(LIST, method="GET")[0], 405)
        for bad in (b"", b"[1]", b"nope", b'"s"'):
            code, _, body = self.mcp(bad)
            self.assertEqual((code, body), (400, b"Invalid JSON-RPC\n"), bad)
        self.assertEqual(self.routed(), [])

    def test_session_lifecycle(self) -> None:
        """initialize creates a random session bound to (peer, service); the remote's own id is carried."""
        router = self.b.services.router  # type: ignore[attr-defined]
        router.answer = (
            200,
            {},
            b'{"response": {"id": 0, "result": {}}, "error": null, "headers": {"Mcp-Session-Id": "remote-77"}}',
        )
        code, headers, _ = self.mcp(
            INIT, headers={"MCP-Protocol-Version": "2025-06-18", "Mcp-Name": "x"}
        )
        session = self.header(headers, "Mcp-Session-Id")
        self.assertEqual(code, 200)
        assert session is not None
        self.assertEqual(len(session), 32)
        self.assertNotIn("remote", session)
        code, headers, _ = self.mcp(LIST, headers={"Mcp-Session-Id": session})
        self.assertEqual((code, self.header(headers, "Mcp-Session-Id")), (200, session))
        self.assertEqual(
            self.routed()[0]["headers"],
            {
                "MCP-Protocol-Version": "2025-06-18",
                "Mcp-Method": "initialize",
                "Mcp-Name": "x",
            },
        )
        self.assertEqual(self.routed()[1]["headers"]["Mcp-Session-Id"], "remote-77")
        # Bound to the service: another service does not know it.
        self.assertEqual(
            self.mcp(LIST, service="other", headers={"Mcp-Session-Id": session})[0], 404
        )
        self.assertEqual(
            self.mcp(LIST, headers={"Mcp-Session-Id": "guess"})[:3:2],
            (404, b"Invalid or expired session\n"),
        )
        # DELETE ends it with 204; then it is gone.
        self.assertEqual(
            self.mcp(b"", method="DELETE", headers={"Mcp-Session-Id": session})[0], 204
        )
        self.assertEqual(
            self.mcp(b"", method="DELETE", headers={"Mcp-Session-Id": session})[0], 404
        )
        self.assertEqual(self.mcp(LIST, headers={"Mcp-Session-Id": session})[0], 404)

    def test_delete_ends_remote_session(self) -> None:
        """After DELETE's 204 one envelope ends the remote server's session: null request, :method DELETE."""
        router = self.b.services.router  # type: ignore[attr-defined]
        router.answer = (
            200,
            {},
            b'{"response": {"id": 0, "result": {}}, "error": null, "headers": {"Mcp-Session-Id": "remote-77"}}',
        )
        _, headers, _ = self.mcp(INIT)
        session = self.header(headers, "Mcp-Session-Id")
        assert session is not None
        router.answer = (200, {}, b'{"response": null, "error": null}')
        code, _, body = self.mcp(b"", method="DELETE", headers={"Mcp-Session-Id": session})
        self.assertEqual((code, body), (204, b""))
        self.assertEqual(len(self.routed()), 1)  # answered first, forwarded after
        api = self.a.bridge
        self.clock.advance(0)
        idle = api.when_idle()
        self.assertNoResult(idle)  # the forward is in flight
        self.settle()
        self.successResultOf(idle)
        routed = self.routed()
        self.assertEqual(len(routed), 2)
        self.assertEqual(
            (routed[1]["service"], routed[1]["request"], routed[1]["headers"]),
            ("weather", None, {":method": "DELETE", "Mcp-Session-Id": "remote-77"}),
        )
        self.clock.advance(0)
        self.settle()
        self.assertEqual(len(self.routed()), 2)  # exactly one

    def test_delete_without_remote_session_sends_nothing(self) -> None:
        """A session whose remote server gave no id ends locally only: nothing is sent to the peer."""
        _, headers, _ = self.mcp(INIT)
        session = self.header(headers, "Mcp-Session-Id")
        assert session is not None
        code, _, _ = self.mcp(b"", method="DELETE", headers={"Mcp-Session-Id": session})
        self.assertEqual(code, 204)
        self.clock.advance(0)
        self.settle()
        self.assertEqual([r["request"]["method"] for r in self.routed()], ["initialize"])

    def test_delete_failure_is_not_surfaced(self) -> None:
        """A remote that cannot end the session only costs a log line; the client already has 204."""
        router = self.b.services.router  # type: ignore[attr-defined]
        router.answer = (
            200,
            {},
            b'{"response": {"id": 0, "result": {}}, "error": null, "headers": {"Mcp-Session-Id": "r"}}',
        )
        _, headers, _ = self.mcp(INIT)
        session = self.header(headers, "Mcp-Session-Id")
        router.answer = (502, {}, b'{"response": null, "error": "Service error: 500"}')
        code, _, _ = self.mcp(b"", method="DELETE", headers={"Mcp-Session-Id": session or ""})
        self.assertEqual(code, 204)
        self.clock.advance(0)
        self.settle()
        self.assertEqual(len(self.routed()), 2)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_notification_202_and_forwarded(self) -> None:
        """notifications/initialized is answered 202 at once and still reaches the remote service."""
        router = self.b.services.router  # type: ignore[attr-defined]
        router.answer = Deferred()  # the remote is slow: the 202 must not wait for it
        code, _, body = self.mcp(
            {"jsonrpc": "2.0", "method": "notifications/initialized"}
        )
        self.assertEqual((code, body), (202, b""))
        self.assertEqual(
            self.routed()[0]["request"]["method"], "notifications/initialized"
        )
        router.answer.callback((202, {}, b'{"response": null, "error": null}'))
        self.settle()

    def test_router_error_is_jsonrpc(self) -> None:
        """A remote router error becomes HTTP 200 with a JSON-RPC -32603 error carrying the request id."""
        self.b.services.router.answer = (
            404,
            {},
            b'{"response": null, "error": "Service not found: weather"}',
        )  # type: ignore[attr-defined]
        code, _, body = self.mcp(LIST)
        self.assertEqual(code, 200)
        self.assertEqual(
            json.loads(body),
            {
                "error": {
                    "code": -32603,
                    "message": "router error: Service not found: weather",
                },
                "id": 1,
                "jsonrpc": "2.0",
            },
        )

    def test_unknown_peer(self) -> None:
        """/mcp to a key nobody has is 502 at once."""
        code, _, _body = self.mcp(LIST, peer="07" * 32)
        self.assertEqual(code, 502)

    def test_a2a_card_and_post(self) -> None:
        """GET /a2a/{peer} returns the remote card; POST returns the A2A server's JSON (A2A-Version 1.0)."""
        a2a = self.b.services.a2a  # type: ignore[attr-defined]
        a2a.answer = (200, {}, b'{"name": "MCP Router A2A Agent"}')
        code, _, body = self.call(self.client_a, "GET", "/a2a/" + self.B.hex())
        self.assertEqual(
            (code, json.loads(body)), (200, {"name": "MCP Router A2A Agent"})
        )
        self.assertEqual(a2a.requests[0]["path"], "/.well-known/agent-card.json")
        a2a.answer = (200, {}, b'{"jsonrpc": "2.0", "id": 7, "result": {"task": {}}}')
        req = {"jsonrpc": "2.0", "method": "SendMessage", "id": 7, "params": {}}
        code, _, body = self.call(
            self.client_a, "POST", "/a2a/" + self.B.hex(), {}, json.dumps(req).encode()
        )
        self.assertEqual((code, json.loads(body)["result"]), (200, {"task": {}}))
        self.assertEqual(a2a.requests[1]["headers"]["a2a-version"], "1.0")
        self.assertEqual(a2a.requests[1]["headers"]["x-from-peer-id"], self.A.hex())
        self.assertEqual(json.loads(a2a.requests[1]["body"]), req)

    def test_a2a_errors(self) -> None:
        """/a2a: empty peer 400, bad id 400, bad JSON 400 before dialling, PUT 405, remote error 502 JSON."""
        self.assertEqual(
            self.call(self.client_a, "GET", "/a2a/")[0::2],
            (400, b"URL must be /a2a/{peer_id}\n"),
        )
        self.assertEqual(
            self.call(self.client_a, "GET", "/a2a/xyz")[0::2],
            (400, b"Invalid peer ID\n"),
        )
        self.assertEqual(
            self.call(self.client_a, "POST", "/a2a/" + self.B.hex(), {}, b"")[0::2],
            (400, b"Invalid JSON\n"),
        )
        self.assertEqual(
            self.call(self.client_a, "PUT", "/a2a/" + self.B.hex(), {}, b"{}")[0], 405
        )
        self.b.services.a2a.answer = (
            200,
            {b"Content-Type": b"text/event-stream"},
            b"data: x\n\n",
        )  # type: ignore[attr-defined]
        code, headers, body = self.call(
            self.client_a, "POST", "/a2a/" + self.B.hex(), {}, b'{"id": 3}'
        )
        self.assertEqual(
            (code, self.header(headers, "Content-Type")), (502, "application/json")
        )
        err = json.loads(body)
        self.assertEqual((err["id"], err["error"]["code"]), (3, -32603))


class DisabledStreamTests(TwoNodes):
    b_config: ClassVar[dict[str, Any]] = {}

    def test_disabled_mcp_answers_at_once_and_never_queues(self) -> None:
        """B without a router: /mcp gets a JSON-RPC error at once and B's /recv stays empty."""
        code, _, body = self.call(
            self.client_a,
            "POST",
            f"/mcp/{self.B.hex()}/weather",
            {},
            json.dumps(LIST).encode(),
        )
        self.assertEqual(code, 200)
        self.assertEqual(
            json.loads(body)["error"],
            {"code": -32603, "message": "mcp not enabled on this node"},
        )
        code, _, body = self.call(self.client_b, "GET", "/recv")
        self.assertEqual((code, body), (204, b""))

    def test_disabled_a2a(self) -> None:
        """B without an A2A server: /a2a answers 502 with a JSON error at once; B's /recv stays empty."""
        for method, body in (("GET", None), ("POST", json.dumps(LIST).encode())):
            code, _, reply = self.call(self.client_a, method, "/a2a/" + self.B.hex(), {}, body)
            self.assertEqual(
                (code, json.loads(reply)["error"]["message"]),
                (502, "a2a not enabled on this node"),
            )
        code, _, body = self.call(self.client_b, "GET", "/recv")
        self.assertEqual((code, body), (204, b""))


class McpSessionsTests(SynchronousTestCase):
    def test_expiry_and_binding(self) -> None:
        """Sessions expire after ttl without use; use renews them; ids come from the entropy source."""
        clock = Clock()
        sessions = McpSessions(clock, ttl=10, entropy=lambda n: b"\x01" * n)
        s = sessions.create(b"p" * 32, "svc")
        self.assertEqual(s.id, "01" * 16)
        clock.advance(9)
        self.assertIs(sessions.lookup(s.id, b"p" * 32, "svc"), s)
        clock.advance(9)
        self.assertIs(sessions.lookup(s.id, b"p" * 32, "svc"), s)
        self.assertIsNone(sessions.lookup(s.id, b"q" * 32, "svc"))
        clock.advance(11)
        self.assertIsNone(sessions.lookup(s.id, b"p" * 32, "svc"))
        self.assertEqual(len(sessions), 0)

    def test_bounded(self) -> None:
        """Beyond max_sessions the least recently used session is dropped."""
        clock = Clock()
        counter = iter(range(100))
        sessions = McpSessions(
            clock, entropy=lambda n: bytes([next(counter)]) * n, max_sessions=2
        )
        first = sessions.create(b"p" * 32, "a")
        clock.advance(1)
        sessions.create(b"p" * 32, "b")
        clock.advance(1)
        sessions.create(b"p" * 32, "c")
        self.assertEqual(len(sessions), 2)
        self.assertIsNone(sessions.lookup(first.id, b"p" * 32, "a"))
