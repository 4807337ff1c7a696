# -*- test-case-name: tests.test_bridge_messaging,tests.test_bridge_mcp,tests.test_bridge_topology -*-
"""
The bridge: the local HTTP API of one node (spec/axl-node.md section 5), one Klein app whose
routes are methods of L{Bridge} (its state lives on the instance, so several bridges can run in
one process, as tests do): C{/topology}, C{/send}, C{/recv}, C{/mcp/{peer}/{service}} and
C{/a2a/{peer}}. The streams below it report failures as L{axl.streams.errors.DeliveryError}s;
L{delivery_status} maps each kind to its HTTP status, in this one place.

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

import functools
import importlib.resources
import json
from io import BytesIO
from collections.abc import Callable
from typing import Any, cast

from klein import Klein
from twisted.internet.defer import CancelledError, Deferred, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET, Request

from axl.bridge.http import (
    DuplicateHeader,
    WrappedLeaf,
    absolute_card_urls,
    busy_response,
    bridge_authority,
    header,
    json_response,
    jsonrpc_error,
    method_not_allowed,
    parse_peer_id,
    sized,
    text_response,
)
from axl.bridge.limits import InflightBytes, StreamedBody
from axl.bridge.mcp_sessions import McpSessionEntry, McpSessions
from axl.bridge.metrics import CONTENT_TYPE_LATEST, NodeMetrics, ObservedResource
from axl.crypto.keys import short_key
from axl.logs import observer as log_observer
from axl.ratelimit import AggregatedLog, truncate
from axl.streams.envelope import (
    MAX_JSON_DEPTH,
    MISSING,
    Reply,
    dumps,
    encode_a2a_request,
    encode_mcp_request,
    json_too_deep,
    parse_a2a_reply,
    parse_mcp_reply,
)
from axl.streams.dedup import valid_message_id
from axl.streams.errors import (
    DeliveryError,
    MessageRefused,
    PeerBusy,
    PeerTimedOut,
    PeerUnreachable,
    RemoteError,
    SendTimedOut,
)
from axl.streams.recv_queue import RecvQueue
from axl.streams.sender import MessageSender
from axl.streams.streamed import STREAM_WINDOW

__all__ = ["STREAM_HOLD", "Bridge", "TooDeep", "delivery_status", "mesh_page_html"]

#: The mesh page may run its own inline script and style and fetch from this bridge, nothing else.
MESH_PAGE_CSP = (
    b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    b"connect-src 'self'; img-src 'self' data:"
)


@functools.cache
def mesh_page_html() -> bytes:
    """The mesh page (C{axl/bridge/mesh.html}, shipped as package data)."""
    return (importlib.resources.files("axl.bridge") / "mesh.html").read_bytes()

#: The HTTP status of each kind of delivery failure (spec/axl-node.md sections 5.2, 5.4, 5.5).
DELIVERY_STATUS: dict[type[DeliveryError], int] = {
    PeerUnreachable: 502,
    RemoteError: 502,
    SendTimedOut: 503,
    PeerBusy: 503,
    PeerTimedOut: 504,
    MessageRefused: 413,
}


#: Messages this small are never refused for the bytes in flight (L{Bridge._busy}).
SMALL_MESSAGE = 64 * 1024

#: What a streamed C{/send} counts against C{bridge_max_inflight_bytes}: the most of its body
#: it may hold, L{STREAM_WINDOW} unacknowledged (README "Streamed sends"; one socket read more).
STREAM_HOLD = STREAM_WINDOW


def _body_held(request: IRequest) -> int:
    """What C{request}'s stored body counts in the bridge's L{InflightBytes} (0 for others)."""
    held = getattr(request, "body_held", 0)
    return held if isinstance(held, int) else 0


class TooDeep(Exception):
    """A JSON body nests deeper than L{MAX_JSON_DEPTH} (answered 400 before parsing)."""


def delivery_status(error: DeliveryError) -> int:
    """The HTTP status for C{error}: its kind's in L{DELIVERY_STATUS}, else 502."""
    for kind in type(error).__mro__:
        if kind in DELIVERY_STATUS:
            return DELIVERY_STATUS[kind]
    return 502


class Bridge:
    """
    The HTTP bridge of one node: every route, one Klein app. Serve it with
    C{Site(bridge.resource())} (L{HotRoutes} over the Klein resource, counted by the metrics).

    @param topology: makes the C{/topology} document (L{axl.bridge.topology.topology_document}).
    @param sender: the streams' sender (C{/send}, C{/mcp}, C{/a2a}).
    @param queue: the streams' C{/recv} queue.
    @param sessions: the C{/mcp} sessions.

    @param metrics: the node's L{NodeMetrics}, served at C{/metrics} and counting the
        requests of L{resource} (None: C{/metrics} is 404).
    @param request_timeout: the end-to-end deadline of one C{/mcp} or C{/a2a} call.
    @param recv_wait_max: the longest C{/recv?wait=S} may wait.
    @param bridge_addr: the bridge's configured host and C{api_port} its port: the authority of
        the absolute URLs put into remote agent cards when a request has no usable C{Host}.
    @param max_background: background forwards (MCP notifications, session ends) at once; a
        notification past it is answered 503.
    @param max_inflight_bytes: message bytes being delivered at once; a request that would go
        past it is answered 503 (one message of any allowed size is taken when none is).
    """

    app = Klein()
    log = Logger(observer=log_observer)

    #: The routes whose large bodies the site hands over as they arrive (L{LimitedSite}'s
    #: C{streamed}): C{POST /send} forwards them while they arrive (L{_send_streamed}).
    streamed_routes = frozenset({(b"POST", b"/send")})

    def __init__(
        self,
        topology: Callable[[], dict[str, object]],
        sender: MessageSender,
        queue: RecvQueue,
        clock: IReactorTime,
        sessions: McpSessions,
        max_message_size: int = 16 * 1024 * 1024,
        request_timeout: float = 30.0,
        recv_wait_max: float = 60.0,
        bridge_addr: str = "127.0.0.1",
        api_port: int = 9002,
        max_background: int = 256,
        max_inflight_bytes: int = 16 * 1024 * 1024,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self._topology = topology
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
        self.max_background = max_background
        #: bodies stored and messages being delivered by /send, /mcp, /a2a now (shared with the
        #: site, which counts stored bodies as they arrive)
        self.inflight = InflightBytes(max_inflight_bytes, SMALL_MESSAGE)
        self.background_failures = AggregatedLog(clock, self.log, "undelivered", "MCP notifications",
                                                 preposition="to")  # fmt: skip
        self.metrics = metrics

    def resource(self) -> IResource:
        """What the bridge's site serves: every route, each request counted by the metrics."""
        resource: IResource = HotRoutes(self, self.app.resource())
        if self.metrics is None:
            return resource
        return ObservedResource(resource, self.metrics)

    # -- errors ------------------------------------------------------------------------------

    @app.handle_errors(DeliveryError)
    def _delivery_failed(self, request: IRequest, failure: Failure) -> bytes:
        """A message or request that could not be delivered: its status and one line of text."""
        error = failure.value
        assert isinstance(error, DeliveryError)
        return text_response(request, delivery_status(error), error.message)

    @app.handle_errors(TooDeep)
    def _too_deep(self, request: IRequest, failure: Failure) -> bytes:
        """A JSON body nested too deep to parse safely."""
        return text_response(request, 400, f"Invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")

    @app.handle_errors(DuplicateHeader)
    def _duplicate_header(self, request: IRequest, failure: Failure) -> bytes:
        """An ambiguous request: a header we read was given twice."""
        return text_response(request, 400, str(failure.value))

    def _busy(self, request: IRequest, size: int) -> bytes | None:
        """
        A 503 when C{size} more bytes in flight would pass L{max_inflight_bytes}, else None.
        Messages up to L{SMALL_MESSAGE} bytes always go (at most C{bridge_max_requests} of them
        are in flight), so bulk transfers cannot hold up small ones.
        """
        held = _body_held(request)
        if size > held and not self.inflight.admits(size - held, held):
            return busy_response(request, self.inflight.busy())
        return None

    @property
    def max_inflight_bytes(self) -> int:
        """C{bridge_max_inflight_bytes} (L{InflightBytes.limit})."""
        return self.inflight.limit

    @max_inflight_bytes.setter
    def max_inflight_bytes(self, limit: int) -> None:
        self.inflight.limit = limit

    @property
    def small_message(self) -> int:
        """Messages this small always go (L{InflightBytes.small})."""
        return self.inflight.small

    @small_message.setter
    def small_message(self, size: int) -> None:
        self.inflight.small = size

    @property
    def inflight_bytes(self) -> int:
        """The bytes of bodies and messages in flight now (L{InflightBytes.used})."""
        return self.inflight.used

    async def _deliver(self, request: IRequest, size: int, call: Callable[[], Deferred[Any]]) -> Any:
        """
        Run C{call} with C{size} bytes counted in flight while it runs (less what the
        request's stored body counts already, until the request finishes).
        """
        extra = max(size - _body_held(request), 0)
        self.inflight.take(extra)
        try:
            d = call()
            del call  # what it holds (a message) may be freed once sent
            return await d
        finally:
            self.inflight.give(extra)

    # -- /topology -----------------------------------------------------------------------------

    @app.route("/topology", methods=["GET"])
    def topology(self, request: IRequest) -> bytes:
        """Our key, address, peers and spanning tree as JSON (lists are never null)."""
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(self._topology()).encode("utf-8") + b"\n"

    # -- / (the mesh page) ---------------------------------------------------------------------

    @app.route("/", methods=["GET"])
    @app.route("/ui", methods=["GET"])
    def mesh_page(self, request: IRequest) -> bytes:
        """The live mesh page: one self-contained HTML file polling /topology and /metrics."""
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Content-Security-Policy", MESH_PAGE_CSP)
        request.setHeader(b"Cache-Control", b"no-cache")
        return mesh_page_html()

    # -- /metrics ------------------------------------------------------------------------------

    @app.route("/metrics", methods=["GET"])
    def prometheus(self, request: IRequest) -> bytes:
        """The node's metrics in Prometheus' text format (L{axl.bridge.metrics})."""
        if self.metrics is None:
            return text_response(request, 404, "404 page not found")
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return self.metrics.render()

    # -- /send ---------------------------------------------------------------------------------

    @app.route("/send")
    async def send(self, request: IRequest) -> bytes:
        """POST a raw message to C{X-Destination-Peer-Id}; 200 once the peer acknowledged it."""
        if request.method != b"POST":
            return method_not_allowed(request, b"POST")
        dest_text = header(request, b"X-Destination-Peer-Id")
        if not dest_text:
            return text_response(request, 400, "Missing X-Destination-Peer-Id header")
        dest = parse_peer_id(dest_text.strip())
        if dest is None:
            return text_response(request, 400, "Invalid destination peer ID")
        message_id = header(request, b"X-Message-Id")
        if message_id is not None and not valid_message_id(message_id):
            return text_response(
                request, 400, "Invalid X-Message-Id: 1 to 128 visible ASCII characters"
            )
        length = header(request, b"Content-Length")
        if (
            length is not None
            and length.isdigit()
            and int(length) > self.max_message_size
        ):
            return self._too_large(request, int(length))
        streamed: StreamedBody | None = getattr(request, "streamed_body", None)
        if streamed is not None:
            return await self._send_streamed(request, dest, streamed, message_id)
        body = self._take_body(request)
        if len(body) > self.max_message_size:
            return self._too_large(request, self._body_size(request))
        busy = self._busy(request, len(body))
        if busy is not None:
            return busy
        size, send = len(body), functools.partial(self.sender.send, dest, body, message_id)
        del body  # the sender drops it once written: the overlay transport's copy is the only one
        sent = await self._deliver(request, size, send)
        return self._sent(request, sent)

    def _take_body(self, request: IRequest) -> bytes:
        """
        The stored body (at most C{max_message_size} + 1 bytes of it), taken from the request
        without a copy when it is in memory (C{BytesIO.getvalue} shares its buffer); the request
        keeps no reference to it.
        """
        content = request.content
        if isinstance(content, BytesIO) and content.tell() == 0:
            body = content.getvalue()
            if len(body) > self.max_message_size:
                return body  # the caller answers 413
        else:
            body = cast(bytes, content.read(self.max_message_size + 1))  # never more than the limit
            if len(body) > self.max_message_size:
                return body
        content.close()
        request.content = BytesIO()
        return body

    async def _send_streamed(
        self, request: IRequest, dest: bytes, body: StreamedBody, message_id: str | None
    ) -> bytes:
        """
        C{/send} of a body still arriving (L{StreamedBody}): forwarded as it arrives on a
        connection of its own, holding at most L{STREAM_HOLD} of it (a message to our own key
        is collected whole, and counted so).
        """
        hold = body.length if dest == self.sender.our_key else min(body.length, STREAM_HOLD)
        busy = self._busy(request, hold)
        if busy is not None:
            return busy
        sent = await self._deliver(request, hold, lambda: self.sender.send_stream(dest, body, message_id).result)
        return self._sent(request, sent)

    @staticmethod
    def _sent(request: IRequest, sent: int) -> bytes:
        request.setHeader(b"Content-Type", b"application/octet-stream")
        request.setHeader(b"X-Sent-Bytes", str(sent).encode("ascii"))
        return sized(request, b"")

    @staticmethod
    def _body_size(request: IRequest) -> int:
        content = request.content
        content.seek(0, 2)
        return int(content.tell())

    def _read_json(self, request: IRequest) -> tuple[bool, Any]:
        """
        The body as JSON: (True, value), or (False, None) if it is not JSON or too large.

        @raise TooDeep: it nests deeper than L{MAX_JSON_DEPTH} (checked before parsing).
        """
        raw = request.content.read(self.max_message_size + 1)
        if len(raw) > self.max_message_size:
            return False, None
        if json_too_deep(raw):
            raise TooDeep()
        try:
            return True, json.loads(raw)
        except (ValueError, RecursionError):
            return False, None

    def _too_large(self, request: IRequest, size: int) -> bytes:
        return text_response(
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
                    return text_response(
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
            return method_not_allowed(request, b"GET, HEAD")
        if message is None:
            request.setResponseCode(204)
            return b""
        request.setHeader(b"Content-Type", b"application/octet-stream")
        request.setHeader(b"X-From-Peer-Id", message.sender.hex().encode("ascii"))
        if message.message_id is not None:
            request.setHeader(b"X-Message-Id", message.message_id.encode("ascii"))
        if request.method == b"HEAD":
            request.setHeader(
                b"Content-Length", str(len(message.payload)).encode("ascii")
            )
            return b""
        return sized(request, message.payload)

    # -- /mcp/{peer}/{service} -----------------------------------------------------------------

    @app.route("/mcp", strict_slashes=False)
    @app.route("/mcp/<string:peer>")
    @app.route("/mcp/<string:peer>/")
    def mcp_bad_path(self, request: IRequest, peer: str = "") -> bytes:
        """A path without both a peer and a service."""
        return text_response(request, 400, "URL must be /mcp/{peer_id}/{service}")

    @app.route("/mcp/<string:peer>/<path:service>")
    async def mcp(self, request: IRequest, peer: str, service: str) -> bytes:
        """One MCP JSON-RPC message to C{service} on C{peer}, MCP Streamable-HTTP style."""
        dest = parse_peer_id(peer)
        if dest is None:
            return text_response(request, 400, "Invalid peer ID")
        session_id = header(request, b"Mcp-Session-Id")
        if request.method == b"DELETE":
            if not session_id:
                return text_response(request, 400, "Missing Mcp-Session-Id header")
            ended = self.sessions.lookup(session_id, dest, service)
            if ended is None:
                return text_response(request, 404, "Invalid or expired session")
            self.sessions.delete(session_id, dest, service)
            if ended.remote_id:
                # Tell the remote MCP server too (after our 204: the client does not wait).
                self.clock.callLater(0, self._end_remote_session, dest, service, ended)
            request.setResponseCode(204)
            return b""
        if request.method != b"POST":
            return method_not_allowed(request, b"POST, DELETE")
        _, message = self._read_json(request)
        if not isinstance(message, dict):
            return text_response(request, 400, "Invalid JSON-RPC")
        method = message.get("method")
        session: McpSessionEntry | None = None
        if method == "initialize":
            session = self.sessions.create(dest, service)
        elif session_id:
            session = self.sessions.lookup(session_id, dest, service)
            if session is None:
                return text_response(request, 404, "Invalid or expired session")
        headers: dict[str, str] = {}
        if session is not None and session.remote_id:
            headers["Mcp-Session-Id"] = session.remote_id
        version = header(request, b"MCP-Protocol-Version")
        if version:
            headers["MCP-Protocol-Version"] = version
        if isinstance(method, str):
            headers["Mcp-Method"] = header(request, b"Mcp-Method") or method
        name = header(request, b"Mcp-Name")
        if name:
            headers["Mcp-Name"] = name
        envelope = encode_mcp_request(service, message, headers)
        if "id" not in message or "method" not in message:
            # A notification, or a response to the server: accepted now, delivered in the background.
            if len(self._background) >= self.max_background:
                return busy_response(
                    request,
                    f"Busy: {len(self._background)} notifications being forwarded "
                    f"(bridge_max_background is {self.max_background}); retry",
                )
            if not self.inflight.fits(len(envelope)):  # small ones too: they outlive the request
                return busy_response(request, self.inflight.busy())
            self._forward_notification(dest, service, envelope, session)
            if session is not None:
                request.setHeader(b"Mcp-Session-Id", session.id.encode("ascii"))
            request.setResponseCode(202)
            return b""
        busy = self._busy(request, len(envelope))
        if busy is not None:
            return busy
        raw = await self._deliver(
            request, len(envelope), lambda: self.sender.request(dest, envelope, self.request_timeout)
        )
        reply = parse_mcp_reply(raw)
        if reply is None:
            return text_response(request, 502, "Invalid response from peer")
        self._remember_remote_session(session, reply)
        if session is not None:
            request.setHeader(b"Mcp-Session-Id", session.id.encode("ascii"))
        if reply.error:
            return json_response(request, jsonrpc_error(message.get("id"), reply.error))
        if reply.response is MISSING:
            return json_response(request, b"")
        return json_response(request, dumps(reply.response))

    @staticmethod
    def _remember_remote_session(session: McpSessionEntry | None, reply: Reply) -> None:
        if session is None:
            return
        for name, value in reply.headers.items():
            if name.lower() == "mcp-session-id" and value:
                session.remote_id = value

    def _end_remote_session(
        self, dest: bytes, service: str, session: McpSessionEntry
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
        session: McpSessionEntry | None,
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
                        service=truncate(service),
                        peer=short_key(dest),
                        err=reply.error,
                    )

        def failed(failure: Any) -> None:
            self.background_failures.event(
                f"{truncate(service, 32)} on {short_key(dest)}",
                f"{what}: {failure.getErrorMessage()}",
            )

        size = len(envelope)
        self.inflight.take(size)  # counted while it is forwarded, after its request has ended
        done = self.sender.request(dest, envelope, self.request_timeout).addCallbacks(
            delivered, failed
        )
        self._background.add(done)

        def ended(_: object) -> None:
            self._background.discard(done)
            self.inflight.give(size)

        done.addBoth(ended)

    def when_idle(self) -> Deferred[None]:
        """Fires once no background forward (notification, session end) is in flight."""
        if not self._background:
            return succeed(None)
        return gatherResults(list(self._background)).addCallback(lambda _: self.when_idle())

    # -- /a2a/{peer} ---------------------------------------------------------------------------

    @app.route("/a2a", strict_slashes=False)
    def a2a_bad_path(self, request: IRequest) -> bytes:
        """C{/a2a/} without a peer id."""
        return text_response(request, 400, "URL must be /a2a/{peer_id}")

    @app.route("/a2a/<path:peer>")
    async def a2a(self, request: IRequest, peer: str) -> bytes:
        """GET the remote agent card, or POST an A2A JSON-RPC request to the remote A2A server."""
        dest = parse_peer_id(peer)
        if dest is None:
            return text_response(request, 400, "Invalid peer ID")
        request_id: Any = None
        if request.method == b"GET":
            envelope = encode_a2a_request(None, agent_card=True)
        elif request.method == b"POST":
            ok, body = self._read_json(request)
            if not ok:
                return text_response(request, 400, "Invalid JSON")
            if isinstance(body, dict):
                request_id = body.get("id")
            envelope = encode_a2a_request(body)
        else:
            return method_not_allowed(request, b"GET, POST")
        busy = self._busy(request, len(envelope))
        if busy is not None:
            return busy
        raw = await self._deliver(
            request, len(envelope), lambda: self.sender.request(dest, envelope, self.request_timeout)
        )
        reply = parse_a2a_reply(raw)
        if reply is None:
            return text_response(request, 502, "Invalid response from peer")
        if reply.error:
            return json_response(request, jsonrpc_error(request_id, reply.error), 502)
        if reply.response is MISSING:
            return text_response(request, 502, "Invalid response from peer: no response")
        response = reply.response
        if request.method == b"GET" and isinstance(response, dict):
            card = absolute_card_urls(response, self._a2a_url(request, peer))
            if card is not None:
                response = card
        return json_response(request, dumps(response))

    def _a2a_url(self, request: IRequest, peer: str) -> str:
        """Our own C{/a2a/{peer}} as the client reached it, for a remote agent card."""
        local = getattr(request.getHost(), "host", None)
        authority = bridge_authority(
            header(request, b"Host"),
            self.bridge_addr,
            self.api_port,
            local if isinstance(local, str) else None,
        )
        scheme = "https" if request.isSecure() else "http"
        return f"{scheme}://{authority}/a2a/{peer.lower()}"


class HotRoutes(WrappedLeaf):
    """
    The bridge's resource: C{POST /send} and C{GET /recv}, the two requests every message costs,
    are handed straight to their L{Bridge} methods; every other request goes to the Klein
    resource C{inner}. Klein's URL mapping and response wrappers cost about as much CPU as the
    rest of a small C{/recv} (profiles of C{bench/bench_bridge.py}); the methods, their
    responses and their errors are the same either way: a failure is answered by the Klein
    app's own error handlers (C{handle_errors}), in their order.
    """

    log = Logger(observer=log_observer)

    def __init__(self, bridge: Bridge, inner: IResource) -> None:
        super().__init__(inner)
        self._bridge = bridge

    def render(self, request: IRequest) -> object:
        path, method = request.path, request.method
        if path == b"/send" and method == b"POST":
            route = self._bridge.send
        elif path == b"/recv" and method == b"GET":
            route = self._bridge.recv
        else:
            return self._inner.render(request)
        gone: list[object] = []  # the request finished early (the client went away)
        notify = cast(Request, request).notifyFinish  # IRequest does not declare it
        notify().addBoth(gone.append)
        d: Deferred[bytes | None] = Deferred.fromCoroutine(route(request))
        if not d.called:
            notify().addErrback(lambda _: d.cancel())
        d.addErrback(self._failed, request, gone)
        d.addCallback(self._respond, request, gone)
        d.addErrback(lambda f: self.log.failure("writing a bridge response failed", f))
        return NOT_DONE_YET

    def _failed(self, failure: Failure, request: IRequest, gone: list[object]) -> object:
        if gone:
            if not failure.check(CancelledError):
                self.log.failure("a bridge request failed after its client went away", failure)
            return None
        app = self._bridge.app
        for kinds, handler in app._error_handlers:  # what Klein's own resource consults
            if failure.check(*kinds):
                return app.execute_error_handler(handler, request, failure)
        cast(Request, request).processingFailed(failure)  # a 500, logged, as Klein does
        gone.append(None)
        return None

    @staticmethod
    def _respond(body: bytes | None, request: IRequest, gone: list[object]) -> None:
        if gone:
            return
        if body:
            request.write(body)
        request.finish()
