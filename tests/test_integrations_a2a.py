"""
Tests for L{axl.integrations.a2a_server} and L{axl.integrations.a2a_card}: the agent card, every
JSON-RPC method and error, with StubTreq over Klein fakes of the router and the node.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from klein import Klein
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IRequest

from axl.integrations.a2a_server import A2AServer
from tests.integrations_fakes import FakeNode, FakeRouter, json_body

KEY = "ab" * 32
PEER = "cd" * 32


class _Backends:
    """Routes /topology to the fake node and everything else to the fake router."""

    app = Klein()

    def __init__(self, node: FakeNode, router: FakeRouter) -> None:
        self.node, self.router = node, router

    @app.route("/topology")
    def topology(self, request: IRequest) -> Any:
        return self.node.app.execute_endpoint("topology", request)

    @app.route("/", branch=True)
    def rest(self, request: IRequest) -> Any:
        return self.router.app.resource()


def envelope_message(envelope: Any, message_id: str = "m1") -> dict[str, Any]:
    text = envelope if isinstance(envelope, str) else json.dumps(envelope)
    return {"role": "ROLE_USER", "messageId": message_id, "parts": [{"text": text}]}


class A2ATestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.node, self.router = FakeNode(KEY), FakeRouter()
        backends = _Backends(self.node, self.router)
        self.backend_http = StubTreq(backends.app.resource())
        counter = itertools.count(1)
        self.server = A2AServer(
            self.backend_http,
            self.clock,
            "http://127.0.0.1:9003/",
            "http://127.0.0.1:9002",
            new_id=lambda: f"id-{next(counter)}",
        )
        self.http = StubTreq(self.server.app.resource())

    def get(self, path: str) -> tuple[int, Any]:
        response = self.successResultOf(self.http.get("http://a2a.test" + path))
        return response.code, json.loads(self.successResultOf(response.content()))

    def rpc(
        self, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> Any:
        data = raw if raw is not None else json_body(body)
        response = self.successResultOf(
            self.http.post("http://a2a.test/", data=data, headers=headers or {"A2A-Version": "1.0"})
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("Content-Type"), ["application/json"])
        return json.loads(self.successResultOf(response.content()))

    def send(self, envelope: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        reply = self.rpc(
            {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": envelope_message(envelope)}},
            headers,
        )
        self.assertEqual(reply["id"], 1)
        return reply["result"]["task"]  # type: ignore[no-any-return]


class CardTests(A2ATestCase):
    def test_card_from_registry(self) -> None:
        """The card lists one skill per registered service and points at /a2a/<node key>."""
        self.router.services = {"weather": {}, "maps": {}}
        code, card = self.get("/.well-known/agent-card.json")
        self.assertEqual(code, 200)
        self.assertEqual([s["id"] for s in card["skills"]], ["weather", "maps"])
        self.assertEqual(card["skills"][0]["name"], "Weather Service")
        self.assertEqual(card["skills"][0]["tags"], ["weather", "mcp"])
        self.assertEqual(
            card["supportedInterfaces"],
            [{"url": f"/a2a/{KEY}", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
        )
        self.assertEqual(card["capabilities"], {"streaming": False, "pushNotifications": False})
        self.assertEqual(card["url"], f"/a2a/{KEY}")

    def test_card_refreshed(self) -> None:
        """A service registered after the first card request shows up on the next one."""
        self.get("/.well-known/agent-card.json")
        self.router.services = {"late": {}}
        _, card = self.get("/.well-known/agent-card.json")
        self.assertEqual([s["id"] for s in card["skills"]], ["late"])

    def test_default_skill(self) -> None:
        """With no services (or the router down) the card has the single mcp_proxy skill."""
        self.router.services_status = 500
        _, card = self.get("/.well-known/agent-card.json")
        self.assertEqual([s["id"] for s in card["skills"]], ["mcp_proxy"])

    def test_node_key_cached_and_retried(self) -> None:
        """The node key is fetched when needed: 503 while the node is down, then cached."""
        self.node.up = False
        code, body = self.get("/.well-known/agent-card.json")
        self.assertEqual(code, 503)
        self.assertIn("http://127.0.0.1:9002", body["error"])
        self.node.up = True
        self.assertEqual(self.get("/.well-known/agent-card.json")[0], 200)
        self.get("/.well-known/agent-card.json")
        self.assertEqual(self.node.calls, 2)


class SendMessageTests(A2ATestCase):
    def test_success(self) -> None:
        """SendMessage routes the envelope and returns a completed task with the MCP reply."""
        self.router.route_reply = (200, {"response": {"jsonrpc": "2.0", "id": 1, "result": {}}, "error": None})
        request = {"jsonrpc": "2.0", "method": "tools/list", "id": 1, "params": {}}
        task = self.send({"service": "weather", "request": request}, {"A2A-Version": "1.0", "X-From-Peer-Id": PEER})
        self.assertEqual(self.router.routed, [{"service": "weather", "request": request, "from_peer_id": PEER}])
        self.assertEqual(task["status"]["state"], "TASK_STATE_COMPLETED")
        self.assertEqual(task["id"], "id-1")
        (artifact,) = task["artifacts"]
        self.assertEqual(artifact["name"], "mcp_response")
        self.assertEqual(artifact["description"], "Response from weather MCP service")
        self.assertEqual(
            json.loads(artifact["parts"][0]["text"]), {"jsonrpc": "2.0", "id": 1, "result": {}}
        )
        self.assertEqual(task["history"][0]["messageId"], "m1")
        self.assertEqual(task["history"][0]["taskId"], "id-1")
        self.assertEqual(task["history"][1]["parts"], [{"text": "Processing MCP request..."}])

    def test_default_caller(self) -> None:
        """Without X-From-Peer-Id the router sees from_peer_id 'a2a-client'; empty request -> {}."""
        self.send({"service": "weather"})
        self.assertEqual(self.router.routed[0], {"service": "weather", "request": {}, "from_peer_id": "a2a-client"})

    def failure_text(self, task: dict[str, Any]) -> str:
        self.assertEqual(task["status"]["state"], "TASK_STATE_FAILED")
        return task["status"]["message"]["parts"][0]["text"]  # type: ignore[no-any-return]

    def test_unparseable(self) -> None:
        """Text that is not JSON fails the task without calling the router."""
        task = self.send("not json")
        self.assertEqual(self.failure_text(task), "Error: Could not parse MCP request from message")
        self.assertEqual(self.router.routed, [])

    def test_no_service(self) -> None:
        """A bare JSON-RPC request (no service) fails with 'No service specified in request'."""
        task = self.send({"jsonrpc": "2.0", "method": "tools/list", "id": 1})
        self.assertEqual(self.failure_text(task), "Error: No service specified in request")

    def test_non_object(self) -> None:
        """A JSON array fails the task with a clear message."""
        self.assertEqual(self.failure_text(self.send("[1]")), "Error: MCP request must be a JSON object")

    def test_router_status(self) -> None:
        """A router 404 becomes 'Router returned 404: <body>'."""
        self.router.route_reply = (404, {"response": None, "error": "Service not found: nope"})
        text = self.failure_text(self.send({"service": "nope", "request": {}}))
        self.assertEqual(text, 'Error: Router returned 404: {"response": null, "error": "Service not found: nope"}')

    def test_router_error(self) -> None:
        """A router 200 carrying an error becomes 'Router error: <error>'."""
        self.router.route_reply = (200, {"response": None, "error": "x"})
        self.assertEqual(self.failure_text(self.send({"service": "s", "request": {}})), "Error: Router error: x")

    def test_data_part(self) -> None:
        """A data part carrying the envelope is accepted when there is no text part."""
        message = {"role": "ROLE_USER", "messageId": "m", "parts": [{"data": {"service": "s", "request": {"a": 1}}}]}
        reply = self.rpc({"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {"message": message}})
        self.assertEqual(reply["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED")
        self.assertEqual(self.router.routed[0]["request"], {"a": 1})

    def test_get_list_cancel(self) -> None:
        """GetTask finds a task, ListTasks lists it, CancelTask refuses with -32002."""
        task = self.send({"service": "s", "request": {}})
        got = self.rpc({"jsonrpc": "2.0", "id": 3, "method": "GetTask", "params": {"id": task["id"]}})
        self.assertEqual(got["result"], task)
        short = self.rpc({"jsonrpc": "2.0", "id": 3, "method": "GetTask", "params": {"id": task["id"], "historyLength": 1}})
        self.assertEqual(short["result"]["history"], task["history"][-1:])
        listed = self.rpc({"jsonrpc": "2.0", "id": 4, "method": "ListTasks", "params": {}})
        self.assertEqual([t["id"] for t in listed["result"]["tasks"]], [task["id"]])
        cancel = self.rpc({"jsonrpc": "2.0", "id": 5, "method": "CancelTask", "params": {"id": task["id"]}})
        self.assertEqual(cancel["error"]["code"], -32002)
        missing = self.rpc({"jsonrpc": "2.0", "id": 6, "method": "GetTask", "params": {"id": "nope"}})
        self.assertEqual(missing["error"]["code"], -32001)


class ErrorTests(A2ATestCase):
    def code(self, reply: Any) -> int:
        return reply["error"]["code"]  # type: ignore[no-any-return]

    def test_parse_error(self) -> None:
        """Invalid JSON is -32700 with id null."""
        reply = self.rpc(None, raw=b"{")
        self.assertEqual((self.code(reply), reply["id"]), (-32700, None))

    def test_invalid_request(self) -> None:
        """Non-objects, a wrong jsonrpc version or a missing method are -32600."""
        for body in ([1], {"jsonrpc": "1.0", "id": 1, "method": "SendMessage"}, {"jsonrpc": "2.0", "id": 1}):
            self.assertEqual(self.code(self.rpc(body)), -32600, body)

    def test_unknown_method(self) -> None:
        """Unknown methods, including v0.3 names, are -32601 and keep the request id."""
        reply = self.rpc({"jsonrpc": "2.0", "id": "x", "method": "message/send", "params": {}})
        self.assertEqual((self.code(reply), reply["id"]), (-32601, "x"))

    def test_bad_params(self) -> None:
        """SendMessage without a proper message is -32602."""
        for params in (None, {}, {"message": {"parts": []}}, {"message": {"parts": [{"text": "x"}], "role": "ROLE_USER"}}):
            reply = self.rpc({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params})
            self.assertEqual(self.code(reply), -32602, params)

    def test_version(self) -> None:
        """A2A-Version other than 1.0 is -32009; a missing header is accepted as 1.0."""
        body = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
        self.assertEqual(self.code(self.rpc(body, {"A2A-Version": "0.3"})), -32009)
        self.assertIn("result", self.rpc(body, {"Content-Type": "application/json"}))

    def test_unsupported(self) -> None:
        """Streaming is -32004, push notifications -32003, the extended card -32007."""
        for method, code in (
            ("SendStreamingMessage", -32004),
            ("SubscribeToTask", -32004),
            ("CreateTaskPushNotificationConfig", -32003),
            ("GetExtendedAgentCard", -32007),
        ):
            self.assertEqual(self.code(self.rpc({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}})), code)

    def test_router_timeout(self) -> None:
        """A router that does not answer within the timeout fails the task (no hang)."""
        server = A2AServer(_hanging_client(), self.clock, "http://r", "http://n", timeout=5)
        http = StubTreq(server.app.resource())
        message = envelope_message({"service": "s", "request": {}})
        d = http.post("http://a2a.test/", data=json_body({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}))
        self.assertNoResult(d)
        self.clock.advance(5)
        http.flush()
        reply = json.loads(self.successResultOf(self.successResultOf(d).content()))
        self.assertEqual(reply["result"]["task"]["status"]["state"], "TASK_STATE_FAILED")
        self.assertIn("Router not reachable", reply["result"]["task"]["status"]["message"]["parts"][0]["text"])
        self.assertEqual(self.clock.getDelayedCalls(), [])


def _hanging_client() -> StubTreq:
    from twisted.internet.defer import Deferred

    class Hang:
        app = Klein()

        @app.route("/", branch=True)
        def hang(self, request: IRequest) -> Any:
            return Deferred()

    return StubTreq(Hang().app.resource())
