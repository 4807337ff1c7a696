"""
End-to-end tests with the official SDKs (C{mcp}, C{a2a-sdk}) on 127.0.0.1.

The path under test is a node's bridge C{/mcp/{peer}/{service}} and C{/a2a/{peer}}
(L{axl.bridge.app.Bridge}) -> the port-7000 envelope (L{axl.streams}) -> our MCP
router / A2A server -> MCP servers made with the C{mcp} SDK and run by uvicorn. The overlay hop
is the node's own loopback (the peer id is the node's own key, which L{axl.streams.sender.MessageSender}
delivers to its local stream registry), so everything above the mesh is real code.

The SDK clients and servers are asyncio programs: each runs in its own thread with its own event
loop; the Twisted side runs on trial's reactor. Skipped when the SDKs are not installed (they are
in the C{test} extra only).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from axl.integrations._serve import make_http_client
from axl.integrations.a2a_server import A2AServer
from axl.integrations.mcp_router import MCPRouter
from axl.integrations.registry import Registry

try:
    import uvicorn
    from mcp import Client
    from mcp.server.mcpserver import MCPServer
except ImportError:  # pragma: no cover
    MCPServer = None

try:
    import httpx
    from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
    from a2a.helpers.proto_helpers import new_text_message
    from a2a.types.a2a_pb2 import Role, SendMessageRequest, TaskState
except ImportError:  # pragma: no cover
    A2ACardResolver = None

from axl.bridge.app import Bridge
from axl.bridge.mcp_sessions import McpSessions
from axl.streams.a2a import A2AStream
from axl.streams.mcp import MCPStream
from axl.streams.recv_queue import RecvQueue
from axl.streams.registry import StreamRegistry
from axl.streams.sender import MessageSender

NODE_KEY = bytes(range(32))
BIG = "x" * (100 * 1024)


def _make_mcp_server(name: str) -> Any:
    server = MCPServer(name)

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    def length(text: str) -> int:
        """Count the characters of the text."""
        return len(text)

    return server


class _UvicornThread:
    """Serves ASGI apps on 127.0.0.1 ephemeral ports from one asyncio loop in a thread."""

    def __init__(self, apps: list[Any]) -> None:
        self.sockets = []
        for _ in apps:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            self.sockets.append(sock)
        self.ports = [s.getsockname()[1] for s in self.sockets]
        self.servers = [uvicorn.Server(uvicorn.Config(app, log_level="warning")) for app in apps]
        self._started = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        tasks = [
            asyncio.create_task(server.serve(sockets=[sock]))
            for server, sock in zip(self.servers, self.sockets, strict=True)
        ]
        while not all(server.started for server in self.servers):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)
        self._started.set()
        await asyncio.gather(*tasks)

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(20):
            raise RuntimeError("uvicorn did not start")

    def stop(self) -> None:
        for server in self.servers:
            server.should_exit = True
        self._thread.join(20)
        for sock in self.sockets:
            sock.close()


class _RecordHeaders:
    """
    ASGI middleware noting the Mcp-Session-Id header of every request the service gets; the
    session id of the first DELETE fires C{deleted} (on the reactor thread).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.session_ids: list[str | None] = []
        self.deleted: Deferred[str | None] = Deferred()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            value = headers.get(b"mcp-session-id")
            session_id = value.decode() if value else None
            self.session_ids.append(session_id)
            if scope["method"] == "DELETE":
                reactor.callFromThread(self._deleted, session_id)
        await self.app(scope, receive, send)

    def _deleted(self, session_id: str | None) -> None:
        if not self.deleted.called:
            self.deleted.callback(session_id)


async def _mcp_session(url: str, mode: str) -> dict[str, Any]:
    """Connect (initialize or discover), tools/list, tools/call (small and 100 KiB), clean close."""
    async with Client(url, mode=mode) as client:
        tools = await client.list_tools()
        small = await client.call_tool("echo", {"text": "hello"})
        big_len = await client.call_tool("length", {"text": BIG})
        big_echo = await client.call_tool("echo", {"text": BIG})
    return {
        "tools": sorted(t.name for t in tools.tools),
        "small": small.content[0].text,
        "big_len": big_len.content[0].text,
        "big_echo_len": len(big_echo.content[0].text),
        "errors": [r.is_error for r in (small, big_len, big_echo)],
    }


async def _a2a_session(bridge: str, peer: str) -> dict[str, Any]:
    """Fetch the card through /a2a/{peer}, then SendMessage an MCP envelope."""
    async with httpx.AsyncClient(timeout=30) as http:
        card = await A2ACardResolver(http, f"{bridge}/a2a/{peer}", agent_card_path="").get_agent_card()
        skills = [s.id for s in card.skills]
        interface_url = card.supported_interfaces[0].url
        # Used as served: the bridge made the remote card's relative interface URL absolute.
        client = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(card)
        envelope = {"service": "plain", "request": {"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {}}}
        message = new_text_message(json.dumps(envelope), role=Role.ROLE_USER)
        events = [event async for event in client.send_message(SendMessageRequest(message=message))]
        await client.close()
    return {"skills": skills, "interface_url": interface_url, "events": events}


class SDKEndToEndTests(TestCase):
    timeout = 120

    def setUp(self) -> Any:
        if MCPServer is None:
            raise self.skipTest("the mcp SDK is not installed (pip install axl[test])")
        plain = _make_mcp_server("plain").streamable_http_app(stateless_http=True, json_response=True)
        self.stateful = _RecordHeaders(_make_mcp_server("stateful").streamable_http_app())
        self.uvicorn = _UvicornThread([plain, self.stateful])
        self.uvicorn.start()
        self.addCleanup(self.uvicorn.stop)

        http = make_http_client(reactor)
        registry = Registry(reactor)
        registry.register("plain", f"http://127.0.0.1:{self.uvicorn.ports[0]}/mcp")
        registry.register("stateful", f"http://127.0.0.1:{self.uvicorn.ports[1]}/mcp")
        router = MCPRouter(registry, http, reactor, timeout=20)
        router_port = self.listen(router.app.resource())

        self.node_key = NODE_KEY.hex()
        topology = _Topology(self.node_key)
        topology_port = self.listen(topology.app.resource())
        a2a = A2AServer(
            http,
            reactor,
            f"http://127.0.0.1:{router_port}",
            f"http://127.0.0.1:{topology_port}",
            timeout=20,
        )
        a2a_port = self.listen(a2a.app.resource())

        queue = RecvQueue(reactor)
        streams = StreamRegistry(queue, reactor)
        streams.add(MCPStream(http, f"http://127.0.0.1:{router_port}/route", reactor))
        streams.add(A2AStream(http, f"http://127.0.0.1:{a2a_port}", reactor))

        def no_dial(key: bytes, port: int) -> Any:
            raise AssertionError("the test's node only talks to itself")

        sender = MessageSender(no_dial, reactor, NODE_KEY, streams)
        self.api = Bridge(lambda: {}, sender, queue, reactor, McpSessions(reactor), request_timeout=25)
        self.bridge = f"http://127.0.0.1:{self.listen(self.api.app.resource())}"

    def listen(self, resource: Any) -> int:
        port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port  # type: ignore[no-any-return]

    def run_async(self, coro_fn: Any, *args: Any) -> Any:
        return deferToThread(lambda: asyncio.run(coro_fn(*args)))

    def check_session(self, result: dict[str, Any]) -> None:
        self.assertEqual(result["tools"], ["echo", "length"])
        self.assertEqual(result["small"], "hello")
        self.assertEqual(result["big_len"], str(len(BIG)))
        self.assertEqual(result["big_echo_len"], len(BIG))
        self.assertEqual(result["errors"], [False, False, False])

    async def test_stateless_json_server(self) -> None:
        """
        The mcp SDK client (initialize handshake) runs a whole session via /mcp/{peer}/plain,
        a stateless server with JSON replies.
        """
        url = f"{self.bridge}/mcp/{self.node_key}/plain"
        self.check_session(await self.run_async(_mcp_session, url, "legacy"))

    async def test_stateful_sse_server(self) -> None:
        """
        The same session works against the SDK defaults (stateful sessions, SSE replies): the
        server's Mcp-Session-Id reaches it again on every request after initialize, and the
        client's closing DELETE ends the server's session (it gets a DELETE with its id).
        """
        url = f"{self.bridge}/mcp/{self.node_key}/stateful"
        self.check_session(await self.run_async(_mcp_session, url, "legacy"))
        # The client's DELETE on close reaches the server too, with the server's own session id.
        deleted = await self.stateful.deleted
        await self.api.when_idle()  # the router's DELETE exchange has finished too
        ids = self.stateful.session_ids
        self.assertIsNone(ids[0])
        self.assertGreaterEqual(len(ids), 5)
        self.assertEqual(len(set(ids[1:])), 1, ids)
        self.assertIsNotNone(ids[1])
        self.assertEqual(deleted, ids[1])

    async def test_modern_protocol(self) -> None:
        """
        The SDK's default mode (server/discover, per-request protocol version, Mcp-Method and
        Mcp-Name headers checked against the body) works with both servers.
        """
        for service in ("plain", "stateful"):
            url = f"{self.bridge}/mcp/{self.node_key}/{service}"
            self.check_session(await self.run_async(_mcp_session, url, "auto"))

    async def test_a2a_sdk(self) -> None:
        """
        The a2a-sdk client reads the card via /a2a/{peer}, whose interface URL is the bridge's
        absolute /a2a/{peer}, follows it unchanged and gets a completed task back.
        """
        if A2ACardResolver is None:
            raise self.skipTest("a2a-sdk is not installed")
        result = await self.run_async(_a2a_session, self.bridge, self.node_key)
        self.assertEqual(sorted(result["skills"]), ["plain", "stateful"])
        self.assertEqual(result["interface_url"], f"{self.bridge}/a2a/{self.node_key}")
        task = _final_task(result["events"])
        self.assertEqual(task.status.state, TaskState.TASK_STATE_COMPLETED)
        reply = json.loads(task.artifacts[0].parts[0].text)
        self.assertEqual(sorted(t["name"] for t in reply["result"]["tools"]), ["echo", "length"])


def _final_task(events: list[Any]) -> Any:
    for event in reversed(events):
        if event.HasField("task"):
            return event.task
    raise AssertionError(f"no task in {events!r}")


class _Topology:
    from klein import Klein

    app = Klein()

    def __init__(self, key: str) -> None:
        self.key = key

    @app.route("/topology")
    def topology(self, request: Any) -> bytes:
        return json.dumps({"our_public_key": self.key, "peers": [], "tree": []}).encode()
