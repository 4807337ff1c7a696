# -*- test-case-name: tests.test_session_harness -*-
"""
An in-memory harness for the layers above the router: L{FakeNetwork} stands in for the mesh
(every L{FakeRouter} reaches every other one, optionally through relays), L{Stack} is one node's
sessions + core + IPv6 layer on a fake router (spec/yggdrasil-wire.md sections 4 and 5). For
tests of this layer and the ones above it.

Packets are queued and delivered by L{FakeNetwork.flush}, never re-entrantly, so a test can
look at, drop, tamper with or replay what is on the "wire".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from axl.crypto.address import addr_for_key, key_for_addr, key_for_subnet, subnet_for_key
from axl.crypto.keys import Identity
from axl.interfaces import IRouter
from axl.ipv6.stack import build_overlay
from axl.session.proto import node_info_json

__all__ = ["FakeNetwork", "FakeRouter", "Stack", "Wire"]

Wire = tuple[bytes, bytes, bytes]
"""C{(source_key, dest_key, data)}: one encrypted-layer packet in flight."""


@implementer(IRouter)
class FakeRouter:
    """
    An L{IRouter} on a L{FakeNetwork}. C{on_traffic} and C{on_path_notify} are the upward
    callbacks the real router has.
    """

    def __init__(self, network: FakeNetwork, public_key: bytes) -> None:
        self.network = network
        self.public_key = public_key
        self.on_traffic: Callable[[bytes, bytes], None] | None = None
        self.on_path_notify: Callable[[bytes], None] | None = None
        self.lookups: list[bytes] = []

    def send(self, dest_key: bytes, data: bytes) -> None:
        self.network.queue.append((self.public_key, bytes(dest_key), bytes(data)))

    def send_lookup(self, partial_key: bytes) -> None:
        self.lookups.append(bytes(partial_key))
        self.network.lookup(self.public_key, bytes(partial_key))


class FakeNetwork:
    """
    Routers that reach each other. C{relays[(a, b)]} lists the keys a packet from C{a} to C{b}
    passes through (recorded in L{hops}); C{filter(wire) -> wire | None} may drop or rewrite
    each packet; L{sent} keeps everything that was delivered.
    """

    def __init__(self) -> None:
        self.routers: dict[bytes, FakeRouter] = {}
        self.queue: deque[Wire] = deque()
        self.sent: list[Wire] = []
        self.hops: list[tuple[bytes, bytes]] = []
        self.relays: dict[tuple[bytes, bytes], Sequence[bytes]] = {}
        self.filter: Callable[[Wire], Wire | None] | None = None
        self._notifies: deque[tuple[bytes, bytes]] = deque()

    def router(self, public_key: bytes) -> FakeRouter:
        """Attach a new L{FakeRouter} for C{public_key} (replacing an earlier one); return it."""
        router = self.routers[public_key] = FakeRouter(self, public_key)
        return router

    def lookup(self, requester: bytes, partial: bytes) -> None:
        """
        C{requester} looks up the partial key C{partial}: queue a path notify for it for each
        attached router whose address or subnet names C{partial} (delivered by L{flush}).
        """
        for key in self.routers:
            if (
                key_for_addr(addr_for_key(key)) == partial
                or key_for_subnet(subnet_for_key(key)) == partial
            ):
                self._notifies.append((requester, key))

    def flush(self, limit: int = 10000) -> int:
        """Deliver queued packets and notifies until none are left; return how many."""
        count = 0
        while self.queue or self._notifies:
            count += 1
            if count > limit:
                raise AssertionError("the fake network did not settle")
            if self._notifies:
                requester, key = self._notifies.popleft()
                router = self.routers.get(requester)
                if router is not None and router.on_path_notify is not None:
                    router.on_path_notify(key)
                continue
            wire = self.queue.popleft()
            if self.filter is not None:
                filtered = self.filter(wire)
                if filtered is None:
                    continue
                wire = filtered
            source, dest, data = wire
            for hop in self.relays.get((source, dest), ()):
                self.hops.append((hop, dest))
            self.sent.append(wire)
            router = self.routers.get(dest)
            if router is not None and router.on_traffic is not None:
                router.on_traffic(source, data)
        return count


class Stack:
    """
    One node above the router: sessions, core dispatch, proto answers and the IPv6 layer, wired
    as C{axl.service} wires them. C{received[nh]} collects delivered packets per next header
    registered with L{listen}.

    The clock must read a realistic Unix time (e.g. C{Clock().advance(1.7e9)}): init times are
    whole seconds and, as in Go, an init with time 0 can never create a session.
    """

    def __init__(
        self,
        network: FakeNetwork,
        identity: Identity,
        clock: IReactorTime,
        node_info: dict[str, Any] | None = None,
        peer_keys: Callable[[], Sequence[bytes]] = lambda: [],
        tree_keys: Callable[[], Sequence[bytes]] = lambda: [],
        build: dict[str, str] | None = None,
    ) -> None:
        self.identity = identity
        self.router = network.router(identity.public_key)
        self.overlay = build_overlay(
            identity,
            self.router,
            clock,
            node_info_json(node_info or {}, build),
            peer_keys,
            tree_keys,
        )
        self.sessions = self.overlay.sessions
        self.proto = self.overlay.proto
        self.core = self.overlay.core
        self.ipv6 = self.overlay.ipv6
        self.router.on_traffic = self.overlay.traffic_received
        self.router.on_path_notify = self.overlay.path_notify
        self.received: dict[int, list[tuple[bytes, bytes]]] = {}

    @property
    def public_key(self) -> bytes:
        """This node's ed25519 public key."""
        return self.identity.public_key

    def listen(self, next_header: int) -> list[tuple[bytes, bytes]]:
        """Collect incoming packets with C{next_header}; returns the list they go into."""
        got = self.received.setdefault(next_header, [])
        self.ipv6.register_protocol(next_header, lambda key, packet: got.append((key, packet)))
        return got

    def stop(self) -> None:
        """Cancel every timer of the stack."""
        self.overlay.stop()
