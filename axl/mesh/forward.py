# -*- test-case-name: tests.test_mesh_router -*-
"""
Greedy forwarding (spec/yggdrasil-wire.md section 3.8): which peer link takes a packet closer to
a destination's coordinates, and the lowered watermark. Pure; used by the L{axl.mesh.router.Router}
for Traffic and by the L{axl.mesh.paths.Pathfinder} for notifies and path-broken notices.

The next hop is cached per destination path (raw bytes or decoded ports) until the tree, the
links or their costs change (L{Forwarder.clear}, called by the router), and at least every tick.
"""

from __future__ import annotations

from axl.mesh.peers import PeerLink, Peers
from axl.mesh.tree import Tree, tree_dist
from axl.mesh.wire import Path

__all__ = ["CACHE_LIMIT", "MAX_CACHED_PATH", "Forwarder", "Hop"]

#: Entries kept in each cache before it is emptied.
CACHE_LIMIT = 1024
#: Paths longer than this (ports, or bytes when raw) are not cached: a peer chooses the paths of
#: the Traffic it sends, up to a whole frame long, and real coordinates are a few dozen ports at
#: most; so each cache holds at most L{CACHE_LIMIT} x 64 ports (about 0.4 MiB), not whole frames.
MAX_CACHED_PATH = 64

Hop = tuple[int, PeerLink | None]
"""C{(our distance to the path, the best peer link or None)}."""


class Forwarder:
    """The greedy next-hop choice of one node over its peers and tree."""

    __slots__ = ("_hops", "_key", "_peers", "_tree")

    def __init__(self, key: bytes, peers: Peers, tree: Tree) -> None:
        self._key = key
        self._peers = peers
        self._tree = tree
        self._hops: dict[bytes | Path, Hop] = {}

    def clear(self) -> None:
        """Forget every cached hop (the tree, the links or their costs changed)."""
        self._hops.clear()

    def compute_hop(self, path: Path) -> Hop:
        """C{nextHop}'s choice for C{path}, uncached: lowest cost per distance gained, ties by
        distance then link order (section 3.8)."""
        tree = self._tree
        self_dist = tree_dist(path, tree.coords(self._key))
        best: PeerLink | None = None
        best_cpd = best_dist = 0
        for key, links in self._peers.by_key.items():
            dist = tree_dist(path, tree.coords(key))
            if dist >= self_dist:
                continue
            gain = self_dist - dist
            for peer in links:
                cpd = peer.cost // gain
                if best is None or key == best.key and peer.prio < best.prio:
                    pass
                elif key == best.key and peer.prio > best.prio:
                    continue
                elif cpd < best_cpd:
                    pass
                elif cpd > best_cpd:
                    continue
                elif dist < best_dist:
                    pass
                elif dist > best_dist or peer.order >= best.order:
                    continue
                best, best_cpd, best_dist = peer, cpd, dist
        return self_dist, best

    def hop(self, cache_key: bytes | Path, path: Path) -> Hop:
        """The cached hop for C{path} under C{cache_key} (its raw bytes or the path itself)."""
        hop = self._hops.get(cache_key)
        if hop is None:
            if cache_key is not path:
                hop = self._hops.get(path)
            if hop is None:
                hop = self.compute_hop(path)
            if len(path) > MAX_CACHED_PATH or len(cache_key) > MAX_CACHED_PATH:
                return hop
            if len(self._hops) > CACHE_LIMIT:
                self._hops.clear()
            self._hops[cache_key] = hop
        return hop

    def next_hop(self, path: Path, watermark: int) -> tuple[PeerLink | None, int]:
        """
        C{nextHop}: the link to forward a packet for C{path} on, and the lowered watermark;
        C{(None, watermark)} when we are not strictly closer than the previous hop or no peer
        is closer than us.
        """
        self_dist, peer = self.hop(path, path)
        if self_dist >= watermark:
            return None, watermark
        return peer, self_dist
