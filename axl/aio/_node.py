# -*- test-case-name: tests.test_aio -*-
"""
L{Node}: a whole axl node inside an asyncio program (no daemon, no bridge port unless asked).

It runs the node's service (L{axl.service.make_node_service}) on Twisted's asyncio reactor on the
running loop (L{axl.aio._reactor}), and offers what the bridge offers (spec/axl-node.md sections
5.1-5.5) as coroutines that raise typed exceptions instead of answering HTTP statuses (the
streams' own L{axl.streams.errors}, which the bridge maps to statuses), plus asyncio streams over
the overlay TCP (L{axl.aio._streams}).
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from axl.aio import _reactor
from axl.aio._logging import forward_to_stdlib
from axl.aio._streams import DEFAULT_LIMIT, ClientConnected, StreamFactory, client_streams
from axl.config import NodeConfig, config_from_dict, load_config
from axl.crypto.keys import Identity
from axl.identity import load_identity
from axl.logs import observer as log_observer
from axl.streams.envelope import MISSING, Reply, encode_a2a_request, encode_mcp_request
from axl.streams.envelope import parse_a2a_reply, parse_mcp_reply
from axl.streams.errors import MessageRefused, RemoteError

if TYPE_CHECKING:  # imported at start(), once the asyncio reactor is installed
    from axl.node import Node as AxlNode
    from axl.service import NodeService

__all__ = ["McpSession", "Message", "Node", "NodeStopped", "OverlayServer"]

T = TypeVar("T")

#: The longest single wait on the receive queue; C{recv()} without a timeout waits in turns.
_WAIT_SLICE = 3600.0


class NodeStopped(RuntimeError):
    """The node is not running (not started yet, or stopped)."""


@dataclass(frozen=True)
class Message:
    """A message from C{/recv}: the sender's full key (64 lower-case hex digits) and the bytes."""

    sender: str
    data: bytes


def peer_key(peer: str | bytes) -> bytes:
    """
    A peer given as 64 hex digits (either case; the bridge's L{parse_peer_id}) or 32 bytes, as
    32 bytes. Only called on a running node (the bridge's modules import the reactor).

    @raise ValueError: it is neither (the bridge's C{400 Invalid peer ID}).
    """
    from axl.bridge.http import parse_peer_id

    if isinstance(peer, (bytes, bytearray)) and len(peer) == 32:
        return bytes(peer)
    key = parse_peer_id(peer) if isinstance(peer, str) else None
    if key is None:
        raise ValueError(f"invalid peer id {peer!r}: give 64 hex digits or 32 bytes")
    return key


def _load(config: Mapping[str, Any] | str | os.PathLike[str] | NodeConfig) -> NodeConfig:
    if isinstance(config, NodeConfig):
        return config
    if isinstance(config, Mapping):
        return config_from_dict(config, source="<dict>")
    return load_config(os.fspath(config))


class OverlayServer:
    """
    Serving one overlay TCP port (from L{Node.start_server}), like C{asyncio.Server}: C{close()}
    stops accepting (open connections stay), C{async with} closes on exit. Each connection runs
    C{handle(reader, writer)} in its own task; an exception there is logged and closes that
    connection only. When the node stops, it cancels the handlers still running (of open and
    closed servers alike).
    """

    log = Logger(observer=log_observer)

    def __init__(self, node: Node, port: int, handle: ClientConnected) -> None:
        self._node, self.port, self._handle = node, port, handle
        self._listening: IListeningPort | None = None
        self._stopped: Deferred[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._run(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not self.tasks and self._listening is None:
            self._node._servers.discard(self)  # closed and idle: the node need not stop it

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._handle(reader, writer)
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        except Exception:
            self.log.failure("handler for overlay port {port} failed", port=self.port)
            writer.transport.abort()

    def is_serving(self) -> bool:
        return self._listening is not None

    def close(self) -> None:
        """Stop accepting connections on the port."""
        listening, self._listening = self._listening, None
        if listening is not None:
            self._stopped = listening.stopListening()
            if not self.tasks:
                self._node._servers.discard(self)

    async def wait_closed(self) -> None:
        """Wait until the port is closed and every connection's handler has finished."""
        if self._stopped is not None:
            await self._stopped.asFuture(asyncio.get_running_loop())
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def __aenter__(self) -> OverlayServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


class McpSession:
    """
    One session with a remote MCP service (from L{Node.mcp_session}). C{await call(message)}
    sends a JSON-RPC message and returns the response (None for a notification), as
    L{Node.call_mcp}, with the session's headers; the server's C{Mcp-Session-Id} is taken from
    its replies. C{await close()} sends the end of the session (the envelope with the
    C{":method": "DELETE"} pseudo-header that a bridge sends for C{DELETE /mcp/...}).

    @ivar session_id: the remote server's session id, once it gave one.
    @ivar protocol_version: the version C{initialize} agreed on, sent as
        C{MCP-Protocol-Version} afterwards.
    """

    def __init__(self, node: Node, peer: str | bytes, service: str) -> None:
        self._node, self._peer, self._service = node, peer, service
        self.session_id: str | None = None
        self.protocol_version: str | None = None

    async def call(self, request: Mapping[str, Any]) -> Any:
        message = _jsonrpc(request)
        headers = _mcp_headers(message)
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version:
            headers["MCP-Protocol-Version"] = self.protocol_version
        reply = await self._node._mcp(self._peer, self._service, message, headers)
        for name, value in reply.headers.items():
            if name.lower() == "mcp-session-id" and value:
                self.session_id = value
        response = None if reply.response is MISSING else reply.response
        if message.get("method") == "initialize" and isinstance(response, dict):
            version = (response.get("result") or {}).get("protocolVersion")
            if isinstance(version, str):
                self.protocol_version = version
        return response

    async def close(self) -> None:
        """End the remote server's session (nothing to do when it gave no id)."""
        session_id, self.session_id = self.session_id, None
        if session_id:
            headers = {":method": "DELETE", "Mcp-Session-Id": session_id}
            await self._node._mcp(self._peer, self._service, None, headers)

    async def __aenter__(self) -> McpSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Node:
    """
    An axl node running on the caller's asyncio loop. Use it as C{async with Node(config) as
    node:} (or C{await node.start()} / C{await node.stop()}).

    @param config: a C{node-config.json} as a dict or a path (or a parsed
        L{axl.config.NodeConfig}); it is checked here, so a bad one raises
        L{axl.errors.ConfigError} (naming the key and the file) before anything starts.
    @param bridge: also serve the HTTP bridge on C{bridge_addr:api_port}.
    @param identity: the node's key; by default loaded from the config (an ephemeral key when
        the config names none).
    """

    log = Logger(observer=log_observer)

    def __init__(
        self,
        config: Mapping[str, Any] | str | os.PathLike[str] | NodeConfig,
        *,
        bridge: bool = False,
        identity: Identity | None = None,
    ) -> None:
        self.config = _load(config)
        self.identity = identity if identity is not None else load_identity(self.config)
        self._bridge = bridge
        self._service: NodeService | None = None
        self._reactor: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = "new"
        self._servers: set[OverlayServer] = set()
        self._held: deque[Message] = deque()

    def __repr__(self) -> str:
        return f"<axl.aio.Node {self.public_key[:8]} {self._state}>"

    # -- identity and state ----------------------------------------------------------------

    @property
    def public_key(self) -> str:
        """Our public key: 64 lower-case hex digits, the id other nodes send to."""
        return self.identity.public_key.hex()

    @property
    def address(self) -> str:
        """Our Yggdrasil IPv6 address (in 200::/7)."""
        return str(self.identity.ipv6)

    @property
    def running(self) -> bool:
        return self._state == "running"

    def topology(self) -> dict[str, Any]:
        """The C{/topology} document: C{our_ipv6}, C{our_public_key}, C{peers}, C{tree}."""
        return self._node().topology()

    def listening(self) -> list[str]:
        """The peer listeners (C{Listen}) as bound, e.g. C{tcp://127.0.0.1:40123} for port 0."""
        from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

        out = []
        for uri, port in self._node().links.listening_ports():
            host = port.getHost()
            if isinstance(host, (IPv4Address, IPv6Address)):
                name = f"[{host.host}]" if ":" in host.host else host.host
                out.append(f"{uri.scheme}://{name}:{host.port}")
            elif isinstance(host, UNIXAddress) and host.name is not None:
                path = host.name.decode() if isinstance(host.name, bytes) else host.name
                out.append(f"unix://{path}")
        return out

    def _node(self) -> AxlNode:
        if self._state != "running":
            raise NodeStopped(f"the node is {self._state}, not running")
        node = self._service.node if self._service is not None else None
        assert node is not None  # a running node's service has its record
        return node

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """
        Start every layer on the running loop (installing Twisted's asyncio reactor if needed).

        @raise axl.aio.ReactorError: another Twisted reactor is installed.
        @raise axl.errors.StartupError: e.g. the bridge port is taken (nothing is left running).
        """
        if self._state != "new":
            raise RuntimeError(f"a Node starts once (it is {self._state})")
        loop = asyncio.get_running_loop()
        reactor = _reactor.acquire(loop)
        self._state = "starting"
        forward_to_stdlib()
        from axl.service import make_node_service  # imports the (now asyncio) reactor

        try:
            service = make_node_service(self.config, reactor, self.identity)
            if not self._bridge:
                service.removeService(service.getServiceNamed("axl-bridge"))  # type: ignore[no-untyped-call]
            self._service, self._reactor, self._loop = service, reactor, loop
            service.startService()  # type: ignore[no-untyped-call]
        except BaseException:
            self._state = "stopping"
            if self._service is not None:
                await self._finish_stopping()
            else:
                self._state = "stopped"
                _reactor.release(reactor)
            raise
        self._state = "running"

    async def stop(self) -> None:
        """
        Stop the node: servers closed and their handlers cancelled, links and connections closed,
        every timer cancelled. Finishes even when the calling task is cancelled meanwhile (and
        then re-raises the cancellation).
        """
        if self._state != "running":
            return
        self._state = "stopping"
        await self._finish_stopping()

    async def _finish_stopping(self) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        for server in list(self._servers):
            server.close()
            tasks |= server.tasks
        for task in tasks:
            task.cancel()
        done = asyncio.ensure_future(self._stop_service(tasks), loop=loop)
        cancelled = False
        while not done.done():
            try:
                await asyncio.shield(done)
            except asyncio.CancelledError:
                cancelled = True
        self._state = "stopped"
        _reactor.release(self._reactor)
        done.result()
        if cancelled:
            raise asyncio.CancelledError()

    async def _stop_service(self, tasks: set[asyncio.Task[None]]) -> None:
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._service is not None and self._service.running:
            await self._service.stopService().asFuture(asyncio.get_running_loop())

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- messages (/send, /recv) ------------------------------------------------------------

    async def _wait(self, d: Deferred[T]) -> T:
        """Await C{d}; cancelling the caller cancels C{d}."""
        assert self._loop is not None
        return await d.asFuture(self._loop)

    async def send(self, peer: str | bytes, data: bytes) -> int:
        """
        Send C{data} to C{peer}'s receive queue. Returns (the number of bytes) once the peer's
        TCP acknowledged the whole message, as C{/send}'s C{200}. Messages to one peer arrive in
        the order sent; keep several sends in flight (tasks) for throughput. Cancelling stops
        the wait, not necessarily the delivery.

        @raise ValueError: C{peer} is not a key.
        @raise MessageRefused: over our C{max_message_size} (nothing sent) or the receiver's
            (C{limit} is that size; C{/send}'s 413).
        @raise PeerUnreachable: no connection, or it was lost before the acknowledgement (502).
        @raise PeerTimedOut: no connection within the connect timeout (504).
        @raise SendTimedOut: the peer took no data for C{send_timeout_secs}: its queue is full
            (503; the message may still arrive).
        """
        sender = self._node().sender
        dest = peer_key(peer)
        data = bytes(data)
        limit = self.config.max_message_size
        if len(data) > limit:
            raise MessageRefused(
                f"Message too large: {len(data)} bytes (max_message_size is {limit})", limit
            )
        return await self._wait(sender.send(dest, data))

    def recv_nowait(self) -> Message | None:
        """The oldest received message, or None when there is none (C{/recv}'s 204)."""
        if self._held:
            return self._held.popleft()
        message = self._node().recv_queue.get()
        return _message(message) if message is not None else None

    async def recv(self, timeout: float | None = None) -> Message:
        """
        The oldest received message, waiting for one (at most C{timeout} seconds when given).
        A cancelled C{recv} never loses a message: one taken just before the cancellation is
        the next one returned.

        @raise TimeoutError: nothing arrived within C{timeout}.
        @raise NodeStopped: the node stopped (or is not running).
        """
        message = self.recv_nowait()
        if message is not None:
            return message
        queue = self._node().recv_queue
        assert self._loop is not None
        loop = self._loop
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            wait = _WAIT_SLICE if deadline is None else max(0.0, deadline - loop.time())
            if wait <= 0:
                raise TimeoutError(f"no message within {timeout:g} s")
            got: asyncio.Future[Any] = loop.create_future()
            d = queue.wait(wait)

            def deliver(result: Any, got: asyncio.Future[Any] = got) -> None:
                if got.cancelled():
                    if result is not None:
                        self._held.append(_message(result))
                else:
                    got.set_result(result)

            d.addCallbacks(deliver, lambda failure: failure.trap(CancelledError))
            try:
                result = await got
            except asyncio.CancelledError:
                if got.done() and not got.cancelled() and got.result() is not None:
                    self._held.append(_message(got.result()))
                else:
                    d.cancel()
                raise
            if result is not None:
                return _message(result)
            if self._state != "running":
                raise NodeStopped("the node stopped")

    async def messages(self) -> AsyncIterator[Message]:
        """Every received message, oldest first, until the node stops."""
        while True:
            try:
                yield await self.recv()
            except NodeStopped:
                return

    # -- MCP and A2A (/mcp, /a2a) -------------------------------------------------------------

    async def _request(self, peer: str | bytes, envelope: bytes) -> bytes:
        sender = self._node().sender
        dest = peer_key(peer)
        return await self._wait(sender.request(dest, envelope, self.config.request_timeout_secs))

    async def _mcp(
        self, peer: str | bytes, service: str, request: Any, headers: dict[str, str]
    ) -> Reply:
        """One MCP envelope to C{service} on C{peer}; the reply (its error raised)."""
        raw = await self._request(peer, encode_mcp_request(service, request, headers))
        reply = parse_mcp_reply(raw)
        if reply is None:
            raise RemoteError("Invalid response from peer")
        if reply.error:
            raise RemoteError(reply.error)
        return reply

    async def call_mcp(
        self, peer: str | bytes, service: str, request: Mapping[str, Any]
    ) -> Any:
        """
        Send one MCP JSON-RPC message to C{service} on C{peer} (its MCP router) and return the
        JSON-RPC response (None for a notification, once delivered), as
        C{POST /mcp/{peer}/{service}} without a session: fine for stateless MCP servers; use
        L{mcp_session} for servers that keep sessions (the C{mcp} SDK's default).

        @raise RemoteError: the peer could not serve it (C{mcp not enabled on this node},
            C{router error: ...}); the bridge's C{200} with JSON-RPC error -32603.
        @raise PeerUnreachable: as L{send}.
        @raise PeerTimedOut: no connection, or no reply within C{request_timeout_secs}.
        """
        message = _jsonrpc(request)
        reply = await self._mcp(peer, service, message, _mcp_headers(message))
        return None if reply.response is MISSING else reply.response

    def mcp_session(self, peer: str | bytes, service: str) -> McpSession:
        """
        A session with C{service} on C{peer}, for MCP servers that keep sessions: it carries the
        server's C{Mcp-Session-Id} (and the protocol version agreed by C{initialize}) on every
        call, as the bridge's C{/mcp} sessions do; C{close()} (or leaving C{async with}) ends
        the server's session.
        """
        return McpSession(self, peer, service)

    async def call_a2a(self, peer: str | bytes, request: Mapping[str, Any] | None) -> Any:
        """
        Send one A2A JSON-RPC request to C{peer}'s A2A server and return its answer, as
        C{POST /a2a/{peer}}; C{request=None} fetches the agent card (C{GET /a2a/{peer}}; its
        interface URLs are left as the peer wrote them).

        @raise RemoteError: the peer could not serve it (C{a2a not enabled on this node}).
        @raise PeerUnreachable: as L{send}.
        @raise PeerTimedOut: no connection, or no reply within C{request_timeout_secs}.
        """
        if request is None:
            envelope = encode_a2a_request(None, agent_card=True)
        else:
            envelope = encode_a2a_request(dict(request))
        reply = parse_a2a_reply(await self._request(peer, envelope))
        if reply is None:
            raise RemoteError("Invalid response from peer")
        if reply.error:
            raise RemoteError(reply.error)
        if reply.response is MISSING:
            raise RemoteError("Invalid response from peer: no response")
        return reply.response

    # -- streams over the overlay TCP ---------------------------------------------------------

    async def open_connection(
        self, peer: str | bytes, port: int, *, limit: int = DEFAULT_LIMIT, timeout: float | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """
        Connect to overlay TCP C{port} of C{peer}, as C{asyncio.open_connection}.

        @param timeout: connect timeout (default C{connect_timeout_secs}).
        @raise ConnectionRefusedError: nothing listens on that port.
        @raise TimeoutError: no answer within the timeout (an unknown key, or an unreachable one).
        @raise ConnectionError: any other failure to connect.
        """
        from twisted.internet.error import ConnectError, ConnectionRefusedError as Refused
        from twisted.internet.error import TCPTimedOutError

        from axl.tcp.endpoints import OverlayClientEndpoint

        tcp = self._node().tcp
        dest = peer_key(peer)
        assert self._loop is not None
        factory = StreamFactory(self._loop, limit)
        endpoint = OverlayClientEndpoint(tcp, dest, port, timeout=timeout)
        try:
            bridge = await self._wait(endpoint.connect(factory))
        except TCPTimedOutError as e:
            raise TimeoutError(str(e)) from None
        except Refused as e:
            raise ConnectionRefusedError(str(e)) from None
        except ConnectError as e:
            raise ConnectionError(str(e)) from None
        return client_streams(factory, bridge)  # type: ignore[arg-type]

    async def start_server(
        self, handle: ClientConnected, port: int, *, limit: int = DEFAULT_LIMIT
    ) -> OverlayServer:
        """
        Serve overlay TCP C{port}: each connection runs C{await handle(reader, writer)} in its
        own task, as C{asyncio.start_server}.

        @raise OSError: the port is in use on this node.
        """
        from twisted.internet.error import CannotListenError

        from axl.tcp.endpoints import OverlayServerEndpoint

        tcp = self._node().tcp
        assert self._loop is not None
        server = OverlayServer(self, port, handle)
        factory = StreamFactory(self._loop, limit, server._connected)
        try:
            server._listening = await self._wait(OverlayServerEndpoint(tcp, port).listen(factory))
        except CannotListenError as e:
            raise OSError(f"cannot listen on overlay port {port}: {e}") from None
        self._servers.add(server)
        return server


def _jsonrpc(request: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(request, Mapping):
        raise TypeError("an MCP message is a JSON-RPC object (a dict)")
    return dict(request)


def _mcp_headers(message: Mapping[str, Any]) -> dict[str, str]:
    """The routing header the bridge derives from a JSON-RPC message (C{Mcp-Method})."""
    method = message.get("method")
    return {"Mcp-Method": method} if isinstance(method, str) else {}


def _message(message: Any) -> Message:
    return Message(sender=message.sender.hex(), data=message.payload)
