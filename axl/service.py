# -*- test-case-name: tests.test_service -*-
"""
Assembling a node: the only place where the parts are wired together.

L{make_node_service} builds a L{Node} and a C{MultiService} whose children start in order, one
layer after the other, bottom to top; the bridge comes last, so by the time C{Listening on ...}
is logged every layer below it is running. Each layer adds itself in its own C{_add_*} function.
"""

from __future__ import annotations

import ipaddress
from typing import Any, cast

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Site

from axl.bridge import Bridge
from axl.config import NodeConfig
from axl.crypto.keys import Identity
from axl.errors import ConfigError, StartupError
from axl.identity import load_identity
from axl.node import Node

__all__ = [
    "make_node_service",
    "NodeService",
    "NodeStartupService",
    "BridgeService",
    "BridgeSite",
    "bridge_endpoint",
]

log = Logger()


class NodeService(MultiService):
    """
    The node's top service. Its children are the layers, bottom to top; they start in that order
    and stop one at a time, top to bottom, each only once the layer above it has finished
    stopping. So the TCP's last FINs and RSTs (sent after its close grace) still find the
    sessions, router and links running, and no layer is used after it stopped.
    """

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        done: Deferred[None] = succeed(None)
        for child in reversed(list(self)):
            done.addCallback(self._stop_child, child)
            done.addErrback(self._stop_failed, child)
        return done

    @staticmethod
    def _stop_child(_: object, child: Service) -> Deferred[Any]:
        return maybeDeferred(child.stopService)

    @staticmethod
    def _stop_failed(failure: Failure, child: Service) -> None:
        log.failure("stopping {name} failed", failure, name=getattr(child, "name", None) or child)


class NodeStartupService(Service):
    """The first child: reports what the node was configured with when it starts."""

    name = "axl-node"

    def __init__(self, node: Node) -> None:
        self.node = node

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        config = self.node.config
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


def bridge_endpoint(reactor: Any, host: str, port: int) -> IStreamServerEndpoint:
    """A TCP server endpoint on C{host} (IPv4 or IPv6 literal, or a name) and C{port}."""
    try:
        is_v6 = ipaddress.ip_address(host.split("%", 1)[0]).version == 6
    except ValueError:
        is_v6 = False  # a host name: bound as IPv4, resolved by the socket layer
    if is_v6:
        return TCP6ServerEndpoint(reactor, port, interface=host)
    return TCP4ServerEndpoint(reactor, port, interface=host)


class BridgeService(Service):
    """
    Listens with the bridge's site. Binding happens in C{startService}; failing to bind raises
    L{StartupError} (the node does not run without its bridge). After binding it logs the lines
    scripts read from AXL: C{Our Public Key}, C{Our IPv6}, C{Listening on host:port}.
    """

    name = "axl-bridge"

    def __init__(self, node: Node, endpoint: IStreamServerEndpoint, site: Site) -> None:
        self.node = node
        self.endpoint = endpoint
        self.site = site
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        outcome: list[Any] = []
        self.endpoint.listen(self.site).addBoth(outcome.append)
        if not outcome:  # pragma: no cover - TCP endpoints listen synchronously
            raise StartupError("the bridge endpoint did not listen synchronously")
        result = outcome[0]
        if isinstance(result, Failure):
            config = self.node.config
            where = f"{config.bridge_addr}:{config.api_port}"
            if result.check(CannotListenError):
                reason = cast(CannotListenError, result.value).socketError
                raise StartupError(
                    f"cannot listen on {where} for the HTTP bridge ({_reason(reason)}); "
                    f"set another api_port or bridge_addr in {config.source}"
                )
            raise StartupError(f"cannot listen on {where} for the HTTP bridge: {result.value}")
        self.port = result
        configured = self.node.config.bridge_addr
        shown = f"[{configured}]" if ":" in configured else configured
        log.info("Our Public Key: {key}", key=self.node.identity.public_key.hex())
        log.info("Our IPv6: {address}", address=self.node.identity.ipv6)
        log.info("Listening on {host}:{port}", host=shown, port=result.getHost().port)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()  # type: ignore[no-untyped-call]
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None


def _reason(error: object) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text[0].lower() + text[1:] if text else "unknown error"


# ---------------------------------------------------------------------------------------------
# One function per layer, called bottom to top by make_node_service. Each builds its layer,
# attaches it to the node (node.links, node.router, ...) and parents its services to `top`.


def _add_links(top: MultiService, node: Node, reactor: Any) -> None:
    """
    Peering: outbound C{Peers}, inbound C{Listen} (sets C{node.links}, a L{PeerManager}).

    The router, once built, becomes C{node.links.handler} and may set C{port_for_key},
    C{root_for_key}, C{coords_for_key} and C{latency_for_key} on it for C{/topology}.
    """
    from axl.link.peers import PeerManager
    from axl.link.uri import parse_listen_uri, parse_peer_uri

    config = node.config
    try:
        peers = [parse_peer_uri(uri) for uri in config.peers]
        listen = [parse_listen_uri(uri) for uri in config.listen]
    except ConfigError as e:
        raise ConfigError(f"{config.source}: {e}") from None
    for uri in peers + listen:
        if uri.ignored:
            log.warn("Config: {uri}: ignoring unsupported option(s) {options}",
                     uri=uri.link_uri, options=", ".join(uri.ignored))  # fmt: skip
    links = PeerManager(
        node.identity,
        reactor,
        peers=peers,
        listen=listen,
        allowed_keys=config.allowed_public_keys,
        max_backoff=config.peer_max_backoff_secs,
        multicast=config.multicast_interfaces,
    )
    links.setServiceParent(top)  # type: ignore[no-untyped-call]
    node.links = links


def _add_router(top: MultiService, node: Node, reactor: Any) -> None:
    """
    The ironwood spanning tree and routing (sets C{node.router}): the link layer's handler, and
    the source of the peer table's port / root / coords / latency. Traffic for us and accepted
    path notifies go up to C{node.overlay} (built next, by L{_add_sessions}).
    """
    from axl.mesh import Router, RouterService

    def on_traffic(source: bytes, data: bytes) -> None:
        overlay = getattr(node, "overlay", None)
        if overlay is not None:
            overlay.traffic_received(source, data)

    def on_path_notify(key: bytes) -> None:
        overlay = getattr(node, "overlay", None)
        if overlay is not None:
            overlay.path_notify(key)

    router = Router(node.identity, reactor, on_traffic, on_path_notify)
    node.router = router
    links = node.links
    if links is not None:
        links.handler = router
        links.port_for_key = router.port_for_key
        links.root_for_key = router.root_for_key
        links.coords_for_key = router.coords_for_key
        links.latency_for_key = router.latency_for_key
    RouterService(router).setServiceParent(top)  # type: ignore[no-untyped-call]


def _add_sessions(top: MultiService, node: Node, reactor: Any) -> None:
    """
    End-to-end encrypted sessions, the core proto answers (NodeInfo, debug GetSelf/GetPeers/
    GetTree) and the IPv6 carriage, built together by L{axl.ipv6.stack.build_overlay} (sets
    C{node.overlay} and C{node.sessions}). The router delivers upwards through
    C{node.overlay.traffic_received} and C{node.overlay.path_notify}.
    """
    if node.router is None:
        return
    from axl.ipv6.stack import OverlayService, build_overlay
    from axl.session.proto import node_info_json

    config = node.config
    try:
        info = node_info_json(config.node_info)
    except ConfigError as e:
        raise ConfigError(f"{config.source}: {e}") from None
    router = node.router

    def peer_keys() -> list[bytes]:
        links = node.links.links() if node.links is not None else []
        return [link.remote_key for link in links]

    def tree_keys() -> list[bytes]:
        return list(router.tree.infos)

    overlay = build_overlay(node.identity, router, reactor, info, peer_keys, tree_keys)
    node.overlay = overlay  # type: ignore[attr-defined]
    node.sessions = overlay.sessions
    OverlayService(overlay).setServiceParent(top)  # type: ignore[no-untyped-call]


def _add_ipv6(top: MultiService, node: Node, reactor: Any) -> None:
    """IPv6 carriage over sessions (sets C{node.ipv6}; built with the sessions)."""
    overlay = getattr(node, "overlay", None)
    if overlay is not None:
        node.ipv6 = overlay.ipv6


def _add_tcp(top: MultiService, node: Node, reactor: Any) -> None:
    """Userspace TCP over the overlay (sets C{node.tcp}); stopping it closes connections."""
    if node.ipv6 is None:
        return
    from axl.tcp.service import TCPService
    from axl.tcp.stack import TCPStack

    node.tcp = TCPStack(
        node.ipv6, node.identity.public_key, reactor, connect_timeout=node.config.connect_timeout_secs
    )
    TCPService(node.tcp).setServiceParent(top)  # type: ignore[no-untyped-call]


def _add_streams(top: MultiService, node: Node, reactor: Any) -> None:
    """
    The overlay message listener on C{tcp_port} and its streams (MCP, A2A, /recv queue); sets
    C{node.streams}, which the bridge serves C{/send}, C{/recv}, C{/mcp}, C{/a2a} from.
    """
    from axl.streams.service import add_streams

    add_streams(top, node, reactor)


class BridgeSite(Site):
    """
    The bridge's site. It keeps no per-request access log: local apps poll C{/recv} many times a
    second, and a line per request would flood the node's log (and stall a node whose output
    nobody reads). Errors are still logged by the handlers.
    """

    noisy = False

    def log(self, request: Any) -> None:
        pass


def _add_bridge(top: MultiService, node: Node, reactor: Any) -> None:
    """The local HTTP bridge; always the last child so it binds after every layer started."""
    # Bodies are raw messages or JSON: never parse them as HTML forms (curl --data-binary and
    # urllib send form content types; parsing a 1 MiB /send body that way costs ~35 ms).
    site = BridgeSite(Bridge(node, reactor).app.resource(), parsePOSTFormSubmission=False)  # type: ignore[no-untyped-call]
    endpoint = bridge_endpoint(reactor, node.config.bridge_addr, node.config.api_port)
    BridgeService(node, endpoint, site).setServiceParent(top)  # type: ignore[no-untyped-call]


def make_node_service(
    config: NodeConfig, reactor: Any, identity: Identity | None = None
) -> NodeService:
    """
    Build a whole node from its config.

    @param reactor: the reactor every part uses (TCP, time); tests pass a L{MemoryReactorClock}.
    @param identity: the node's identity; loaded from C{config} when not given.
    @return: a L{NodeService} with a C{node} attribute (the L{Node}).
    @raise axl.errors.ConfigError: the identity cannot be loaded.
    """
    if identity is None:
        identity = load_identity(config)
    node = Node(config, identity, reactor)
    top = NodeService()  # type: ignore[no-untyped-call]
    top.node = node  # type: ignore[attr-defined]
    NodeStartupService(node).setServiceParent(top)  # type: ignore[no-untyped-call]
    _add_links(top, node, reactor)
    _add_router(top, node, reactor)
    _add_sessions(top, node, reactor)
    _add_ipv6(top, node, reactor)
    _add_tcp(top, node, reactor)
    _add_streams(top, node, reactor)
    _add_bridge(top, node, reactor)
    return top
