# -*- test-case-name: tests.test_service -*-
"""
Assembling a node: the only place where the parts are wired together.

L{make_node_service} builds each layer from the layers below it, bottom to top, each typed by
the interfaces of L{axl.interfaces} (or Twisted's endpoints)::

    links (PeerManager)  <- router (ILinkHandler) as its handler
    router (Router)      -> delivers up through the one registration, L{OverlayDelivery}
    overlay              <- router (IRouter): sessions (ISessions), proto, ipv6 (IIPv6Layer)
    tcp (TCPStack)       <- ipv6 (IIPv6Layer)
    forwards             <- tcp, ipv6 + router lookups, the overlay's UDP (SOCKS, port forwards)
    streams              <- overlay TCP endpoints (dial, listen)
    node view            <- links, router, overlay, tcp, queue: read by /metrics and the admin socket
    bridge               <- streams (sender, queue), topology (links, router), metrics; all HTTP
    admin socket         <- the node view (AdminListen; only when configured)
    Node                 the record of all of them, made last

and a L{NodeService} whose children start in that order, one layer after the other; the bridge
comes last, so by the time C{Listening on ...} is logged every layer below it is running.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import cast

from treq.client import HTTPClient
from twisted.application.service import MultiService, Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorTime,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http import Request
from twisted.web.server import Site

from axl.admin.node import admin_service, node_view
from axl.bridge import Bridge
from axl.bridge.limits import BridgeLimits, LimitedSite
from axl.bridge.metrics import NodeMetrics
from axl.bridge.mcp_sessions import McpSessions
from axl.bridge.topology import topology_document
from axl.config import NodeConfig
from axl.crypto.keys import Identity
from axl.errors import ConfigError
from axl.forward.service import build_forwards
from axl.identity import load_identity
from axl.interfaces import INodeReactor
from axl.ipv6.stack import Overlay, OverlayService, build_overlay
from axl.link.peers import PeerManager
from axl.link.uri import parse_listen_uri, parse_peer_uri
from axl.listening import ListeningService, tcp_server_endpoint
from axl.logs import observer as log_observer
from axl.logs import set_log_level
from axl.mesh import Router, RouterService
from axl.node import Node
from axl.session.proto import node_info_json
from axl.streams.framing import acknowledged_port
from axl.streams.sender import Dial
from axl.streams.service import MessageListenerService, StreamsLayer, build_streams_layer
from axl.tcp.common import TCPConfig
from axl.tcp.endpoints import OverlayClientEndpoint, OverlayServerEndpoint
from axl.tcp.service import TCPService
from axl.tcp.stack import TCPStack
from axl.worstcase import worst_case_total

__all__ = [
    "BridgeService",
    "BridgeSite",
    "NodeService",
    "NodeStartupService",
    "OverlayDelivery",
    "bridge_endpoint",
    "make_node_service",
]

log = Logger(observer=log_observer)


class NodeService(MultiService):
    """
    The node's top service. Its children are the layers, bottom to top; they start in that order
    and stop one at a time, top to bottom, each only once the layer above it has finished
    stopping. So the TCP's last FINs and RSTs (sent after its close grace) still find the
    sessions, router and links running, and no layer is used after it stopped.

    @ivar node: the L{Node} whose services these are (None for a bare service tree in tests).
    """

    def __init__(self, node: Node | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.node = node

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        done: Deferred[None] = succeed(None)
        for child in reversed(list(self)):
            done.addCallback(self._stop_child, child)
            done.addErrback(self._stop_failed, child)
        return done

    @staticmethod
    def _stop_child(_: object, child: Service) -> Deferred[object]:
        return maybeDeferred(child.stopService)

    @staticmethod
    def _stop_failed(failure: Failure, child: Service) -> None:
        log.failure("stopping {name} failed", failure, name=child.name or child)


class NodeStartupService(Service):
    """The first child: reports what the node was configured with when it starts."""

    name = "axl-node"

    def __init__(self, config: NodeConfig) -> None:
        self.config = config

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        config = self.config
        log.info("Loaded node config from {source}", source=config.source)
        for problem in config.warnings:
            log.warn("Config: {problem}", problem=problem)
        log.info("Max message size: {size} bytes", size=config.max_message_size)
        log.info("Max concurrent connections: {n}", n=config.max_concurrent_conns)
        log.info("Connection read timeout: {secs}s", secs=config.conn_read_timeout_secs)
        log.info("Connection idle timeout: {secs}s", secs=config.conn_idle_timeout_secs)
        for uri in config.listen:
            log.info("Configured listener: {uri}", uri=uri)
        for uri in config.peers:
            log.info("Configured peer: {uri}", uri=uri)
        log.info("Memory remote parties can make this node hold: at most {mib:.0f} MiB with this "
                 "config (README: Worst-case memory)", mib=worst_case_total(config) / 2**20)  # fmt: skip


#: A TCP server endpoint on a host (IPv4 or IPv6 literal, or a name) and port.
bridge_endpoint = tcp_server_endpoint


class BridgeService(ListeningService):
    """
    Listens with the bridge's site in C{startService}; failing to bind raises
    L{axl.errors.StartupError} (the node does not run without its bridge). After binding it logs
    the lines scripts read from AXL: C{Our Public Key}, C{Our IPv6}, C{Listening on host:port}.
    """

    name = "axl-bridge"

    def __init__(
        self, config: NodeConfig, identity: Identity, endpoint: IStreamServerEndpoint, site: Site
    ) -> None:
        where = f"{config.bridge_addr}:{config.api_port}"
        super().__init__(
            endpoint,
            site,
            f"{where} for the HTTP bridge",
            f"set another api_port or bridge_addr in {config.source}",
            self._listening,
        )
        self.config = config
        self.identity = identity

    def _listening(self, port: IListeningPort) -> None:
        configured = self.config.bridge_addr
        shown = f"[{configured}]" if ":" in configured else configured
        log.info("Our Public Key: {key}", key=self.identity.public_key.hex())
        log.info("Our IPv6: {address}", address=self.identity.ipv6)
        address = cast("IPv4Address | IPv6Address", port.getHost())  # a TCP endpoint's port
        log.info("Listening on {host}:{port}", host=shown, port=address.port)


class BridgeSite(LimitedSite):
    """
    The bridge's site. It keeps no per-request access log: local apps poll C{/recv} many times a
    second, and a line per request would flood the node's log (and stall a node whose output
    nobody reads). Errors are still logged by the handlers.
    """

    noisy = False

    def log(self, request: Request) -> None:
        pass


class OverlayDelivery:
    """
    The one upward link of the stack: the router is built before the layers it delivers to, so it
    is given this object's methods as its C{on_traffic} / C{on_path_notify}, and the overlay is
    registered here once it is built (L{register}). Nothing runs in between: no service has
    started yet.
    """

    def __init__(self) -> None:
        self._overlay: Overlay | None = None

    def register(self, overlay: Overlay) -> None:
        """Deliver to C{overlay} from now on (once only)."""
        if self._overlay is not None:
            raise RuntimeError("an overlay is already registered")
        self._overlay = overlay

    def _target(self) -> Overlay:
        if self._overlay is None:
            raise RuntimeError("the router delivered before the overlay was registered")
        return self._overlay

    def traffic_received(self, source_key: bytes, data: bytes) -> None:
        """The router's C{on_traffic}: one encrypted-layer packet for us."""
        self._target().traffic_received(source_key, data)

    def path_notify(self, full_key: bytes) -> None:
        """The router's C{on_path_notify}: a lookup found C{full_key}."""
        self._target().path_notify(full_key)


# ---------------------------------------------------------------------------------------------
# One function per layer, called bottom to top by make_node_service; each is given what it
# needs from the layers below and returns its layer.


def build_links(
    config: NodeConfig, identity: Identity, reactor: INodeReactor, router: Router
) -> PeerManager:
    """
    Peering: outbound C{Peers}, inbound C{Listen}. Links hand their frames to C{router} (an
    L{axl.interfaces.ILinkHandler}); the peer table reads the router's port / root / coords /
    latency per key.

    @raise ConfigError: a C{Peers} or C{Listen} entry is bad (the message names the file).
    """
    try:
        peers = [parse_peer_uri(uri) for uri in config.peers]
        listen = [parse_listen_uri(uri) for uri in config.listen]
    except ConfigError as e:
        raise ConfigError(f"{config.source}: {e}") from None
    for uri in peers + listen:
        if uri.ignored:
            log.warn("Config: {uri}: ignoring unsupported option(s) {options}",
                     uri=uri.link_uri, options=", ".join(uri.ignored))  # fmt: skip
    return PeerManager(
        identity,
        reactor,
        peers=peers,
        listen=listen,
        allowed_keys=config.allowed_public_keys,
        max_backoff=config.peer_max_backoff_secs,
        handler=router,
        port_for_key=router.port_for_key,
        root_for_key=router.root_for_key,
        coords_for_key=router.coords_for_key,
        latency_for_key=router.latency_for_key,
        max_handshakes_per_source=config.max_handshakes_per_source,
        max_inbound_per_source=config.max_inbound_per_source,
        max_inbound_per_key=config.max_inbound_per_key,
        max_inbound_links=config.max_inbound_links,
        write_buffer_max=config.link_write_buffer_bytes,
        write_budget=config.link_write_budget_bytes,
        multicast=config.multicast_interfaces,
    )


def build_overlay_layers(
    config: NodeConfig, identity: Identity, clock: IReactorTime, router: Router, links: PeerManager
) -> Overlay:
    """
    End-to-end encrypted sessions, the core proto answers (NodeInfo, debug GetSelf/GetPeers/
    GetTree) and the IPv6 carriage over C{router} (L{axl.ipv6.stack.build_overlay}).

    @raise ConfigError: C{NodeInfo} is unusable (the message names the file).
    """
    try:
        info = node_info_json(config.node_info)
    except ConfigError as e:
        raise ConfigError(f"{config.source}: {e}") from None

    def peer_keys() -> list[bytes]:
        return [link.remote_key for link in links.links()]

    def tree_keys() -> list[bytes]:
        return list(router.tree.infos)

    return build_overlay(identity, router, clock, info, peer_keys, tree_keys)


def overlay_dial(tcp: TCPStack) -> Dial:
    """C{dial(key, port)}: a client endpoint to port C{port} of node C{key} over C{tcp}."""

    def dial(key: bytes, port: int) -> IStreamClientEndpoint:
        return OverlayClientEndpoint(tcp, key, port)

    return dial


def streams_http_client(reactor: INodeReactor) -> tuple[HTTPClient, HTTPConnectionPool]:
    """The pooled treq client the streams call the local MCP router and A2A server with."""
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 16
    return HTTPClient(Agent(reactor, pool=pool)), pool


def build_bridge(
    config: NodeConfig,
    clock: IReactorTime,
    streams: StreamsLayer,
    topology: Callable[[], dict[str, object]],
    metrics: NodeMetrics | None = None,
) -> Bridge:
    """
    The bridge's routes over the streams' sender and C{/recv} queue, a C{/topology} source and
    the node's metrics (C{/metrics}).
    """
    return Bridge(
        topology,
        streams.sender,
        streams.queue,
        clock,
        McpSessions(clock, ttl=config.mcp_session_ttl_secs),
        max_message_size=config.max_message_size,
        request_timeout=config.request_timeout_secs,
        recv_wait_max=config.recv_wait_max_secs,
        max_background=config.bridge_max_background,
        max_inflight_bytes=config.bridge_max_inflight_bytes,
        bridge_addr=config.bridge_addr,
        api_port=config.api_port,
        metrics=metrics,
    )


def make_node_service(
    config: NodeConfig, reactor: INodeReactor, identity: Identity | None = None
) -> NodeService:
    """
    Build a whole node from its config.

    @param reactor: the reactor every part uses (TCP, time); tests pass a C{MemoryReactorClock}.
    @param identity: the node's identity; loaded from C{config} when not given.
    @return: a L{NodeService} whose C{node} is the L{Node}.
    @raise axl.errors.ConfigError: the identity cannot be loaded or a config value is unusable.
    """
    set_log_level(config.log_level)
    if identity is None:
        identity = load_identity(config)
    delivery = OverlayDelivery()
    router = Router(identity, reactor, delivery.traffic_received, delivery.path_notify)
    links = build_links(config, identity, reactor, router)
    overlay = build_overlay_layers(config, identity, reactor, router, links)
    delivery.register(overlay)
    tcp = TCPStack(overlay.ipv6, identity.public_key, reactor,
                   TCPConfig(mtu=int(overlay.ipv6.mtu), rcv_budget=config.tcp_rcv_budget_bytes),
                   connect_timeout=config.connect_timeout_secs)  # fmt: skip
    http, pool = streams_http_client(reactor)
    streams = build_streams_layer(
        config, identity.public_key, reactor, overlay_dial(tcp), http, http_pool=pool
    )
    view = node_view(identity, reactor, links, router, overlay, tcp, streams.queue)
    bridge = build_bridge(config, reactor, streams, partial(topology_document, identity, links, router),
                          NodeMetrics(view, reactor))  # fmt: skip
    forwards = build_forwards(config, reactor, overlay, router, tcp)
    node = Node(config, identity, reactor, links, router, overlay, tcp, streams, bridge, forwards)
    admin = admin_service(config, view, reactor)  # AdminListen: yggdrasilctl / axl ctl

    top = NodeService(node)
    services: list[Service] = [
        NodeStartupService(config),
        links,
        RouterService(router),
        OverlayService(overlay),
        TCPService(tcp),
        MessageListenerService(
            streams,
            OverlayServerEndpoint(tcp, config.tcp_port),
            config.tcp_port,
            OverlayServerEndpoint(tcp, acknowledged_port(config.tcp_port)),
        ),
        forwards,
    ]
    if admin is not None:
        services.append(admin)
    services.append(_bridge_service(config, identity, reactor, bridge))  # last: binds last
    for service in services:
        service.setServiceParent(top)
    return top


def _bridge_service(
    config: NodeConfig, identity: Identity, reactor: INodeReactor, bridge: Bridge
) -> BridgeService:
    """The local HTTP bridge; always the last child so it binds after every layer started."""
    # Bodies are raw messages or JSON: never parse them as HTML forms (curl --data-binary and
    # urllib send form content types; parsing a 1 MiB /send body that way costs ~35 ms).
    limits = BridgeLimits(
        header_timeout=config.bridge_header_timeout_secs,
        body_timeout=config.bridge_body_timeout_secs,
        max_connections=config.bridge_max_connections,
        max_requests=config.bridge_max_requests,
        max_body=config.max_message_size,
    )
    site = BridgeSite(bridge.resource(), limits, reactor, streamed=bridge.streamed_routes,
                      inflight=bridge.inflight, parsePOSTFormSubmission=False)  # fmt: skip
    endpoint = bridge_endpoint(reactor, config.bridge_addr, config.api_port)
    return BridgeService(config, identity, endpoint, site)
