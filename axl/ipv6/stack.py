# -*- test-case-name: tests.test_session_harness -*-
"""
The layers between the router and the userspace TCP, built and wired in one place:
sessions -> core dispatch (+ proto answers) -> IPv6 carriage (spec/yggdrasil-wire.md sections
4 and 5.1-5.3). C{axl.service} and the test harnesses both use L{build_overlay}.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime

from axl.crypto.keys import Identity
from axl.interfaces import IRouter
from axl.ipv6.rwc import IPv6Layer
from axl.ipv6.udp import UDPLayer
from axl.session.manager import SessionManager
from axl.session.proto import Core, ProtoHandler

__all__ = ["Overlay", "OverlayService", "build_overlay"]


@dataclass
class Overlay:
    """
    One node's session and IPv6 layers. The router must call L{traffic_received} for every
    packet addressed to us and L{path_notify} for every path notify.
    """

    sessions: SessionManager
    proto: ProtoHandler
    core: Core
    ipv6: IPv6Layer
    udp: UDPLayer | None = None

    def traffic_received(self, source_key: bytes, data: bytes) -> None:
        """The router's C{on_traffic}."""
        self.sessions.traffic_received(source_key, data)

    def path_notify(self, full_key: bytes) -> None:
        """The router's C{on_path_notify}."""
        self.ipv6.path_notify(full_key)

    def stop(self) -> None:
        """Cancel every timer and outstanding request."""
        self.sessions.stop()
        self.proto.stop()
        self.ipv6.stop()


def build_overlay(
    identity: Identity,
    router: IRouter,
    clock: IReactorTime,
    node_info: bytes,
    peer_keys: Callable[[], Sequence[bytes]],
    tree_keys: Callable[[], Sequence[bytes]],
    routing_entries: Callable[[], int] | None = None,
) -> Overlay:
    """
    Build the sessions, the proto handler, the core dispatch and the IPv6 layer over C{router}.

    @param node_info: the NodeInfo JSON (L{axl.session.proto.node_info_json}).
    @param peer_keys: keys of the peers whose links are up (for GetPeers answers).
    @param tree_keys: keys of our spanning-tree entries (for GetTree answers).
    """
    sessions = SessionManager(identity, router, clock)
    proto = ProtoHandler(
        sessions, identity.public_key, clock, node_info, peer_keys, tree_keys, routing_entries
    )
    core = Core(proto)
    ipv6 = IPv6Layer(identity.public_key, sessions, router, clock)
    sessions.deliver = core.received
    core.ipv6_received = ipv6.packet_received
    return Overlay(sessions, proto, core, ipv6, UDPLayer(ipv6))


class OverlayService(Service):
    """Stops the overlay's timers and outstanding requests when the node stops."""

    name = "axl-overlay"

    def __init__(self, overlay: Overlay) -> None:
        self.overlay = overlay

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        self.overlay.stop()
