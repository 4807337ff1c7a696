# -*- test-case-name: tests.test_mesh_router -*-
"""
Per-peer bloom filter state (spec/yggdrasil-wire.md section 3.6): which peers are on-tree, the
filter each sent us, the filter we last sent each, and the multicast of lookups along the tree.

We send the exact union (the spec allows it; Go's "zDirty" keeps stale 1-bits a tick or more
longer, which only costs false positives). Unlike Go, which recomputes and sends filters only on
its 1 s tick (so a key's bit moves one hop per tick), the router also calls L{Blooms.maintain}
with C{tick=False} right after a received filter or the tree changed: a new key's bit crosses
the whole tree in one round trip per hop, and lookups waiting for it can go out at once.
"""

from __future__ import annotations

from collections.abc import Callable

from axl.crypto.address import xform
from axl.mesh.bloom import (
    EMPTY_BLOOM,
    bloom_contains,
    bloom_mask,
    decode_bloom,
    encode_bloom,
)
from axl.mesh.peers import PeerLink, Peers
from axl.mesh.wire import FRAME_BLOOM

__all__ = ["RESEND_TICKS", "Blooms"]

#: An unchanged filter is re-sent after this many ticks anyway (about an hour).
RESEND_TICKS = 3600

_EMPTY_PAYLOAD = encode_bloom(EMPTY_BLOOM)


class _PeerBloom:
    __slots__ = ("on_tree", "recv", "send", "send_payload", "seq")

    def __init__(self) -> None:
        self.send = EMPTY_BLOOM
        self.send_payload = _EMPTY_PAYLOAD
        self.recv = EMPTY_BLOOM
        self.seq = 0
        self.on_tree = False


class Blooms:
    """The bloom state of every peer key with at least one link up."""

    def __init__(
        self, self_key: bytes, peers: Peers, on_change: Callable[[], None] = lambda: None
    ) -> None:
        """
        @param on_change: called when a peer's filter to us changed (the router then refreshes
            our filters and retries waiting lookups).
        """
        self._self_key = self_key
        self._self_mask = bloom_mask(xform(self_key))
        self._peers = peers
        self._on_change = on_change
        self._state: dict[bytes, _PeerBloom] = {}

    def is_on_tree(self, key: bytes) -> bool:
        """
        Whether the peer with C{key} was our parent or child at the last L{maintain} (lookups and
        filters travel only between on-tree peers).
        """
        state = self._state.get(key)
        return state is not None and state.on_tree

    def recv_filter(self, key: bytes) -> int:
        """The last filter the peer with C{key} sent us (empty for a key with no link up)."""
        state = self._state.get(key)
        return state.recv if state is not None else EMPTY_BLOOM

    def sent_filter(self, key: bytes) -> int:
        """The filter we last sent the peer with C{key} (empty for a key with no link up)."""
        state = self._state.get(key)
        return state.send if state is not None else EMPTY_BLOOM

    def link_up(self, peer: PeerLink, first: bool) -> None:
        """Create the state for a new key; send our current filter on the new link."""
        state = self._state.get(peer.key)
        if state is None:
            state = self._state[peer.key] = _PeerBloom()
        peer.send(FRAME_BLOOM, state.send_payload)

    def link_down(self, peer: PeerLink, last: bool) -> None:
        """Drop a gone key's state, or re-send our filter to the key's remaining links."""
        if last:
            self._state.pop(peer.key, None)
            return
        state = self._state.get(peer.key)
        if state is not None:
            self._peers.send(peer.key, FRAME_BLOOM, state.send_payload)

    def handle_bloom(self, peer: PeerLink, payload: bytes) -> None:
        """Store a received filter (decode errors close the link)."""
        bloom = decode_bloom(payload)
        state = self._state.get(peer.key)
        if state is not None and state.recv != bloom:
            state.recv = bloom
            self._on_change()

    def maintain(
        self, parent: bytes | None, parent_of: Callable[[bytes], bytes | None], tick: bool = True
    ) -> None:
        """
        Recompute on-tree peers (our parent and our children), send each on-tree peer the union
        of our key and the other on-tree peers' filters when it changed (and, on a C{tick},
        every L{RESEND_TICKS} ticks anyway), and an empty filter to peers that left the tree.
        """
        me = self._self_key
        for key, state in self._state.items():
            was_on = state.on_tree
            state.on_tree = key == parent or parent_of(key) == me
            if was_on and not state.on_tree:
                state.send = EMPTY_BLOOM
                state.send_payload = _EMPTY_PAYLOAD
                self._peers.send(key, FRAME_BLOOM, _EMPTY_PAYLOAD)
        on_tree = [(k, s) for k, s in self._state.items() if s.on_tree]
        for key, state in on_tree:
            bloom = self._self_mask
            for other, other_state in on_tree:
                if other != key:
                    bloom |= other_state.recv
            if tick:
                state.seq += 1
            if bloom != state.send:
                state.send = bloom
                state.send_payload = encode_bloom(bloom)
            elif state.seq < RESEND_TICKS:
                continue
            state.seq = 0
            self._peers.send(key, FRAME_BLOOM, state.send_payload)

    def target_keys(self, dest: bytes, from_key: bytes) -> frozenset[bytes]:
        """The keys of the peers L{multicast_targets} would send a lookup of C{dest} to."""
        item = xform(dest)
        return frozenset(
            key
            for key, state in self._state.items()
            if state.on_tree and key != from_key and bloom_contains(state.recv, item)
        )

    def tree_link(self, key: bytes) -> PeerLink | None:
        """The best link to C{key} if it is an on-tree peer (our parent or a child), else None."""
        state = self._state.get(key)
        if state is None or not state.on_tree:
            return None
        return self._peers.best_link(key)

    def multicast_targets(self, dest: bytes, from_key: bytes) -> list[PeerLink]:
        """
        For a lookup of C{dest} received from C{from_key}: one link (lowest priority value) to
        every on-tree peer other than C{from_key} whose filter may hold C{xform(dest)}.
        """
        item = xform(dest)
        return [
            self._peers.best_link(key)
            for key, state in self._state.items()
            if state.on_tree and key != from_key and bloom_contains(state.recv, item)
        ]
