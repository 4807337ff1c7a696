# -*- test-case-name: tests.test_admin_node -*-
"""
L{NodeAdminSource}: the admin commands' view of a running node (spec/yggdrasil-extras.md
section 1.6). It reads the layers' public queries (the link layer's peer table, the router's
tree and paths, the sessions, the proto handler's remote requests) and turns
C{addPeer}/C{removePeer} into changes of the running link layer (never of the config file).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

import axl
from axl.admin.codec import AdminError
from axl.admin.address import parse_admin_listen
from axl.admin.commands import (
    AdminHandler,
    AdminSource,
    PathRow,
    PeerRow,
    RemoteTimeout,
    SessionRow,
    TreeRow,
)
from axl.admin.service import AdminFactory, AdminListenService
from axl.bridge.metrics import MetricsSource
from axl.config import NodeConfig
from axl.crypto.keys import Identity
from axl.errors import ConfigError
from axl.link.meta import MAX_PASSWORD_LEN
from axl.link.multicast import MulticastInterfaceInfo
from axl.link.uri import MIN_MAX_BACKOFF, SCHEMES, PeerURI, parse_go_duration, parse_peer_uri

if TYPE_CHECKING:
    from axl.ipv6.rwc import IPv6Layer
    from axl.ipv6.stack import Overlay
    from axl.link.peers import PeerManager
    from axl.mesh.router import Router
    from axl.session.manager import SessionManager
    from axl.session.proto import ProtoHandler
    from axl.streams.recv_queue import RecvQueue
    from axl.tcp.stack import TCPStack

__all__ = ["NodeAdminSource", "admin_peer_uri", "admin_service", "node_view"]


def admin_peer_uri(text: str) -> PeerURI:
    """
    Parse an C{addPeer}/C{removePeer} URI, failing with Yggdrasil's error strings (section
    1.6.11) where it has one, else with our parser's reason.

    @raise AdminError: the URI is unusable.
    """
    try:
        parts = urlsplit(text)
    except ValueError as e:
        raise AdminError(f'unable to parse peering URI: parse "{text}": {e}') from None
    if parts.scheme.lower() not in SCHEMES:
        raise AdminError("link schema unknown")
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "priority" and (not value.isdigit() or int(value) > 255):
            raise AdminError("priority value is invalid")
        if name == "key":
            try:
                bytes.fromhex(value)
            except ValueError:
                raise AdminError("pinned public key is invalid") from None
        if name == "password" and len(value.encode("utf-8")) > MAX_PASSWORD_LEN:
            raise AdminError("invalid password supplied")
        if name == "maxbackoff":
            try:
                seconds = parse_go_duration(value)
            except ValueError:
                seconds = -1.0
            if seconds < MIN_MAX_BACKOFF:
                raise AdminError("max backoff duration invalid")
    try:
        return parse_peer_uri(text)
    except ConfigError as e:
        raise AdminError(str(e)) from None


def _remote(d: Deferred[Any]) -> Deferred[Any]:
    """Map the proto layer's timeout onto L{RemoteTimeout}."""
    from axl.session.proto import ProtoTimeout

    def failed(failure: Failure) -> Any:
        if failure.check(ProtoTimeout):
            raise RemoteTimeout(failure.getErrorMessage())
        return failure

    return d.addErrback(failed)


class _Rates:
    """
    Bytes per second on each link, from the counters' growth since the previous sample (taken
    when asked, at most once a second): Go's C{rate_recvd}/C{rate_sent}.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._last: weakref.WeakKeyDictionary[Any, tuple[float, int, int, int, int]] = (
            weakref.WeakKeyDictionary()
        )

    def rates(self, link: Any) -> tuple[int, int]:
        now = self._clock.seconds()
        rx, tx = int(link.rx_bytes), int(link.tx_bytes)
        last = self._last.get(link)
        if last is None:
            self._last[link] = (now, rx, tx, 0, 0)
            return 0, 0
        when, old_rx, old_tx, rate_rx, rate_tx = last
        if now - when >= 1.0:
            elapsed = now - when
            rate_rx = int((rx - old_rx) / elapsed)
            rate_tx = int((tx - old_tx) / elapsed)
            self._last[link] = (now, rx, tx, rate_rx, rate_tx)
        return rate_rx, rate_tx


class NodeAdminSource(AdminSource, MetricsSource):
    """
    An L{axl.admin.commands.AdminSource} over a running node's layers.

    @param links: the link layer (L{axl.link.peers.PeerManager}): C{entries()},
        C{add_peer(uri)}, C{remove_peer(link_uri)}, optionally C{multicast_interfaces()}.
    @param router: the ironwood router: C{tree_info()}, C{paths_info()}, C{peers}.
    @param sessions: the session manager: C{sessions_info()}.
    @param proto: the proto handler: C{request_node_info}, C{request_self},
        C{request_peers}, C{request_tree}.
    @param ipv6: the IPv6 layer (C{drops}), for C{/metrics}.
    @param tcp: the userspace TCP stack (C{stats}), for C{/metrics}.
    @param queue: the C{/recv} queue (C{len}, C{size_bytes}), for C{/metrics}.

    It is also the bridge's L{axl.bridge.metrics.MetricsSource}.
    """

    build_name = "axl"
    build_version = axl.__version__

    def __init__(
        self,
        public_key: bytes,
        clock: IReactorTime,
        links: PeerManager | None,
        router: Router | None,
        sessions: SessionManager | None,
        proto: ProtoHandler | None,
        multicast: Callable[[], Sequence[MulticastInterfaceInfo]] | None = None,
        ipv6: IPv6Layer | None = None,
        tcp: TCPStack | None = None,
        queue: RecvQueue | None = None,
    ) -> None:
        self.public_key = public_key
        self._clock = clock
        self._links = links
        self._router = router
        self._sessions = sessions
        self._proto = proto
        self._multicast = multicast
        self._ipv6 = ipv6
        self._tcp = tcp
        self._queue = queue
        self._rates = _Rates(clock)

    def routing_entries(self) -> int:
        return len(self._router.tree.infos) if self._router is not None else 0

    def peers(self) -> Sequence[PeerRow]:
        if self._links is None:
            return []
        now = self._clock.seconds()
        rows = []
        for entry in self._links.entries():
            link = entry.link if entry.up else None
            age = now - entry.last_error_time if entry.last_error_time is not None else None
            if link is None and entry.inbound:
                continue  # an inbound connection still in its handshake: not a peer yet (as Go)
            if link is None:
                rows.append(PeerRow(entry.uri, False, entry.inbound, last_error=entry.last_error,
                                    last_error_age=age))  # fmt: skip
                continue
            key = bytes(link.remote_key)
            routed = self._router.peers.get(link) if self._router is not None else None
            rate_rx, rate_tx = self._rates.rates(link)
            rows.append(
                PeerRow(
                    remote=entry.uri,
                    up=True,
                    inbound=entry.inbound,
                    key=key,
                    port=routed.port if routed is not None else 0,
                    priority=int(link.priority),
                    cost=routed.cost if routed is not None else 0,
                    bytes_recvd=int(link.rx_bytes),
                    bytes_sent=int(link.tx_bytes),
                    rate_recvd=rate_rx,
                    rate_sent=rate_tx,
                    uptime=float(link.uptime()),
                    latency=routed.rtt if routed is not None else None,
                )
            )
        return rows

    def tree(self) -> Sequence[TreeRow]:
        if self._router is None:
            return []
        return [
            TreeRow(bytes.fromhex(str(e["public_key"])), bytes.fromhex(str(e["parent"])),
                    _int(e["sequence"]))
            for e in self._router.tree_info()
        ]  # fmt: skip

    def paths(self) -> Sequence[PathRow]:
        if self._router is None:
            return []
        return [
            PathRow(bytes.fromhex(str(e["public_key"])), _ints(e["path"]), _int(e["sequence"]))
            for e in self._router.paths_info()
        ]

    def sessions(self) -> Sequence[SessionRow]:
        if self._sessions is None:
            return []
        return [
            SessionRow(bytes.fromhex(e["key"]), int(e["rx_bytes"]), int(e["tx_bytes"]),
                       float(e["uptime"]))
            for e in self._sessions.sessions_info()
        ]  # fmt: skip

    def root_and_depth(self) -> tuple[bytes, int]:
        """The tree's root as we see it and our distance from it in hops."""
        if self._router is None:
            return self.public_key, 0
        return bytes(self._router.root()), len(self._router.coords())

    def lookups(self) -> tuple[int, int]:
        """Lookups we started and lookups for us we answered."""
        if self._router is None:
            return 0, 0
        finder = self._router.pathfinder
        return int(finder.lookups_sent), int(finder.lookups_answered)

    def drops(self) -> dict[str, int]:
        """Packets dropped by the session, IPv6 and TCP layers, by reason."""
        out: dict[str, int] = {}
        for layer in (self._sessions, self._ipv6):
            if layer is None:
                continue
            for reason, count in layer.drops.items():
                out[reason] = out.get(reason, 0) + int(count)
        if self._tcp is not None:
            out["tcp_invalid"] = int(self._tcp.stats.get("dropped", 0))
        # packets the bounded set-up queues could not hold (or whose wait expired)
        if self._router is not None:
            out["path_lookup_held_limit"] = self._router.pathfinder.held_dropped
        if self._ipv6 is not None:
            out["address_lookup_held_limit"] = self._ipv6.pending_dropped
        if self._sessions is not None:
            out["session_held_limit"] = self._sessions.buffer_dropped
        return out

    def tcp_stats(self) -> dict[str, int]:
        """The overlay TCP stack's counters."""
        return dict(self._tcp.stats) if self._tcp is not None else {}

    def recv_queue(self) -> tuple[int, int]:
        """Messages and bytes waiting for C{/recv}."""
        if self._queue is None:
            return 0, 0
        return len(self._queue), int(self._queue.size_bytes)

    def multicast_interfaces(self) -> Sequence[MulticastInterfaceInfo]:
        return list(self._multicast()) if self._multicast is not None else []

    def request_node_info(self, key: bytes) -> Deferred[Any]:
        return _remote(self._remote_requests().request_node_info(key))

    def request_self(self, key: bytes) -> Deferred[Any]:
        return _remote(self._remote_requests().request_self(key))

    def request_peers(self, key: bytes) -> Deferred[list[bytes]]:
        return _remote(self._remote_requests().request_peers(key))

    def request_tree(self, key: bytes) -> Deferred[list[bytes]]:
        return _remote(self._remote_requests().request_tree(key))

    def _remote_requests(self) -> ProtoHandler:
        """The proto handler that asks remote nodes, or an L{AdminError} without one."""
        if self._proto is None:
            raise AdminError("this node cannot ask remote nodes")
        return self._proto

    def add_peer(self, uri: str, interface: str) -> None:
        parsed = admin_peer_uri(uri)
        if self._links is None or not self._links.add_peer(parsed):
            raise AdminError("peer is already configured")

    def remove_peer(self, uri: str, interface: str) -> None:
        parsed = admin_peer_uri(uri)
        if self._links is None or not self._links.remove_peer(parsed.link_uri):
            raise AdminError("peer is not configured")


def _int(value: object) -> int:
    """A number of a router table row (L{axl.mesh.router.Router.tree_info}, C{paths_info})."""
    if not isinstance(value, int):
        raise TypeError(f"expected an int in a router table row, got {value!r}")
    return value


def _ints(value: object) -> list[int]:
    """A path of a router table row (L{axl.mesh.router.Router.paths_info}): a list of ports."""
    if not isinstance(value, list):
        raise TypeError(f"expected a list in a router table row, got {value!r}")
    return [_int(port) for port in value]


def node_view(
    identity: Identity,
    clock: IReactorTime,
    links: PeerManager,
    router: Router,
    overlay: Overlay,
    tcp: TCPStack,
    queue: RecvQueue,
) -> NodeAdminSource:
    """The L{NodeAdminSource} over a node's layers (for the admin socket and C{/metrics})."""
    return NodeAdminSource(
        identity.public_key,
        clock,
        links=links,
        router=router,
        sessions=overlay.sessions,
        proto=overlay.proto,
        multicast=links.multicast_interfaces,
        ipv6=overlay.ipv6,
        tcp=tcp,
        queue=queue,
    )


def admin_service(config: NodeConfig, source: AdminSource, reactor: Any) -> AdminListenService | None:
    """
    The admin socket service for C{config.admin_listen} answering from C{source}; None when
    C{AdminListen} is off.
    """
    try:
        address = parse_admin_listen(config.admin_listen)
    except ConfigError as e:
        raise ConfigError(f"{config.source}: key 'AdminListen' {e}") from None
    if address is None:
        return None
    factory = AdminFactory(AdminHandler(source))
    return AdminListenService(reactor, address, factory, hint=f"set another AdminListen in {config.source}")
