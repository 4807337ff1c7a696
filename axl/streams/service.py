# -*- test-case-name: tests.test_streams_service -*-
"""
Wiring of the application layer into a node: the C{/recv} queue, the stream registry (MCP, A2A,
then plugin streams), the port-7000 listener service, the outbound L{Sender} and the bridge's
L{MessagingAPI}. C{axl.service} calls L{add_streams} before adding the bridge, so the bridge
binds only once the listener is up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.interfaces import (
    IListeningPort,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from axl.bridge.mcp_sessions import McpSessions
from axl.bridge.messaging import MessagingAPI
from axl.config import service_url
from axl.errors import StartupError
from axl.streams.a2a import A2AStream
from axl.streams.interfaces import IStream, IStreamFactory
from axl.streams.listener import MessageFactory
from axl.streams.mcp import MCPStream
from axl.streams.recv_queue import RecvQueue
from axl.streams.registry import StreamRegistry
from axl.streams.sender import Sender

__all__ = [
    "MessageListenerService",
    "StreamsLayer",
    "add_streams",
    "build_streams_layer",
    "discover_streams",
]

log = Logger()

#: Our bound on connecting to a peer: this much above the overlay TCP's own connect timeout
#: (C{connect_timeout_secs}, 10 s by default), which normally fires first.
CONNECT_GUARD_SECS = 2.0


@dataclass
class StreamsLayer:
    """The application layer of one node (C{node.streams})."""

    queue: RecvQueue
    registry: StreamRegistry
    factory: MessageFactory
    sender: Sender
    api: MessagingAPI
    http_pool: Any = None


def discover_streams(node: Any, http: Any, package: Any = None) -> list[Any]:
    """
    Streams from L{IStreamFactory} plugins in C{package} (default C{twisted.plugins}), sorted
    by name; a plugin that fails or returns None is skipped (logged).
    """
    from twisted.plugin import getPlugins

    if package is None:
        import twisted.plugins as package
    streams = []
    for factory in sorted(
        getPlugins(IStreamFactory, package), key=lambda f: str(f.name)
    ):
        try:
            stream = factory.make_stream(node, http)
        except Exception:  # noqa: BLE001 - a broken plugin must not stop the node
            log.failure("stream plugin {name} failed to start", name=factory.name)
            continue
        if stream is None:
            continue
        if not IStream.providedBy(stream):
            log.error(
                "stream plugin {name} made {obj!r}, not an IStream",
                name=factory.name,
                obj=stream,
            )
            continue
        streams.append(stream)
    return streams


@implementer(IStreamClientEndpoint)
class _NoOverlay:
    def connect(self, factory: Any) -> Deferred[Any]:
        return fail(ConnectionError("overlay TCP is not running on this node"))


def _overlay_dial(node: Any) -> Callable[[bytes, int], IStreamClientEndpoint]:
    def dial(key: bytes, port: int) -> IStreamClientEndpoint:
        if getattr(node, "tcp", None) is None:
            return _NoOverlay()
        from axl.tcp.endpoints import OverlayClientEndpoint

        return OverlayClientEndpoint(node, key, port)

    return dial


def _default_http(reactor: Any) -> tuple[Any, Any]:
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 16
    return HTTPClient(Agent(reactor, pool=pool)), pool


def build_streams_layer(
    node: Any,
    reactor: Any,
    http: Any = None,
    dial: Callable[[bytes, int], IStreamClientEndpoint] | None = None,
    plugin_streams: Iterable[Any] | None = None,
) -> StreamsLayer:
    """
    Build the layer for C{node} (its C{config}, C{public_key}, C{clock}). C{http}, C{dial}
    and C{plugin_streams} default to a pooled treq client, the overlay TCP and
    L{discover_streams}.
    """
    config = node.config
    clock = reactor
    pool = None
    if http is None:
        http, pool = _default_http(reactor)
    queue = RecvQueue(
        clock,
        config.recv_queue_max_messages,
        config.recv_queue_max_bytes,
    )
    stream_timeout = float(config.stream_timeout_secs)
    http_timeout = max(stream_timeout - 1.0, stream_timeout * 0.8)
    registry = StreamRegistry(queue, clock, timeout=stream_timeout)
    mcp_allowed = tuple(config.mcp_allowed_peers) or None
    a2a_allowed = tuple(config.a2a_allowed_peers) or None
    route_url = service_url(config.router_addr, config.router_port, "/route")
    registry.add(
        MCPStream(http, route_url, clock, http_timeout),
        enabled=bool(config.router_addr),
        allowed=mcp_allowed,
    )
    a2a_url = service_url(config.a2a_addr, config.a2a_port)
    registry.add(
        A2AStream(http, a2a_url, clock, http_timeout),
        enabled=bool(config.a2a_addr),
        allowed=a2a_allowed,
    )
    for stream in (
        discover_streams(node, http) if plugin_streams is None else plugin_streams
    ):
        registry.add(stream)
    factory = MessageFactory(
        registry,
        clock,
        max_message_size=config.max_message_size,
        max_conns=config.max_concurrent_conns,
        max_conns_per_peer=config.max_conns_per_peer,
        read_timeout=config.conn_read_timeout_secs,
        idle_timeout=config.conn_idle_timeout_secs,
    )
    sender = Sender(
        dial if dial is not None else _overlay_dial(node),
        clock,
        node.public_key,
        registry,
        port=config.tcp_port,
        max_message_size=config.max_message_size,
        idle_close=config.send_idle_close_secs,
        send_timeout=config.send_timeout_secs,
        connect_timeout=float(getattr(config, "connect_timeout_secs", 10.0))
        + CONNECT_GUARD_SECS,
    )
    sessions = McpSessions(clock, ttl=config.mcp_session_ttl_secs)
    api = MessagingAPI(
        sender,
        queue,
        clock,
        sessions,
        max_message_size=config.max_message_size,
        request_timeout=config.request_timeout_secs,
        recv_wait_max=config.recv_wait_max_secs,
        bridge_addr=config.bridge_addr,
        api_port=config.api_port,
    )
    return StreamsLayer(queue, registry, factory, sender, api, pool)


class MessageListenerService(Service):
    """
    Listens on the overlay message port in C{startService} (synchronously, so the bridge after
    it starts only once the listener is ready); closes pooled connections and long-polls on stop.
    """

    name = "axl-streams"

    def __init__(
        self, layer: StreamsLayer, endpoint: IStreamServerEndpoint | None, port: int
    ) -> None:
        self.layer = layer
        self.endpoint = endpoint
        self.port_number = port
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        if self.endpoint is None:
            log.warn(
                "overlay TCP is not running: the message listener on port {port} is off",
                port=self.port_number,
            )
            return
        outcome: list[Any] = []
        self.endpoint.listen(self.layer.factory).addBoth(outcome.append)
        if not outcome or isinstance(outcome[0], Failure):
            why = (
                outcome[0].getErrorMessage() if outcome else "it did not listen at once"
            )
            raise StartupError(
                f"cannot listen on overlay port {self.port_number}: {why}"
            )
        self.port = outcome[0]
        log.info(
            "Message listener on overlay port {port}; streams: {streams}",
            port=self.port_number,
            streams=", ".join(self.layer.registry.names),
        )

    def stopService(self) -> Deferred[None] | None:
        super().stopService()  # type: ignore[no-untyped-call]
        self.layer.sender.close()
        self.layer.queue.close()
        waits = []
        if self.layer.http_pool is not None:
            waits.append(self.layer.http_pool.closeCachedConnections())
        port, self.port = self.port, None
        if port is not None:
            waits.append(port.stopListening())
        return DeferredList(waits).addCallback(lambda _: None) if waits else None


def add_streams(top: MultiService, node: Any, reactor: Any) -> StreamsLayer:
    """Build the layer, attach it as C{node.streams} and parent its listener service to C{top}."""
    layer = build_streams_layer(node, reactor)
    node.streams = layer
    endpoint: IStreamServerEndpoint | None = None
    if getattr(node, "tcp", None) is not None:
        from axl.tcp.endpoints import OverlayServerEndpoint

        endpoint = OverlayServerEndpoint(node, node.config.tcp_port)
    MessageListenerService(layer, endpoint, node.config.tcp_port).setServiceParent(top)  # type: ignore[no-untyped-call]
    return layer
