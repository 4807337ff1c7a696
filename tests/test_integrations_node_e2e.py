"""
The whole path on loopback, as examples/README.md tells a newcomer to run it: two C{twistd axl}
nodes (A listens, B peers to A), or B alone calling its own key; on B the C{axl-mcp-router} and
C{axl-a2a} twistd plugins and two copies of examples/mcp_weather_service.py (stateless JSON, and
the SDK's stateful SSE defaults); from A, examples/mcp_client.py (the official C{mcp} SDK client) against A's C{/mcp/{B}/...},
examples/a2a_client.py, and AXL's documented raw requests (spec/axl-node.md §5.7).

Both skip, naming the package, without the C{mcp} SDK, uvicorn or the a2a SDK (the C{test}
extra).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from tests.test_e2e_twistd import ROOT, Twistd, TwistdTestCase, free_port, get_topology
from axl.client import request

WAIT = 40.0
EXAMPLES = os.path.join(ROOT, "examples")


def http(method: str, url: str, body: Any = None) -> tuple[int, bytes]:
    """A request with a JSON body (bytes are sent as they are): (status, body)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    status, _, reply = request(method, url, data, {"Content-Type": "application/json"}, timeout=40)
    return status, reply


class NodeEndToEndTests(TwistdTestCase):
    def setUp(self) -> None:
        super().setUp()
        try:
            import a2a  # noqa: F401
            import mcp  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError as e:
            self.skipTest(f"{e.name} is not installed (pip install -e '.[test]')")
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))

    def node(self, name: str, config: dict[str, Any]) -> int:
        port = free_port()
        self.config({**config, "api_port": port}, f"{name}.json")
        proc = Twistd(self, ["axl", "--config", f"{name}.json"], cwd=self.dir)
        proc.wait_for(rf"Listening on 127\.0\.0\.1:{port}\b")
        return port

    def example(self, *args: str, timeout: float = 90) -> str:
        done = subprocess.run(
            [sys.executable, os.path.join(EXAMPLES, args[0]), *args[1:]],
            cwd=self.dir, env=self.env, capture_output=True, timeout=timeout,
        )
        self.assertEqual(done.returncode, 0, done.stdout.decode() + done.stderr.decode())
        return done.stdout.decode()

    def service(self, port: int, router: int, *extra: str) -> None:
        log = open(os.path.join(self.dir, f"service-{port}.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            [sys.executable, os.path.join(EXAMPLES, "mcp_weather_service.py"), "--port", str(port),
             "--router", f"http://127.0.0.1:{router}", *extra],
            cwd=self.dir, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self.addCleanup(lambda: (proc.kill(), proc.wait(10)))

    def services_node(self, config: dict[str, Any], examples: bool = True) -> tuple[int, str]:
        """Node B with the router and A2A twistd plugins and two example services; (api port, key)."""
        router, a2a = free_port(), free_port()
        api_b = self.node(
            "b",
            {**config, "router_addr": "http://127.0.0.1", "router_port": router,
             "a2a_addr": "http://127.0.0.1", "a2a_port": a2a},
        )
        Twistd(self, ["axl-mcp-router", "--port", str(router)], cwd=self.dir).wait_for("MCP Router listening on")
        Twistd(
            self,
            ["axl-a2a", "--port", str(a2a), "--router", f"http://127.0.0.1:{router}",
             "--node-url", f"http://127.0.0.1:{api_b}"],
            cwd=self.dir,
        ).wait_for("A2A server listening on")
        self.router = f"http://127.0.0.1:{router}"
        if examples:
            self.service(free_port(), router)
            self.service(free_port(), router, "--stateful", "--name", "weather_sse")
        return api_b, get_topology(api_b)["our_public_key"]

    def test_examples_on_one_node(self) -> None:
        """
        The same through one node calling its own key (the node delivers to its own streams):
        bridge, MCP/A2A streams, router, A2A server and SDK services are all real processes.
        """
        api_b, key_b = self.services_node({})
        self.check_examples(f"http://127.0.0.1:{api_b}", key_b)

    def test_examples_across_two_nodes(self) -> None:
        """The MCP and A2A examples and AXL's documented requests work from A to services on B."""
        listen = f"tls://127.0.0.1:{free_port()}"
        api_a = self.node("a", {"Listen": [listen]})
        api_b, key_b = self.services_node({"Peers": [listen]})
        self.check_examples(f"http://127.0.0.1:{api_a}", key_b)

    def test_sdk_sessions_across_two_nodes(self) -> None:
        """
        The mcp SDK client at A's /mcp/{B}/{service} runs initialize (or discover), list_tools,
        call_tool with a 100 KiB argument and a clean close, against a stateless JSON server and
        an SDK-default (stateful, SSE) server behind B's router; the a2a-sdk client fetches B's
        card through A and gets a completed task.
        """
        from tests.test_integrations_sdk import (
            _a2a_session,
            _make_mcp_server,
            _mcp_session,
            _RecordHeaders,
            _UvicornThread,
        )

        listen = f"tls://127.0.0.1:{free_port()}"
        api_a = self.node("a", {"Listen": [listen]})
        api_b, key_b = self.services_node({"Peers": [listen]}, examples=False)
        plain = _make_mcp_server("plain").streamable_http_app(stateless_http=True, json_response=True)
        stateful = _RecordHeaders(_make_mcp_server("stateful").streamable_http_app())
        servers = _UvicornThread([plain, stateful])
        servers.start()
        self.addCleanup(servers.stop)
        for name, port in zip(("plain", "stateful"), servers.ports, strict=True):
            code, _ = http("POST", f"{self.router}/register", {"service": name, "endpoint": f"http://127.0.0.1:{port}/mcp"})
            self.assertEqual(code, 200)
        bridge = f"http://127.0.0.1:{api_a}"
        self.wait_for_route(bridge, key_b, "plain", b"echo")
        for service in ("plain", "stateful"):
            for mode in ("legacy", "auto"):
                seen = len(stateful.session_ids)
                result = asyncio.run(_mcp_session(f"{bridge}/mcp/{key_b}/{service}", mode))
                self.assertEqual(result["tools"], ["echo", "length"])
                self.assertEqual(result["big_len"], str(100 * 1024))
                self.assertEqual(result["big_echo_len"], 100 * 1024)
                self.assertEqual(result["errors"], [False, False, False])
                if (service, mode) == ("stateful", "legacy"):
                    # initialize had no session; every later request carried the server's own id.
                    ids = stateful.session_ids[seen:]
                    self.assertIsNone(ids[0])
                    self.assertEqual(len(set(ids[1:])), 1, ids)
                    self.assertIsNotNone(ids[1])
        result = asyncio.run(_a2a_session(bridge, key_b))
        self.assertEqual(sorted(result["skills"]), ["plain", "stateful"])
        self.assertEqual(result["interface_url"], f"{bridge}/a2a/{key_b}")
        self.assertTrue(result["events"][-1].task.artifacts)

    def wait_for_route(self, bridge: str, key_b: str, service: str, expect: bytes) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            code, body = http("POST", f"{bridge}/mcp/{key_b}/{service}", {"jsonrpc": "2.0", "method": "tools/list", "id": 1, "params": {}})
            if code == 200 and expect in body:
                return
            if time.monotonic() > deadline:
                self.fail(f"no MCP route to B: {code} {body!r}")
            time.sleep(0.5)

    def check_examples(self, bridge: str, key_b: str) -> None:
        self.wait_for_route(bridge, key_b, "weather", b"get_weather")

        # AXL's documented requests, verbatim in meaning (spec/axl-node.md §5.7).
        code, body = http(
            "POST", f"{bridge}/mcp/{key_b}/weather",
            {"jsonrpc": "2.0", "method": "tools/call", "id": 1, "params": {"name": "get_weather", "arguments": {"city": "Dublin"}}},
        )
        self.assertEqual(code, 200)
        self.assertIn("Dublin: light rain, 11 C", json.loads(body)["result"]["content"][0]["text"])
        code, body = http("GET", f"{bridge}/a2a/{key_b}")
        self.assertEqual(code, 200)
        self.assertEqual({s["id"] for s in json.loads(body)["skills"]}, {"weather", "weather_sse"})
        envelope = {"service": "weather", "request": {"jsonrpc": "2.0", "method": "tools/list", "id": 1, "params": {}}}
        code, body = http(
            "POST", f"{bridge}/a2a/{key_b}",
            {"jsonrpc": "2.0", "method": "SendMessage", "id": 1,
             "params": {"message": {"role": "ROLE_USER", "messageId": "test123", "parts": [{"text": json.dumps(envelope)}]}}},
        )
        self.assertEqual(code, 200)
        self.assertEqual(json.loads(body)["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED")

        # The examples, as the README runs them, with the official MCP SDK client.
        for service in ("weather", "weather_sse"):
            for mode in ([], ["--legacy"]):
                out = self.example("mcp_client.py", "--node", bridge, key_b, "--service", service, *mode)
                self.assertIn("tool get_weather", out)
                self.assertIn("Dublin: light rain, 11 C", out)
        out = self.example("a2a_client.py", "--node", bridge, key_b, "--service", "weather")
        self.assertIn("tool list_cities", out)
        out = self.example(
            "a2a_client.py", "--node", bridge, key_b, "--service", "weather", "--tool", "get_weather",
            "--args", '{"city": "Paris"}',
        )
        self.assertIn("Paris: sunny, 17 C", out)
