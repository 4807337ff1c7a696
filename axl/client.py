# -*- test-case-name: tests.test_client -*-
"""
A small client for an axl (or AXL) node's HTTP bridge, in two flavours with the same methods:

 - L{NodeClient}: blocking, standard library only (C{urllib}); for scripts and examples.
 - L{TreqNodeClient}: returns Deferreds, takes a C{treq} C{HTTPClient}; for Twisted programs.

Methods: C{topology()}, C{our_key()}, C{send(peer, data)}, C{recv()}, C{mcp(peer, service,
request)}, C{a2a_card(peer)}, C{a2a_send(peer, text)}, C{a2a_mcp(peer, service, request)}.
Each request is described once (L{Call}: method, path, headers, body and a parser of the
answer) and executed by either flavour.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

__all__ = [
    "DEFAULT_NODE_URL",
    "ReceivedMessage",
    "NodeError",
    "Call",
    "NodeClient",
    "TreqNodeClient",
    "send_message_body",
    "mcp_envelope",
    "task_result",
    "request",
]

DEFAULT_NODE_URL = "http://127.0.0.1:9002"


@dataclass(frozen=True)
class ReceivedMessage:
    """One message popped from C{/recv}."""

    from_peer_id: str
    data: bytes


class NodeError(Exception):
    """The bridge answered with an unexpected status; C{body} is its (text) explanation."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body.decode('utf-8', 'replace').strip()}")
        self.status = status
        self.body = body


Parser = Callable[[int, Mapping[str, str], bytes], Any]


@dataclass(frozen=True)
class Call:
    """One HTTP request to the bridge and how to read its answer (headers keyed in lower case)."""

    method: str
    path: str
    parse: Parser
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def _expect_json(status: int, headers: Mapping[str, str], body: bytes) -> Any:
    if status != 200:
        raise NodeError(status, body)
    return json.loads(body) if body else None


def mcp_envelope(service: str, request: Any) -> dict[str, Any]:
    """The C{{"service", "request"}} envelope an A2A message carries to reach an MCP service."""
    return {"service": service, "request": request}


def send_message_body(text: str, message_id: str, rpc_id: int | str = 1) -> dict[str, Any]:
    """An A2A v1.0 C{SendMessage} JSON-RPC request with one text part."""
    return {
        "jsonrpc": "2.0",
        "method": "SendMessage",
        "id": rpc_id,
        "params": {"message": {"role": "ROLE_USER", "messageId": message_id, "parts": [{"text": text}]}},
    }


def task_result(reply: Mapping[str, Any]) -> Any:
    """
    The MCP reply inside a C{SendMessage} answer: the JSON text of the completed task's first
    artifact. Raises C{RuntimeError} with the agent's explanation for errors and failed tasks.
    """
    if "error" in reply:
        raise RuntimeError(f"A2A error {reply['error'].get('code')}: {reply['error'].get('message')}")
    task = reply["result"]["task"]
    if task["status"]["state"] != "TASK_STATE_COMPLETED":
        parts = task["status"].get("message", {}).get("parts", [])
        raise RuntimeError(parts[0].get("text", task["status"]["state"]) if parts else task["status"]["state"])
    return json.loads(task["artifacts"][0]["parts"][0]["text"])


class _Calls:
    """The bridge's API as L{Call}s; subclasses execute them."""

    def _topology(self) -> Call:
        return Call("GET", "/topology", _expect_json)

    def _send(self, peer_id: str, data: bytes) -> Call:
        def parse(status: int, headers: Mapping[str, str], body: bytes) -> int:
            if status != 200:
                raise NodeError(status, body)
            return int(headers.get("x-sent-bytes", len(data)))

        headers = {"X-Destination-Peer-Id": peer_id, "Content-Type": "application/octet-stream"}
        return Call("POST", "/send", parse, headers, data)

    def _recv(self) -> Call:
        def parse(status: int, headers: Mapping[str, str], body: bytes) -> ReceivedMessage | None:
            if status == 204:
                return None
            if status != 200:
                raise NodeError(status, body)
            return ReceivedMessage(headers.get("x-from-peer-id", ""), body)

        return Call("GET", "/recv", parse)

    def _mcp(self, peer_id: str, service: str, request: Any, session_id: str | None) -> Call:
        def parse(status: int, headers: Mapping[str, str], body: bytes) -> Any:
            if status == 202:
                return None
            return _expect_json(status, headers, body)

        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if session_id:
            headers["Mcp-Session-Id"] = session_id
        return Call("POST", f"/mcp/{peer_id}/{service}", parse, headers, json.dumps(request).encode())

    def _a2a_card(self, peer_id: str) -> Call:
        return Call("GET", f"/a2a/{peer_id}", _expect_json)

    def _a2a_send(self, peer_id: str, text: str, message_id: str | None) -> Call:
        body = send_message_body(text, message_id or str(uuid4()))
        headers = {"Content-Type": "application/json"}
        return Call("POST", f"/a2a/{peer_id}", _expect_json, headers, json.dumps(body).encode())


def request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    opener: urllib.request.OpenerDirector | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """
    One plain HTTP request with the standard library: C{(status, headers, body)} whatever the
    status (an error status is returned, not raised; a connection failure raises C{OSError}).
    """
    req = urllib.request.Request(url, data=body, headers=dict(headers or {}), method=method)
    try:
        with (opener or _OPENER).open(req, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()) if e.headers is not None else {}, e.read()


_OPENER = urllib.request.build_opener()


class NodeClient(_Calls):
    """
    Blocking client (standard library only).

    @param url: the bridge, default C{http://127.0.0.1:9002}.
    @param timeout: seconds per request (MCP/A2A calls can take 30 s at the remote end).
    @param opener: a C{urllib.request.OpenerDirector}; tests pass one with a fake handler.
    """

    def __init__(
        self,
        url: str = DEFAULT_NODE_URL,
        timeout: float = 60.0,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._opener = opener or urllib.request.build_opener()

    def _do(self, call: Call) -> Any:
        status, headers, body = request(
            call.method, self.url + call.path, call.body, call.headers, self.timeout, self._opener
        )
        return call.parse(status, {k.lower(): v for k, v in headers.items()}, body)

    def topology(self) -> dict[str, Any]:
        """The node's C{/topology} document."""
        return self._do(self._topology())  # type: ignore[no-any-return]

    def our_key(self) -> str:
        """The node's public key (64 hex digits)."""
        return self.topology()["our_public_key"]  # type: ignore[no-any-return]

    def send(self, peer_id: str, data: bytes) -> int:
        """Send C{data} to C{peer_id}; return the byte count the node reports."""
        return self._do(self._send(peer_id, data))  # type: ignore[no-any-return]

    def recv(self) -> ReceivedMessage | None:
        """Pop one message, or None if the queue is empty."""
        return self._do(self._recv())  # type: ignore[no-any-return]

    def mcp(self, peer_id: str, service: str, request: Any, session_id: str | None = None) -> Any:
        """Send one MCP JSON-RPC message to C{service} on C{peer_id}; return the JSON reply."""
        return self._do(self._mcp(peer_id, service, request, session_id))

    def a2a_card(self, peer_id: str) -> dict[str, Any]:
        """The agent card of C{peer_id}'s A2A server."""
        return self._do(self._a2a_card(peer_id))  # type: ignore[no-any-return]

    def a2a_send(self, peer_id: str, text: str, message_id: str | None = None) -> dict[str, Any]:
        """A2A C{SendMessage} with one text part; return the JSON-RPC reply."""
        return self._do(self._a2a_send(peer_id, text, message_id))  # type: ignore[no-any-return]

    def a2a_mcp(self, peer_id: str, service: str, request: Any) -> Any:
        """Call an MCP service on C{peer_id} through its A2A server; return the MCP reply."""
        return task_result(self.a2a_send(peer_id, json.dumps(mcp_envelope(service, request))))


class TreqNodeClient(_Calls):
    """
    The same API returning Deferreds.

    @param http: a C{treq.client.HTTPClient} (or C{treq.testing.StubTreq}).
    """

    def __init__(self, http: Any, url: str = DEFAULT_NODE_URL) -> None:
        self.url = url.rstrip("/")
        self._http = http

    async def _do(self, call: Call) -> Any:
        response = await self._http.request(
            call.method,
            self.url + call.path,
            data=call.body,
            headers={k: [v] for k, v in call.headers.items()},
        )
        body = await response.content()
        headers = {
            k.decode("latin-1").lower(): v[0].decode("latin-1")
            for k, v in response.headers.getAllRawHeaders()
        }
        return call.parse(response.code, headers, body)

    def _run(self, call: Call) -> Any:
        from twisted.internet.defer import Deferred

        return Deferred.fromCoroutine(self._do(call))

    def topology(self) -> Any:
        """Like L{NodeClient.topology}, as a Deferred."""
        return self._run(self._topology())

    def our_key(self) -> Any:
        """Like L{NodeClient.our_key}, as a Deferred."""
        return self.topology().addCallback(lambda topo: topo["our_public_key"])

    def send(self, peer_id: str, data: bytes) -> Any:
        """Like L{NodeClient.send}, as a Deferred."""
        return self._run(self._send(peer_id, data))

    def recv(self) -> Any:
        """Like L{NodeClient.recv}, as a Deferred."""
        return self._run(self._recv())

    def mcp(self, peer_id: str, service: str, request: Any, session_id: str | None = None) -> Any:
        """Like L{NodeClient.mcp}, as a Deferred."""
        return self._run(self._mcp(peer_id, service, request, session_id))

    def a2a_card(self, peer_id: str) -> Any:
        """Like L{NodeClient.a2a_card}, as a Deferred."""
        return self._run(self._a2a_card(peer_id))

    def a2a_send(self, peer_id: str, text: str, message_id: str | None = None) -> Any:
        """Like L{NodeClient.a2a_send}, as a Deferred."""
        return self._run(self._a2a_send(peer_id, text, message_id))

    def a2a_mcp(self, peer_id: str, service: str, request: Any) -> Any:
        """Like L{NodeClient.a2a_mcp}, as a Deferred."""
        text = json.dumps(mcp_envelope(service, request))
        return self.a2a_send(peer_id, text).addCallback(task_result)
