# -*- test-case-name: tests.test_integrations_router -*-
"""
The MCP router: a Klein app holding the registry of local MCP services and forwarding one
JSON-RPC message at a time to them (AXL's C{mcp_router.py}, spec/axl-node.md §9).

HTTP API (JSON bodies, C{Content-Type: application/json; charset=utf-8}):

 - C{POST /register} C{{"service", "endpoint"}} -> C{{"status": "registered", "service"}}
 - C{DELETE /register/{service}} -> C{{"status": "deregistered", "service"}} or 404
 - C{GET /services} -> C{{name: {"endpoint", "registered_at", "healthy"}}}
 - C{GET /health} -> C{{"status": "ok", "service_count": N}}
 - C{POST /route} C{{"service", "request", "from_peer_id"?, "headers"?}} ->
   C{{"response", "error", "headers"?}}

Beyond AXL (§13 items 35-37): the MCP transport headers in C{headers} are sent to the service and
the service's C{Mcp-Session-Id} comes back in the reply's C{headers}; C{202}/C{204} mean "no
response" (C{"response": null}); C{text/event-stream} replies are read; non-object JSON bodies get
C{400}; registrations may be persisted (see L{Registry}); an envelope whose C{headers} carry
C{":method": "DELETE"} ends the service's session with an HTTP C{DELETE} (the remote bridge's
client closed it) and is answered C{{"response": null, "error": null}}.
"""

from __future__ import annotations

import json
from typing import Any

import treq
from klein import Klein
from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from axl.errors import no_answer
from axl.integrations.mcp_http import (
    REPLY_HEADERS,
    REQUEST_HEADERS,
    SESSION_HEADER,
    ReplyError,
    decode_reply,
    parse_json_object,
    routing_headers,
    select_headers,
)
from axl.integrations.registry import Registry, RegistrationError
from axl.logs import observer as log_observer

__all__ = ["MCPRouter", "DEFAULT_ROUTER_PORT", "FORWARD_TIMEOUT", "METHOD_HEADER"]

DEFAULT_ROUTER_PORT = 9003
FORWARD_TIMEOUT = 30.0
MAX_REPLY = 16 * 1024 * 1024
_ACCEPT = "application/json, text/event-stream"
#: The envelope header (an HTTP/2-style pseudo-header, never sent on as a header) that carries
#: the HTTP method the caller used; only C{DELETE} (end the session) changes what is done.
METHOD_HEADER = ":method"
#: The headers of a session C{DELETE}, and the statuses that mean the session is over.
_DELETE_HEADERS: tuple[str, ...] = (SESSION_HEADER, "MCP-Protocol-Version")
_SESSION_ENDED = frozenset((200, 202, 204, 404, 405))


class _ServiceStatus(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def _read_limited(response: Any, limit: int) -> bytes:
    """The whole body of C{response}, or L{ReplyError} as soon as it exceeds C{limit} bytes."""
    chunks: list[bytes] = []
    size = 0

    def collect(data: bytes) -> None:
        nonlocal size
        size += len(data)
        if size > limit:
            raise ReplyError(f"reply larger than {limit} bytes")
        chunks.append(data)

    await treq.collect(response, collect)
    return b"".join(chunks)


def _json(request: IRequest, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    return json.dumps(body).encode("utf-8")


class MCPRouter:
    """
    @param registry: the services.
    @param http: the client used to reach the services.
    @param clock: for the per-forward timeout.
    @param timeout: seconds a service has to answer before C{504}.
    @param max_reply: largest service reply body read (bytes); a node cannot carry more than its
        C{max_message_size} (16 MiB by default) anyway.
    """

    app = Klein()
    log = Logger(observer=log_observer)

    def __init__(
        self,
        registry: Registry,
        http: HTTPClient,
        clock: IReactorTime,
        timeout: float = FORWARD_TIMEOUT,
        max_reply: int = MAX_REPLY,
    ) -> None:
        self.registry = registry
        self._max_reply = max_reply
        self._http = http
        self._clock = clock
        self._timeout = timeout

    @app.route("/register", methods=["POST"])
    def register(self, request: IRequest) -> bytes:
        """C{POST /register {service, endpoint}}: add or replace a service."""
        try:
            body = parse_json_object(request.content.read())
        except ValueError as e:
            return _json(request, 400, {"error": f"Invalid JSON: {e}"})
        service, endpoint = body.get("service"), body.get("endpoint")
        if not service or not endpoint:
            return _json(request, 400, {"error": "Both 'service' and 'endpoint' are required"})
        if not isinstance(service, str) or not isinstance(endpoint, str):
            return _json(request, 400, {"error": "'service' and 'endpoint' must be strings"})
        try:
            self.registry.register(service, endpoint)
        except RegistrationError as e:
            return _json(request, 400, {"error": str(e)})
        self.log.info("registered {service} at {endpoint}", service=service, endpoint=endpoint)
        return _json(request, 200, {"status": "registered", "service": service})

    @app.route("/register/<path:service>", methods=["DELETE"])
    def deregister(self, request: IRequest, service: str) -> bytes:
        """C{DELETE /register/{service}}: remove a service (404 if unknown)."""
        if not self.registry.deregister(service):
            return _json(request, 404, {"error": f"Service not found: {service}"})
        self.log.info("deregistered {service}", service=service)
        return _json(request, 200, {"status": "deregistered", "service": service})

    @app.route("/services", methods=["GET"])
    def services(self, request: IRequest) -> bytes:
        """C{GET /services}: every registered service and its entry."""
        return _json(request, 200, self.registry.to_json())

    @app.route("/health", methods=["GET"])
    def health(self, request: IRequest) -> bytes:
        """C{GET /health}: C{status} and C{service_count}."""
        return _json(request, 200, {"status": "ok", "service_count": len(self.registry)})

    @app.route("/route", methods=["POST"])
    async def route(self, request: IRequest) -> bytes:
        """C{POST /route {service, request, from_peer_id?, headers?}}: forward to the service."""
        try:
            body = parse_json_object(request.content.read())
        except ValueError as e:
            return _json(request, 400, {"response": None, "error": f"Invalid JSON: {e}"})
        service = body.get("service")
        if not service or not isinstance(service, str):
            return _json(request, 400, {"response": None, "error": "Missing 'service' field"})
        headers = body.get("headers")
        if headers is not None and not isinstance(headers, dict):
            return _json(request, 400, {"response": None, "error": "'headers' must be an object"})
        from_peer = body.get("from_peer_id")
        if not isinstance(from_peer, str) or not from_peer:
            from_peer = "unknown"
        entry = self.registry.lookup(service)
        if entry is None:
            return _json(request, 404, {"response": None, "error": f"Service not found: {service}"})
        if headers is not None and headers.get(METHOD_HEADER) == "DELETE":
            forward = Deferred.fromCoroutine(
                self._end_session(
                    entry.endpoint, service, from_peer, select_headers(headers, _DELETE_HEADERS)
                )
            )
        else:
            forward = Deferred.fromCoroutine(
                self._forward(
                    entry.endpoint,
                    service,
                    body.get("request"),
                    from_peer,
                    {
                        **routing_headers(body.get("request")),
                        **select_headers(headers, REQUEST_HEADERS),
                    },
                )
            )
        try:
            forward.addTimeout(self._timeout, self._clock, onTimeoutCancel=no_answer)
            response, reply_headers = await forward
        except DeferredTimeout:
            self.registry.mark(service, False)
            self.log.warn("service {service} timed out", service=service)
            return _json(request, 504, {"response": None, "error": "Service timeout"})
        except Exception as e:
            return self._failed(request, service, e)
        self.registry.mark(service, True)
        reply: dict[str, Any] = {"response": response, "error": None}
        if reply_headers:
            reply["headers"] = reply_headers
        return _json(request, 200, reply)

    def _failed(self, request: IRequest, service: str, e: Exception) -> bytes:
        self.registry.mark(service, False)
        if isinstance(e, _ServiceStatus):
            self.log.warn("service {service} answered {status}", service=service, status=e.status)
            return _json(request, 502, {"response": None, "error": f"Service error: {e.status}"})
        self.log.warn("forward to {service} failed: {err}", service=service, err=e)
        return _json(request, 502, {"response": None, "error": f"Forward error: {e}"})

    async def _end_session(
        self, endpoint: str, service: str, from_peer: str, transport_headers: dict[str, str]
    ) -> tuple[Any, dict[str, str]]:
        """
        C{DELETE} the service's session (the C{:method} pseudo-header of an envelope). Done when
        the service answers 200/202/204, or 404/405 (the session is already gone, or the server
        does not let clients end sessions).
        """
        headers: dict[bytes | str, list[bytes | str]] = {
            "X-From-Peer-Id": [from_peer],
            "X-Service": [service],
        }
        for name, value in transport_headers.items():
            headers[name] = [value]
        response = await self._http.delete(endpoint, headers=headers)
        await _read_limited(response, self._max_reply)
        if response.code not in _SESSION_ENDED:
            raise _ServiceStatus(response.code)
        return None, {}

    async def _forward(
        self,
        endpoint: str,
        service: str,
        message: Any,
        from_peer: str,
        transport_headers: dict[str, str],
    ) -> tuple[Any, dict[str, str]]:
        headers: dict[bytes | str, list[bytes | str]] = {
            "Content-Type": ["application/json"],
            "Accept": [_ACCEPT],
            "X-From-Peer-Id": [from_peer],
            "X-Service": [service],
        }
        for name, value in transport_headers.items():
            headers[name] = [value]
        response = await self._http.post(
            endpoint, data=json.dumps(message).encode("utf-8"), headers=headers
        )
        body = await _read_limited(response, self._max_reply)
        reply_headers = {}
        for name in REPLY_HEADERS:
            value = response.headers.getRawHeaders(name)
            if value:
                reply_headers[name] = value[0]
        if response.code in (202, 204):
            return None, reply_headers
        if response.code != 200:
            raise _ServiceStatus(response.code)
        content_type = response.headers.getRawHeaders("Content-Type", [None])[0]
        try:
            return decode_reply(content_type, body), reply_headers
        except ReplyError as e:
            raise ReplyError(f"{response.code}, {e}") from e
