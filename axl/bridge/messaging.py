# -*- test-case-name: tests.test_bridge_messaging -*-
"""
The bridge's message routes (spec/axl-node.md sections 5.2-5.5): C{/send}, C{/recv},
C{/mcp/{peer}/{service}} and C{/a2a/{peer}}. L{axl.bridge.app.Bridge} serves them next to
C{/topology}.

Differences from AXL, all from section 13: an invalid peer id is 400 everywhere; an oversize
C{/send} body is 413 before dialling; an unreachable peer is 502/504 within the connect timeout;
C{/recv} dequeues on GET only (HEAD peeks, other methods 405) and long-polls with C{?wait=S};
MCP sessions are random, bound to (peer, service) and expire; C{DELETE} of a session is 204
and then ends the remote MCP server's own session too (an envelope whose C{headers} carry the
C{":method": "DELETE"} pseudo-header);
notifications are answered 202 at once and forwarded; A2A errors are JSON; a remote agent
card's relative interface URLs are made absolute (our bridge's C{/a2a/{peer}}), so A2A SDK
clients can follow the card.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, cast
from urllib.parse import urlsplit

from klein import Klein
from twisted.internet.defer import CancelledError, Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.server import Request

from axl.bridge.mcp_sessions import McpSession, McpSessions
from axl.crypto.keys import short_key
from axl.streams.envelope import (
    MISSING,
    Reply,
    dumps,
    encode_a2a_request,
    encode_mcp_request,
    parse_a2a_reply,
    parse_mcp_reply,
)
from axl.streams.recv_queue import RecvQueue
from axl.streams.sender import DeliveryError, Sender

__all__ = ["MessagingAPI", "absolute_card_urls", "bridge_authority", "parse_peer_id"]

_PEER_ID = re.compile(r"[0-9a-fA-F]{64}")

# A Host header we are willing to put into a URL: a bracketed IPv6 literal or a plain
# reg-name/IPv4 (RFC 3986 unreserved characters and %-escapes), with an optional port.
_HOST_HEADER = re.compile(r"(\[[0-9A-Za-z:.%_~-]+\]|[0-9A-Za-z._~%-]+)(:[0-9]{1,5})?")


def parse_peer_id(text: str | bytes | None) -> bytes | None:
    """A 64-hex-digit peer id (either case) as 32 bytes, or None if it is not one."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            return None
    if text is None or not _PEER_ID.fullmatch(text):
        return None
    return bytes.fromhex(text)


def bridge_authority(
    host_header: str | None, bridge_addr: str, api_port: int, local_host: str | None = None
) -> str:
    """
    The C{host:port} under which a client reached the bridge: its C{Host} header when that is a
    well-formed authority, else the configured C{bridge_addr:api_port} (or C{local_host}, the
    socket's own address, when C{bridge_addr} is a wildcard). IPv6 literals are bracketed.
    """
    if host_header is not None:
        host_header = host_header.strip()
        if _HOST_HEADER.fullmatch(host_header):
            return host_header
    host = bridge_addr
    try:
        if ipaddress.ip_address(host.split("%", 1)[0]).is_unspecified and local_host:
            host = local_host
    except ValueError:
        pass  # a host name
    if ":" in host:
        return f"[{host.replace('%', '%25')}]:{api_port}"
    return f"{host}:{api_port}"


def _is_relative_url(value: Any) -> bool:
    """True for a non-empty string with neither a scheme nor a host (e.g. C{/a2a/<key>})."""
    if not isinstance(value, str) or not value:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return not parts.scheme and not parts.netloc


def absolute_card_urls(card: dict[str, Any], url: str) -> dict[str, Any] | None:
    """
    A copy of an agent card whose relative interface URLs (C{supportedInterfaces[*].url}, the
    v0.3 top-level C{url} and C{additionalInterfaces[*].url}) are replaced by C{url}; None if
    there was none (the card is then served unchanged). Absolute URLs are left alone.
    """
    changed = False
    new = dict(card)
    if _is_relative_url(new.get("url")):
        new["url"] = url
        changed = True
    for field in ("supportedInterfaces", "additionalInterfaces"):
        interfaces = new.get(field)
        if not isinstance(interfaces, list):
            continue
        rewritten = []
        for interface in interfaces:
            if isinstance(interface, dict) and _is_relative_url(interface.get("url")):
                interface = {**interface, "url": url}
                changed = True
            rewritten.append(interface)
        new[field] = rewritten
    return new if changed else None


def _sized(request: IRequest, body: bytes) -> bytes:
    """The body, with its Content-Length set (rather than chunked encoding)."""
    request.setHeader(b"Content-Length", b"%d" % len(body))
    return body


def _text(request: IRequest, code: int, message: str) -> bytes:
    """An error response in Go's C{http.Error} style."""
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    return _sized(request, message.encode("utf-8") + b"\n")


def _method_not_allowed(request: IRequest, allowed: bytes) -> bytes:
    request.setHeader(b"Allow", allowed)
    return _text(request, 405, "Method not allowed")


def _json(request: IRequest, body: bytes, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    return _sized(request, body)


def _header(request: IRequest, name: bytes) -> str | None:
    value = request.getHeader(name)
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _jsonrpc_error(request_id: Any, message: str) -> bytes:
    return (
        dumps(
            {
                "error": {"code": -32603, "message": message},
                "id": request_id,
                "jsonrpc": "2.0",
            }
        )
        + b"\n"
    )


class MessagingAPI:
    """
    The message routes of one node's bridge.

    @param request_timeout: the end-to-end deadline of one C{/mcp} or C{/a2a} call.
    @param recv_wait_max: the longest C{/recv?wait=S} may wait.
    @param bridge_addr: the bridge's configured host and C{api_port} its port: the authority of
        the absolute URLs put into remote agent cards when a request has no usable C{Host}.
    """

    app = Klein()
    log = Logger()

    def __init__(
        self,
        sender: Sender,
        queue: RecvQueue,
        clock: IReactorTime,
        sessions: McpSessions,
        max_message_size: int = 16 * 1024 * 1024,
        request_timeout: float = 30.0,
        recv_wait_max: float = 60.0,
        bridge_addr: str = "127.0.0.1",
        api_port: int = 9002,
    ) -> None:
        self.sender = sender
        self.queue = queue
        self.clock = clock
        self.sessions = sessions
        self.max_message_size = max_message_size
        self.request_timeout = request_timeout
        self.recv_wait_max = recv_wait_max
        self.bridge_addr = bridge_addr
        self.api_port = api_port
        self._background: set[Deferred[None]] = set()  # forwards nobody waits for

    # -- /send ---------------------------------------------------------------------------------

    @app.route("/send")
    async def send(self, request: IRequest) -> bytes:
        """POST a raw message to C{X-Destination-Peer-Id}; 200 once the peer acknowledged it."""
        if request.method != b"POST":
            return _method_not_allowed(request, b"POST")
        dest_text = _header(request, b"X-Destination-Peer-Id")
        if not dest_text:
            return _text(request, 400, "Missing X-Destination-Peer-Id header")
        dest = parse_peer_id(dest_text.strip())
        if dest is None:
            return _text(request, 400, "Invalid destination peer ID")
        length = _header(request, b"Content-Length")
        if (
            length is not None
            and length.isdigit()
            and int(length) > self.max_message_size
        ):
            return self._too_large(request, int(length))
        body = request.content.read(
            self.max_message_size + 1
        )  # never more than the limit in memory
        if len(body) > self.max_message_size:
            return self._too_large(request, self._body_size(request))
        try:
            sent = await self.sender.send(dest, body)
        except DeliveryError as e:
            return _text(request, e.status, e.message)
        request.setHeader(b"Content-Type", b"application/octet-stream")
        request.setHeader(b"X-Sent-Bytes", str(sent).encode("ascii"))
        return _sized(request, b"")

    @staticmethod
    def _body_size(request: IRequest) -> int:
        content = request.content
        content.seek(0, 2)
        return int(content.tell())

    def _read_json(self, request: IRequest) -> tuple[bool, Any]:
        """The body as JSON: (True, value), or (False, None) if it is not JSON or too large."""
        raw = request.content.read(self.max_message_size + 1)
        if len(raw) > self.max_message_size:
            return False, None
        try:
            return True, json.loads(raw)
        except (ValueError, RecursionError):
            return False, None

    def _too_large(self, request: IRequest, size: int) -> bytes:
        return _text(
            request,
            413,
            f"Message too large: {size} bytes (max_message_size is {self.max_message_size})",
        )

    # -- /recv ---------------------------------------------------------------------------------

    @app.route("/recv")
    async def recv(self, request: IRequest) -> bytes:
        """GET the oldest message (200) or 204; HEAD peeks; C{?wait=S} long-polls."""
        if request.method == b"HEAD":
            message = self.queue.peek()
        elif request.method == b"GET":
            wait = 0.0
            raw = request.args.get(b"wait")
            if raw:
                try:
                    wait = float(raw[0])
                except ValueError:
                    wait = -1.0
                if not 0 <= wait < float("inf"):
                    return _text(
                        request, 400, "Invalid wait: must be a number of seconds >= 0"
                    )
                wait = min(wait, self.recv_wait_max)
            d: Deferred[Any] = self.queue.wait(wait)
            if not d.called:
                # IRequest does not declare notifyFinish; Site's requests have it
                cast(Request, request).notifyFinish().addErrback(lambda _: d.cancel())
            try:
                message = await d
            except CancelledError:
                return b""
        else:
            return _method_not_allowed(request, b"GET, HEAD")
        if message is None:
            request.setResponseCode(204)
            return b""
        request.setHeader(b"Content-Type", b"application/octet-stream")
        request.setHeader(b"X-From-Peer-Id", message.sender.hex().encode("ascii"))
        if request.method == b"HEAD":
            request.setHeader(
                b"Content-Length", str(len(message.payload)).encode("ascii")
            )
            return b""
        return _sized(request, message.payload)

    # -- /mcp/{peer}/{service} -----------------------------------------------------------------

    @app.route("/mcp", strict_slashes=False)
    @app.route("/mcp/<string:peer>")
    @app.route("/mcp/<string:peer>/")
    def mcp_bad_path(self, request: IRequest, peer: str = "") -> bytes:
        """A path without both a peer and a service."""
        return _text(request, 400, "URL must be /mcp/{peer_id}/{service}")

    @app.route("/mcp/<string:peer>/<path:service>")
    async def mcp(self, request: IRequest, peer: str, service: str) -> bytes:
        """One MCP JSON-RPC message to C{service} on C{peer}, MCP Streamable-HTTP style."""
        dest = parse_peer_id(peer)
        if dest is None:
            return _text(request, 400, "Invalid peer ID")
        session_id = _header(request, b"Mcp-Session-Id")
        if request.method == b"DELETE":
            if not session_id:
                return _text(request, 400, "Missing Mcp-Session-Id header")
            ended = self.sessions.lookup(session_id, dest, service)
            if ended is None:
                return _text(request, 404, "Invalid or expired session")
            self.sessions.delete(session_id, dest, service)
            if ended.remote_id:
                # Tell the remote MCP server too (after our 204: the client does not wait).
                self.clock.callLater(0, self._end_remote_session, dest, service, ended)
            request.setResponseCode(204)
            return b""
        if request.method != b"POST":
            return _method_not_allowed(request, b"POST, DELETE")
        _, message = self._read_json(request)
        if not isinstance(message, dict):
            return _text(request, 400, "Invalid JSON-RPC")
        method = message.get("method")
        session: McpSession | None = None
        if method == "initialize":
            session = self.sessions.create(dest, service)
        elif session_id:
            session = self.sessions.lookup(session_id, dest, service)
            if session is None:
                return _text(request, 404, "Invalid or expired session")
        headers: dict[str, str] = {}
        if session is not None and session.remote_id:
            headers["Mcp-Session-Id"] = session.remote_id
        version = _header(request, b"MCP-Protocol-Version")
        if version:
            headers["MCP-Protocol-Version"] = version
        if isinstance(method, str):
            headers["Mcp-Method"] = _header(request, b"Mcp-Method") or method
        name = _header(request, b"Mcp-Name")
        if name:
            headers["Mcp-Name"] = name
        envelope = encode_mcp_request(service, message, headers)
        if "id" not in message or "method" not in message:
            # A notification, or a response to the server: accepted now, delivered in the background.
            self._forward_notification(dest, service, envelope, session)
            if session is not None:
                request.setHeader(b"Mcp-Session-Id", session.id.encode("ascii"))
            request.setResponseCode(202)
            return b""
        try:
            raw = await self.sender.request(dest, envelope, self.request_timeout)
        except DeliveryError as e:
            return _text(request, e.status, e.message)
        reply = parse_mcp_reply(raw)
        if reply is None:
            return _text(request, 502, "Invalid response from peer")
        self._remember_remote_session(session, reply)
        if session is not None:
            request.setHeader(b"Mcp-Session-Id", session.id.encode("ascii"))
        if reply.error:
            return _json(request, _jsonrpc_error(message.get("id"), reply.error))
        if reply.response is MISSING:
            return _json(request, b"")
        return _json(request, dumps(reply.response))

    @staticmethod
    def _remember_remote_session(session: McpSession | None, reply: Reply) -> None:
        if session is None:
            return
        for name, value in reply.headers.items():
            if name.lower() == "mcp-session-id" and value:
                session.remote_id = value

    def _end_remote_session(
        self, dest: bytes, service: str, session: McpSession
    ) -> None:
        """Send the remote MCP server's session a DELETE (the C{:method} pseudo-header)."""
        assert session.remote_id is not None
        headers = {":method": "DELETE", "Mcp-Session-Id": session.remote_id}
        envelope = encode_mcp_request(service, None, headers)
        self._forward_notification(dest, service, envelope, None, "session end")

    def _forward_notification(
        self,
        dest: bytes,
        service: str,
        envelope: bytes,
        session: McpSession | None,
        what: str = "notification",
    ) -> None:
        """Deliver C{envelope} in the background; failures are logged (at info), never raised."""

        def delivered(raw: bytes) -> None:
            reply = parse_mcp_reply(raw)
            if reply is not None:
                self._remember_remote_session(session, reply)
                if reply.error:
                    self.log.info(
                        "MCP {what} to {service} on {peer} failed: {err}",
                        what=what,
                        service=service,
                        peer=short_key(dest),
                        err=reply.error,
                    )

        def failed(failure: Any) -> None:
            self.log.info(
                "MCP {what} to {service} on {peer} not delivered: {err}",
                what=what,
                service=service,
                peer=short_key(dest),
                err=failure.getErrorMessage(),
            )

        done = self.sender.request(dest, envelope, self.request_timeout).addCallbacks(
            delivered, failed
        )
        self._background.add(done)
        done.addBoth(lambda _: self._background.discard(done))

    def when_idle(self) -> Deferred[None]:
        """Fires once no background forward (notification, session end) is in flight."""
        if not self._background:
            return succeed(None)
        return gatherResults(list(self._background)).addCallback(lambda _: self.when_idle())

    # -- /a2a/{peer} ---------------------------------------------------------------------------

    @app.route("/a2a", strict_slashes=False)
    def a2a_bad_path(self, request: IRequest) -> bytes:
        """C{/a2a/} without a peer id."""
        return _text(request, 400, "URL must be /a2a/{peer_id}")

    @app.route("/a2a/<path:peer>")
    async def a2a(self, request: IRequest, peer: str) -> bytes:
        """GET the remote agent card, or POST an A2A JSON-RPC request to the remote A2A server."""
        dest = parse_peer_id(peer)
        if dest is None:
            return _text(request, 400, "Invalid peer ID")
        request_id: Any = None
        if request.method == b"GET":
            envelope = encode_a2a_request(None, agent_card=True)
        elif request.method == b"POST":
            ok, body = self._read_json(request)
            if not ok:
                return _text(request, 400, "Invalid JSON")
            if isinstance(body, dict):
                request_id = body.get("id")
            envelope = encode_a2a_request(body)
        else:
            return _method_not_allowed(request, b"GET, POST")
        try:
            raw = await self.sender.request(dest, envelope, self.request_timeout)
        except DeliveryError as e:
            return _text(request, e.status, e.message)
        reply = parse_a2a_reply(raw)
        if reply is None:
            return _text(request, 502, "Invalid response from peer")
        if reply.error:
            return _json(request, _jsonrpc_error(request_id, reply.error), 502)
        if reply.response is MISSING:
            return _text(request, 502, "Invalid response from peer: no response")
        response = reply.response
        if request.method == b"GET" and isinstance(response, dict):
            card = absolute_card_urls(response, self._a2a_url(request, peer))
            if card is not None:
                response = card
        return _json(request, dumps(response))

    def _a2a_url(self, request: IRequest, peer: str) -> str:
        """Our own C{/a2a/{peer}} as the client reached it, for a remote agent card."""
        local = getattr(request.getHost(), "host", None)
        authority = bridge_authority(
            _header(request, b"Host"),
            self.bridge_addr,
            self.api_port,
            local if isinstance(local, str) else None,
        )
        scheme = "https" if request.isSecure() else "http"
        return f"{scheme}://{authority}/a2a/{peer.lower()}"
