# -*- test-case-name: tests.test_integrations_router -*-
"""
Small Klein fakes shared by the integrations tests: an MCP service, a node bridge's
C{/topology}, and a minimal router for the A2A server.
"""

from __future__ import annotations

import json
from typing import Any

from klein import Klein
from twisted.web.iweb import IRequest
from twisted.internet.defer import Deferred

__all__ = ["FakeService", "FakeNode", "FakeRouter", "json_body"]


def json_body(data: Any) -> bytes:
    return json.dumps(data).encode("utf-8")


class FakeService:
    """
    An MCP service at C{/mcp}. C{reply} is (status, headers, body); C{hang} keeps the request
    open forever. Every request is recorded as (headers dict, body bytes), its method in
    C{methods}.
    """

    app = Klein()

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.methods: list[str] = []
        self.reply: tuple[int, dict[str, str], bytes] = (
            200,
            {"Content-Type": "application/json"},
            b'{"jsonrpc": "2.0", "id": 1, "result": {"ok": true}}',
        )
        self.hang = False

    @app.route("/mcp", methods=["POST", "DELETE"])
    def mcp(self, request: IRequest) -> Any:
        self.methods.append(request.method.decode())
        headers = {
            k.decode(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()
        }
        self.requests.append((headers, request.content.read()))
        if self.hang:
            return Deferred()  # never fires
        status, reply_headers, body = self.reply
        request.setResponseCode(status)
        for name, value in reply_headers.items():
            request.setHeader(name, value)
        return body


class FakeNode:
    """A node bridge that only answers C{/topology}."""

    app = Klein()

    def __init__(self, key: str = "ab" * 32) -> None:
        self.key = key
        self.calls = 0
        self.up = True

    @app.route("/topology")
    def topology(self, request: IRequest) -> bytes:
        self.calls += 1
        if not self.up:
            request.setResponseCode(503)
            return b"down"
        request.setHeader("Content-Type", "application/json")
        return json_body({"our_public_key": self.key, "our_ipv6": "200::1", "peers": [], "tree": []})


class FakeRouter:
    """A router fake: C{/services} from C{services}; C{/route} answers C{route_reply}."""

    app = Klein()

    def __init__(self) -> None:
        self.services: dict[str, Any] = {}
        self.routed: list[dict[str, Any]] = []
        self.route_reply: tuple[int, Any] = (200, {"response": {"ok": 1}, "error": None})
        self.services_status = 200

    @app.route("/services", methods=["GET"])
    def list_services(self, request: IRequest) -> bytes:
        request.setResponseCode(self.services_status)
        return json_body(self.services)

    @app.route("/route", methods=["POST"])
    def route(self, request: IRequest) -> bytes:
        self.routed.append(json.loads(request.content.read()))
        status, body = self.route_reply
        request.setResponseCode(status)
        return json_body(body)
