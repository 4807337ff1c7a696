# -*- test-case-name: tests.test_integrations_a2a -*-
"""
The A2A server: a Klein app exposing the MCP services registered with the node's router as
A2A skills (AXL's C{a2a_server.py}, spec/axl-node.md §10), speaking A2A v1.0 JSON-RPC.

 - C{GET /.well-known/agent-card.json}: the card, rebuilt from the router's C{/services} on every
   request; the node key comes from C{<node>/topology} (fetched when first needed, retried until
   the node answers) — the node URL is an option, not hard-coded.
 - C{POST /}: JSON-RPC. C{SendMessage} turns the message text (a JSON C{{"service", "request"}}
   envelope) into one C{POST <router>/route}, forwarding the caller's C{X-From-Peer-Id}, and
   answers with a completed or failed task. C{GetTask}, C{ListTasks}, C{CancelTask} work on
   the in-memory tasks; streaming and push notifications are refused with A2A's error codes.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from uuid import uuid4

from klein import Klein
from treq.client import HTTPClient
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from axl.errors import no_answer
from axl.integrations.a2a_card import PROTOCOL_VERSION, agent_message, build_agent_card
from axl.logs import observer as log_observer

__all__ = ["A2AServer", "DEFAULT_A2A_PORT", "JSONRPCError"]

DEFAULT_A2A_PORT = 9004
ROUTER_TIMEOUT = 30.0
MAX_TASKS = 1000

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
PUSH_NOT_SUPPORTED = -32003
UNSUPPORTED_OPERATION = -32004
EXTENDED_CARD_NOT_CONFIGURED = -32007
VERSION_NOT_SUPPORTED = -32009

_PUSH_METHODS = frozenset(
    {
        "CreateTaskPushNotificationConfig",
        "GetTaskPushNotificationConfig",
        "ListTaskPushNotificationConfigs",
        "DeleteTaskPushNotificationConfig",
    }
)


class JSONRPCError(Exception):
    """A JSON-RPC error to answer with: C{code} and the message."""
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _json(request: IRequest, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(body).encode("utf-8")


def _message_text(message: dict[str, Any]) -> Any:
    """The MCP envelope a message carries: its text parts joined, parsed as JSON; or a data part."""
    parts = message["parts"]
    texts = [p["text"] for p in parts if isinstance(p.get("text"), str)]
    if texts:
        try:
            return json.loads("\n".join(texts))
        except ValueError:
            return None
    for part in parts:
        if isinstance(part.get("data"), dict):
            return part["data"]
    return None


def _check_message(params: Any) -> dict[str, Any]:
    if not isinstance(params, dict) or not isinstance(params.get("message"), dict):
        raise JSONRPCError(INVALID_PARAMS, "Invalid params: 'message' must be an object")
    message: dict[str, Any] = params["message"]
    parts = message.get("parts")
    if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) for p in parts):
        raise JSONRPCError(INVALID_PARAMS, "Invalid params: 'message.parts' must be a non-empty list")
    if not isinstance(message.get("messageId"), str) or not message["messageId"]:
        raise JSONRPCError(INVALID_PARAMS, "Invalid params: 'message.messageId' is required")
    if not isinstance(message.get("role"), str):
        raise JSONRPCError(INVALID_PARAMS, "Invalid params: 'message.role' is required")
    return message


class A2AServer:
    """
    @param http: client for the router and the node.
    @param router_url: base URL of the MCP router, e.g. C{http://127.0.0.1:9003}.
    @param node_url: base URL of the node's bridge, e.g. C{http://127.0.0.1:9002}.
    @param new_id: makes task/context/message/artifact ids (uuid4 by default).
    """

    app = Klein()
    log = Logger(observer=log_observer)

    def __init__(
        self,
        http: HTTPClient,
        clock: IReactorTime,
        router_url: str,
        node_url: str,
        new_id: Callable[[], str] = lambda: str(uuid4()),
        timeout: float = ROUTER_TIMEOUT,
    ) -> None:
        self._http = http
        self._clock = clock
        self._router = router_url.rstrip("/")
        self._node = node_url.rstrip("/")
        self._new_id = new_id
        self._timeout = timeout
        self._node_key: str | None = None
        self.tasks: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # -- agent card -------------------------------------------------------------------------

    @app.route("/.well-known/agent-card.json", methods=["GET"])
    async def agent_card(self, request: IRequest) -> bytes:
        """C{GET /.well-known/agent-card.json}: the card, one skill per registered service."""
        try:
            key = await self._get_node_key()
        except Exception as e:
            self.log.warn("node at {url} not reachable: {err}", url=self._node, err=e)
            return _json(request, 503, {"error": f"node not reachable at {self._node}: {e}"})
        return _json(request, 200, build_agent_card(await self._service_names(), key))

    async def _get_node_key(self) -> str:
        if self._node_key is None:
            d = self._http.get(self._node + "/topology")
            response = await d.addTimeout(self._timeout, self._clock, onTimeoutCancel=no_answer)
            body = await response.content()
            if response.code != 200:
                raise RuntimeError(f"/topology answered {response.code}")
            key = json.loads(body).get("our_public_key")
            if not isinstance(key, str) or not key:
                raise RuntimeError("/topology has no our_public_key")
            self._node_key = key
        return self._node_key

    async def _service_names(self) -> list[str]:
        try:
            d = self._http.get(self._router + "/services")
            response = await d.addTimeout(self._timeout, self._clock, onTimeoutCancel=no_answer)
            body = await response.content()
            if response.code != 200:
                raise RuntimeError(f"/services answered {response.code}")
            services = json.loads(body)
            if not isinstance(services, dict):
                raise RuntimeError("/services is not a JSON object")
            return list(services)
        except Exception as e:
            self.log.warn("router at {url}: cannot list services: {err}", url=self._router, err=e)
            return []

    # -- JSON-RPC ---------------------------------------------------------------------------

    @app.route("/", methods=["POST"])
    async def jsonrpc(self, request: IRequest) -> bytes:
        """C{POST /}: one A2A v1.0 JSON-RPC request (SendMessage, GetTask, ListTasks, CancelTask)."""
        try:
            body = json.loads(request.content.read())
        except (ValueError, UnicodeDecodeError) as e:
            return _json(request, 200, _error(None, PARSE_ERROR, f"Parse error: {e}"))
        rpc_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(rpc_id, (str, int)) or isinstance(rpc_id, bool):
            rpc_id = None
        try:
            if (
                not isinstance(body, dict)
                or body.get("jsonrpc") != "2.0"
                or not isinstance(body.get("method"), str)
            ):
                raise JSONRPCError(INVALID_REQUEST, "Invalid Request")
            version = request.getHeader("A2A-Version")
            if version is not None and version.strip() not in (PROTOCOL_VERSION, PROTOCOL_VERSION + ".0"):
                raise JSONRPCError(
                    VERSION_NOT_SUPPORTED, f"A2A version {version} is not supported (use {PROTOCOL_VERSION})"
                )
            caller = request.getHeader("X-From-Peer-Id") or "a2a-client"
            result = await self._dispatch(body["method"], body.get("params"), caller)
        except JSONRPCError as e:
            return _json(request, 200, _error(rpc_id, e.code, e.message))
        return _json(request, 200, {"jsonrpc": "2.0", "id": rpc_id, "result": result})

    async def _dispatch(self, method: str, params: Any, caller: str) -> Any:
        if method == "SendMessage":
            return {"task": await self._send_message(_check_message(params), caller)}
        if method == "GetTask":
            task = self._find_task(params)
            length = params.get("historyLength")
            if isinstance(length, int) and length >= 0:
                task = dict(task, history=task["history"][-length:] if length else [])
            return task
        if method == "CancelTask":
            task = self._find_task(params)
            raise JSONRPCError(
                TASK_NOT_CANCELABLE, f"Task {task['id']} is {task['status']['state']}"
            )
        if method == "ListTasks":
            context = params.get("contextId") if isinstance(params, dict) else None
            tasks = [t for t in reversed(self.tasks.values()) if not context or t["contextId"] == context]
            return {"tasks": tasks, "nextPageToken": "", "pageSize": len(tasks), "totalSize": len(tasks)}
        if method in ("SendStreamingMessage", "SubscribeToTask"):
            raise JSONRPCError(UNSUPPORTED_OPERATION, "Streaming is not supported by this agent")
        if method in _PUSH_METHODS:
            raise JSONRPCError(PUSH_NOT_SUPPORTED, "Push notifications are not supported")
        if method == "GetExtendedAgentCard":
            raise JSONRPCError(EXTENDED_CARD_NOT_CONFIGURED, "No extended agent card")
        raise JSONRPCError(METHOD_NOT_FOUND, f"Method not found: {method}")

    def _find_task(self, params: Any) -> dict[str, Any]:
        task_id = params.get("id") if isinstance(params, dict) else None
        if not isinstance(task_id, str):
            raise JSONRPCError(INVALID_PARAMS, "Invalid params: 'id' is required")
        task = self.tasks.get(task_id)
        if task is None:
            raise JSONRPCError(TASK_NOT_FOUND, f"Task not found: {task_id}")
        return task

    # -- the executor: one message -> one router call -----------------------------------------

    async def _send_message(self, message: dict[str, Any], caller: str) -> dict[str, Any]:
        task_id = self._new_id()
        context_id = message.get("contextId") or self._new_id()
        user = dict(message, taskId=task_id, contextId=context_id)
        working = agent_message(self._new_id(), "Processing MCP request...", task_id, context_id)
        artifacts: list[dict[str, Any]] = []
        status: dict[str, Any]
        try:
            service, response = await self._call_router(_message_text(message), caller)
        except _ExecutionFailed as e:
            failed = agent_message(self._new_id(), f"Error: {e}", task_id, context_id)
            status = {"state": "TASK_STATE_FAILED", "message": failed}
        else:
            artifacts.append(
                {
                    "artifactId": self._new_id(),
                    "name": "mcp_response",
                    "description": f"Response from {service} MCP service",
                    "parts": [{"text": json.dumps(response, indent=2)}],
                }
            )
            status = {"state": "TASK_STATE_COMPLETED"}
        status["timestamp"] = datetime.fromtimestamp(self._clock.seconds(), timezone.utc).isoformat()
        task = {
            "id": task_id,
            "contextId": context_id,
            "status": status,
            "artifacts": artifacts,
            "history": [user, working],
        }
        self.tasks[task_id] = task
        while len(self.tasks) > MAX_TASKS:
            self.tasks.popitem(last=False)
        return task

    async def _call_router(self, envelope: Any, caller: str) -> tuple[str, Any]:
        if envelope is None:
            raise _ExecutionFailed("Could not parse MCP request from message")
        if not isinstance(envelope, dict):
            raise _ExecutionFailed("MCP request must be a JSON object")
        service = envelope.get("service") if "jsonrpc" not in envelope else None
        if not isinstance(service, str) or not service:
            raise _ExecutionFailed("No service specified in request")
        body = {"service": service, "request": envelope.get("request") or {}, "from_peer_id": caller}
        headers: dict[bytes | str, list[bytes | str]] = {"Content-Type": ["application/json"]}
        try:
            d = self._http.post(
                self._router + "/route",
                data=json.dumps(body).encode("utf-8"),
                headers=headers,
            )
            response = await d.addTimeout(self._timeout, self._clock, onTimeoutCancel=no_answer)
            raw = await response.content()
        except Exception as e:
            raise _ExecutionFailed(f"Router not reachable: {e}") from e
        if response.code != 200:
            raise _ExecutionFailed(f"Router returned {response.code}: {raw.decode('utf-8', 'replace')}")
        try:
            reply = json.loads(raw)
        except ValueError as e:
            raise _ExecutionFailed(f"Router reply is not JSON: {e}") from e
        if not isinstance(reply, dict):
            raise _ExecutionFailed("Router reply is not a JSON object")
        if reply.get("error"):
            raise _ExecutionFailed(f"Router error: {reply['error']}")
        return service, reply.get("response")


class _ExecutionFailed(Exception):
    """A SendMessage that ends in TASK_STATE_FAILED; the text goes into the status message."""


def _error(rpc_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": code, "message": message}}

