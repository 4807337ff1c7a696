# -*- test-case-name: tests.test_streams_service -*-
"""
The streams layer of one node, built from the layers below it (spec/axl-node.md sections 6-9):
the C{/recv} queue, the stream registry (MCP, A2A, then plugin streams), the port-7000 message
factory and the outbound L{MessageSender}. It knows nothing of HTTP: the bridge above it serves
C{/send}, C{/recv}, C{/mcp} and C{/a2a} from the L{StreamsLayer}'s C{sender} and C{queue}.

The overlay TCP reaches it as Twisted endpoints: a C{dial(key, port)} for the sender and an
C{IStreamServerEndpoint} for the listener, both made by C{axl.service}.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

from treq.client import HTTPClient
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IListeningPort, IReactorTime, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.web.client import HTTPConnectionPool

from axl.config import NodeConfig, service_url
from axl.listening import ListeningService, listen_now
from axl.logs import observer as log_observer
from axl.streams.a2a import A2AStream
from axl.streams.interfaces import IStream, IStreamFactory
from axl.streams.framing import acknowledged_port
from axl.streams.listener import AcknowledgedMessageFactory, MessageFactory
from axl.streams.mcp import MCPStream
from axl.streams.recv_queue import RecvQueue
from axl.streams.registry import StreamRegistry
from axl.streams.sender import Dial, MessageSender

__all__ = [
    "CONNECT_GUARD_SECS",
    "MessageListenerService",
    "StreamsLayer",
    "build_streams_layer",
    "discover_streams",
]

log = Logger(observer=log_observer)

#: Our bound on connecting to a peer: this much above the overlay TCP's own connect timeout
#: (C{connect_timeout_secs}, 10 s by default), which normally fires first.
CONNECT_GUARD_SECS = 2.0


@dataclass(frozen=True)
class StreamsLayer:
    """
    The streams layer of one node (C{node.streams}).

    @ivar queue: the C{/recv} queue (messages no stream claimed).
    @ivar registry: the streams, in the order they are tried.
    @ivar factory: the port-7000 listener's protocol factory.
    @ivar sender: sends messages (C{/send}) and requests (C{/mcp}, C{/a2a}) to other nodes.
    @ivar http_pool: the connection pool of the streams' HTTP client, closed on stop (None if
        the client was given by the caller, who then owns it).
    """

    queue: RecvQueue
    registry: StreamRegistry
    factory: MessageFactory
    sender: MessageSender
    http_pool: HTTPConnectionPool | None = None


def discover_streams(
    config: NodeConfig, http: HTTPClient | None, package: ModuleType | None = None
) -> list[IStream]:
    """
    Streams from L{IStreamFactory} plugins in C{package} (default C{twisted.plugins}), sorted
    by name; a plugin that fails or returns None is skipped (logged).
    """
    from twisted.plugin import getPlugins

    if package is None:
        import twisted.plugins as package
    streams: list[IStream] = []
    for factory in sorted(getPlugins(IStreamFactory, package), key=lambda f: str(f.name)):
        try:
            stream = factory.make_stream(config, http)
        except Exception:  # noqa: BLE001 - a broken plugin must not stop the node
            log.failure("stream plugin {name} failed to start", name=factory.name)
            continue
        if stream is None:
            continue
        if not IStream.providedBy(stream):
            log.error("stream plugin {name} made {obj!r}, not an IStream", name=factory.name, obj=stream)
            continue
        streams.append(stream)
    return streams


def build_streams_layer(
    config: NodeConfig,
    public_key: bytes,
    clock: IReactorTime,
    dial: Dial,
    http: HTTPClient,
    plugin_streams: Iterable[IStream] | None = None,
    http_pool: HTTPConnectionPool | None = None,
) -> StreamsLayer:
    """
    Build the streams layer of the node with C{public_key}.

    @param dial: C{dial(key, port)} -> a client endpoint to that node's overlay port.
    @param http: the HTTP client the MCP and A2A streams (and plugins) call local services with.
    @param plugin_streams: extra streams, tried after MCP and A2A; default L{discover_streams}.
    @param http_pool: C{http}'s pool, if the layer should close it when it stops.
    """
    queue = RecvQueue(clock, config.recv_queue_max_messages, config.recv_queue_max_bytes)
    stream_timeout = float(config.stream_timeout_secs)
    http_timeout = max(stream_timeout - 1.0, stream_timeout * 0.8)
    registry = StreamRegistry(queue, clock, timeout=stream_timeout)
    route_url = service_url(config.router_addr, config.router_port, "/route")
    registry.add(
        MCPStream(http, route_url, clock, http_timeout),
        enabled=bool(config.router_addr),
        allowed=tuple(config.mcp_allowed_peers) or None,
    )
    a2a_url = service_url(config.a2a_addr, config.a2a_port)
    registry.add(
        A2AStream(http, a2a_url, clock, http_timeout),
        enabled=bool(config.a2a_addr),
        allowed=tuple(config.a2a_allowed_peers) or None,
    )
    for stream in discover_streams(config, http) if plugin_streams is None else plugin_streams:
        registry.add(stream)
    factory = MessageFactory(
        registry,
        clock,
        max_message_size=config.max_message_size,
        max_conns=config.max_concurrent_conns,
        max_conns_per_peer=config.max_conns_per_peer,
        read_timeout=config.conn_read_timeout_secs,
        idle_timeout=config.conn_idle_timeout_secs,
        budget=config.recv_queue_max_bytes,
        queued_bytes=lambda: queue.size_bytes,
    )
    queue.on_space.append(factory.space_freed)
    sender = MessageSender(
        dial,
        clock,
        public_key,
        registry,
        port=config.tcp_port,
        max_message_size=config.max_message_size,
        idle_close=config.send_idle_close_secs,
        send_timeout=config.send_timeout_secs,
        connect_timeout=float(config.connect_timeout_secs) + CONNECT_GUARD_SECS,
        ack_port=acknowledged_port(config.tcp_port),
    )
    return StreamsLayer(queue, registry, factory, sender, http_pool)


class MessageListenerService(ListeningService):
    """
    Listens on the overlay message port in C{startService} (synchronously, so the bridge after
    it starts only once the listener is ready), and on the acknowledged protocol's port
    (L{acknowledged_port}) when C{ack_endpoint} is given; closes pooled connections, the HTTP
    pool and long-polls on stop.

    @ivar ack_listening: the acknowledged protocol's listening port while running.
    """

    name = "axl-streams"

    def __init__(
        self,
        layer: StreamsLayer,
        endpoint: IStreamServerEndpoint,
        port: int,
        ack_endpoint: IStreamServerEndpoint | None = None,
    ) -> None:
        super().__init__(endpoint, layer.factory, f"overlay port {port} for the message listener",
                         listening=self._listening)  # fmt: skip
        self.layer = layer
        self.port_number = port
        self.ack_endpoint = ack_endpoint
        self.ack_listening: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        if self.ack_endpoint is not None:
            ack_port = acknowledged_port(self.port_number)
            self.ack_listening = listen_now(
                self.ack_endpoint,
                AcknowledgedMessageFactory(self.layer.factory),
                f"overlay port {ack_port} for the acknowledged message listener",
                "tcp_port + 1 is the node's own (the /send protocol between axl nodes): "
                "give the other service another overlay port, or set another tcp_port",
            )

    def _listening(self, port: IListeningPort) -> None:
        log.info(
            "Message listener on overlay port {port}; streams: {streams}",
            port=self.port_number,
            streams=", ".join(self.layer.registry.names),
        )

    def stopService(self) -> Deferred[None] | None:
        self.layer.sender.close()
        self.layer.queue.close()
        waits: list[Deferred[None]] = []
        stopped = super().stopService()
        if stopped is not None:
            waits.append(stopped)
        ack, self.ack_listening = self.ack_listening, None
        if ack is not None:
            ack_stopped = ack.stopListening()
            if ack_stopped is not None:
                waits.append(ack_stopped)
        if self.layer.http_pool is not None:
            waits.append(self.layer.http_pool.closeCachedConnections())
        if not waits:
            return None
        return DeferredList(waits).addCallback(lambda _: None)
