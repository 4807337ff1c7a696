"""
Tests for L{axl.client}: both flavours against one Klein fake of the node's bridge (the blocking
one through a urllib handler that answers from the fake, no sockets).
"""

from __future__ import annotations

import http.client
import io
import json
import urllib.request
import urllib.response
from typing import Any

from klein import Klein
from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IRequest

from axl.client import NodeClient, NodeError, ReceivedMessage, TreqNodeClient, mcp_envelope, request, task_result

ME, PEER = "aa" * 32, "bb" * 32


class FakeBridge:
    """Just enough of the bridge: records what it got and answers like AXL."""

    app = Klein()

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.queue: list[tuple[str, bytes]] = [(PEER, b"hello")]
        self.mcp_calls: list[tuple[str, str, dict[str, str], Any]] = []
        self.a2a_calls: list[Any] = []

    @app.route("/topology")
    def topology(self, request: IRequest) -> bytes:
        request.setHeader("Content-Type", "application/json")
        return json.dumps({"our_public_key": ME, "our_ipv6": "200::1", "peers": [], "tree": []}).encode()

    @app.route("/send", methods=["POST"])
    def send(self, request: IRequest) -> bytes:
        dest = request.getHeader("X-Destination-Peer-Id")
        if not dest:
            request.setResponseCode(400)
            return b"Missing X-Destination-Peer-Id header\n"
        body = request.content.read()
        self.sent.append((dest, body))
        request.setHeader("X-Sent-Bytes", str(len(body)))
        return b""

    @app.route("/recv")
    def recv(self, request: IRequest) -> bytes:
        if not self.queue:
            request.setResponseCode(204)
            return b""
        peer, data = self.queue.pop(0)
        request.setHeader("X-From-Peer-Id", peer)
        return data

    @app.route("/mcp/<peer>/<path:service>", methods=["POST"])
    def mcp(self, request: IRequest, peer: str, service: str) -> bytes:
        body = json.loads(request.content.read())
        headers = {"Mcp-Session-Id": request.getHeader("Mcp-Session-Id") or ""}
        self.mcp_calls.append((peer, service, headers, body))
        if body.get("method") == "notifications/initialized":
            request.setResponseCode(202)
            return b""
        return json.dumps({"jsonrpc": "2.0", "id": body.get("id"), "result": {"service": service}}).encode()

    @app.route("/a2a/<peer>", methods=["GET", "POST"])
    def a2a(self, request: IRequest, peer: str) -> bytes:
        if request.method == b"GET":
            return json.dumps({"name": "card", "url": f"/a2a/{peer}"}).encode()
        body = json.loads(request.content.read())
        self.a2a_calls.append(body)
        envelope = json.loads(body["params"]["message"]["parts"][0]["text"])
        if envelope["service"] == "broken":
            status = {"state": "TASK_STATE_FAILED", "message": {"parts": [{"text": "Error: Router error: x"}]}}
            return json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"task": {"status": status}}}).encode()
        artifact = {"parts": [{"text": json.dumps({"echo": envelope["request"]}, indent=2)}]}
        task = {"status": {"state": "TASK_STATE_COMPLETED"}, "artifacts": [artifact]}
        return json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": {"task": task}}).encode()


class _StubHandler(urllib.request.BaseHandler):
    """A urllib handler answering http:// requests from a Klein resource via StubTreq."""

    handler_order = 100

    def __init__(self, resource: Any, case: SynchronousTestCase) -> None:
        self._http = StubTreq(resource)
        self._case = case

    def http_open(self, req: urllib.request.Request) -> urllib.response.addinfourl:
        d = self._http.request(req.get_method(), req.full_url, data=req.data, headers={k: v for k, v in req.header_items() if k.lower() != "content-length"})
        response = self._case.successResultOf(d)
        body = self._case.successResultOf(response.content())
        headers = http.client.HTTPMessage()
        for name, values in response.headers.getAllRawHeaders():
            for value in values:
                headers[name.decode()] = value.decode()
        reply = urllib.response.addinfourl(io.BytesIO(body), headers, req.full_url, response.code)
        reply.msg = http.client.responses.get(response.code, "")  # type: ignore[attr-defined]
        return reply


class _ClientTests:
    """The same behaviour, for both flavours; subclasses provide call()."""

    bridge: FakeBridge
    node: Any

    def call(self, method: str, *args: Any) -> Any:
        raise NotImplementedError

    def test_topology(self) -> None:
        """topology() returns the JSON; our_key() its our_public_key."""
        self.assertEqual(self.call("topology")["peers"], [])  # type: ignore[attr-defined]
        self.assertEqual(self.call("our_key"), ME)  # type: ignore[attr-defined]

    def test_send(self) -> None:
        """send() posts the bytes with X-Destination-Peer-Id and returns X-Sent-Bytes."""
        self.assertEqual(self.call("send", PEER, b"\x00\x01abc"), 5)  # type: ignore[attr-defined]
        self.assertEqual(self.bridge.sent, [(PEER, b"\x00\x01abc")])  # type: ignore[attr-defined]

    def test_send_error(self) -> None:
        """A 400 from the bridge is a NodeError carrying status and text."""
        e = self.call_fails("send", "", b"x")
        self.assertEqual(e.status, 400)  # type: ignore[attr-defined]
        self.assertIn("Missing X-Destination-Peer-Id", str(e))  # type: ignore[attr-defined]

    def test_recv(self) -> None:
        """recv() returns a ReceivedMessage with the sender, then None on 204."""
        self.assertEqual(self.call("recv"), ReceivedMessage(PEER, b"hello"))  # type: ignore[attr-defined]
        self.assertIsNone(self.call("recv"))  # type: ignore[attr-defined]

    def test_mcp(self) -> None:
        """mcp() posts the JSON-RPC message to /mcp/{peer}/{service} with the session header."""
        reply = self.call("mcp", PEER, "weather", {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, "s1")
        self.assertEqual(reply, {"jsonrpc": "2.0", "id": 4, "result": {"service": "weather"}})  # type: ignore[attr-defined]
        self.assertEqual(self.bridge.mcp_calls[0][:3], (PEER, "weather", {"Mcp-Session-Id": "s1"}))  # type: ignore[attr-defined]
        self.assertIsNone(self.call("mcp", PEER, "w", {"jsonrpc": "2.0", "method": "notifications/initialized"}))  # type: ignore[attr-defined]

    def test_a2a(self) -> None:
        """a2a_card() GETs /a2a/{peer}; a2a_mcp() wraps an MCP envelope in SendMessage."""
        self.assertEqual(self.call("a2a_card", PEER)["name"], "card")  # type: ignore[attr-defined]
        self.assertEqual(self.call("a2a_mcp", PEER, "weather", {"id": 1}), {"echo": {"id": 1}})  # type: ignore[attr-defined]
        (body,) = self.bridge.a2a_calls  # type: ignore[attr-defined]
        self.assertEqual(body["method"], "SendMessage")  # type: ignore[attr-defined]
        message = body["params"]["message"]
        self.assertEqual(message["role"], "ROLE_USER")  # type: ignore[attr-defined]
        self.assertEqual(json.loads(message["parts"][0]["text"]), mcp_envelope("weather", {"id": 1}))  # type: ignore[attr-defined]

    def test_a2a_failed_task(self) -> None:
        """A failed task raises RuntimeError with the agent's explanation."""
        e = self.call_fails("a2a_mcp", PEER, "broken", {})
        self.assertIn("Router error: x", str(e))  # type: ignore[attr-defined]

    def call_fails(self, method: str, *args: Any) -> Exception:
        raise NotImplementedError


class SyncClientTests(_ClientTests, SynchronousTestCase):
    def setUp(self) -> None:
        self.bridge = FakeBridge()
        opener = urllib.request.build_opener(_StubHandler(self.bridge.app.resource(), self))
        self.node = NodeClient("http://127.0.0.1:9002/", opener=opener)

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.node, method)(*args)

    def call_fails(self, method: str, *args: Any) -> Exception:
        try:
            self.call(method, *args)
        except (NodeError, RuntimeError) as e:
            return e
        self.fail("no exception")


class RequestTests(SynchronousTestCase):
    def test_status_returned_not_raised(self) -> None:
        """request() returns (status, headers, body) for an error status instead of raising."""
        bridge = FakeBridge()
        opener = urllib.request.build_opener(_StubHandler(bridge.app.resource(), self))
        status, headers, body = request(
            "POST", "http://127.0.0.1:9002/send", b"x", {}, opener=opener
        )
        self.assertEqual((status, body), (400, b"Missing X-Destination-Peer-Id header\n"))
        status, headers, body = request("GET", "http://127.0.0.1:9002/topology", opener=opener)
        self.assertEqual((status, json.loads(body)["our_public_key"]), (200, ME))
        self.assertIn("application/json", {k.lower(): v for k, v in headers.items()}["content-type"])


class TreqClientTests(_ClientTests, SynchronousTestCase):
    def setUp(self) -> None:
        self.bridge = FakeBridge()
        self.node = TreqNodeClient(StubTreq(self.bridge.app.resource()))

    def call(self, method: str, *args: Any) -> Any:
        return self.successResultOf(getattr(self.node, method)(*args))

    def call_fails(self, method: str, *args: Any) -> Exception:
        d = getattr(self.node, method)(*args)
        return self.failureResultOf(d, NodeError, RuntimeError).value  # type: ignore[no-any-return]


class TaskResultTests(SynchronousTestCase):
    def test_jsonrpc_error(self) -> None:
        """A JSON-RPC error reply raises RuntimeError with its code."""
        e = self.assertRaises(RuntimeError, task_result, {"error": {"code": -32601, "message": "nope"}})
        self.assertIn("-32601", str(e))
