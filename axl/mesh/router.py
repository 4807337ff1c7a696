# -*- test-case-name: tests.test_mesh_router -*-
"""
L{Router}: the ironwood network layer of one node (spec/yggdrasil-wire.md section 3), sans-IO.

It is the link layer's L{ILinkHandler} (links come up and go down, frames 2..9 arrive) and the
session layer's L{IRouter} (C{send}, C{send_lookup}; delivered packets and accepted notifies go
up through the callables given at construction). All timers use the injected clock; nonces
come from the injected C{randbytes}.

Traffic forwarding is the hot path: a received Traffic frame is not decoded into an object.
Its two paths are located with C{bytes.find}, the next hop comes from the L{Forwarder}'s cache
(per destination path, until the tree, the links or their costs change, and at least every
tick), and the frame is forwarded as the received bytes with only the watermark replaced.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from axl.crypto.keys import Identity, short_key
from axl.encoding import uvarint_decode, uvarint_encode
from axl.errors import DecodeError, ProtocolError
from axl.interfaces import ILink, ILinkHandler, IRouter
from axl.logs import observer as log_observer
from axl.mesh.blooms import Blooms
from axl.mesh.limits import FrameLimiter
from axl.mesh.forward import CACHE_LIMIT, MAX_CACHED_PATH, Forwarder
from axl.mesh.paths import Pathfinder
from axl.mesh.peers import PeerLink, Peers
from axl.mesh.tree import Tree
from axl.mesh.wire import (
    FRAME_ANNOUNCE,
    FRAME_BLOOM,
    FRAME_BROKEN,
    FRAME_LOOKUP,
    FRAME_NOTIFY,
    FRAME_SIGREQ,
    FRAME_SIGRES,
    FRAME_TRAFFIC,
    Path,
    Traffic,
    decode_path,
)

__all__ = ["MAX_FRAME_SIZE", "NETWORK_MTU", "TICK_S", "Router"]

#: Yggdrasil's C{peerMaxMessageSize}: the largest frame (type byte included).
MAX_FRAME_SIZE = 131070
#: The largest C{data} of a Traffic packet with empty paths (section 3.9): 130993.
NETWORK_MTU = MAX_FRAME_SIZE - 77
#: The maintenance tick.
TICK_S = 1.0



@implementer(ILinkHandler, IRouter)
class Router:
    """
    The ironwood router of one node.

    @ivar public_key: our key.
    @ivar mtu: the largest C{data} L{send} accepts (L{NETWORK_MTU}).
    """

    log = Logger(observer=log_observer)
    mtu = NETWORK_MTU

    def __init__(
        self,
        identity: Identity,
        clock: IReactorTime,
        on_traffic: Callable[[bytes, bytes], None],
        on_path_notify: Callable[[bytes], None] = lambda key: None,
        randbytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.identity = identity
        self.public_key = identity.public_key
        self.clock = clock
        self._on_traffic = on_traffic
        self.peers = Peers()
        self.tree = Tree(identity, clock, randbytes, self.peers, self._topology_changed)
        self.blooms = Blooms(self.public_key, self.peers, self._state_changed)
        self.forwarder = Forwarder(self.public_key, self.peers, self.tree)
        self.pathfinder = Pathfinder(
            identity, clock, self.tree, self.blooms, self.forwarder, self.route_traffic,
            on_path_notify,
        )  # fmt: skip
        self._limits: dict[bytes, FrameLimiter] = {}
        self._valid_paths: dict[bytes, Path] = {}
        self._tick_call: IDelayedCall | None = None
        self._refresh_call: IDelayedCall | None = None
        self._running = False
        self._stopped = False
        self._handlers: dict[int, Callable[[PeerLink, bytes], None]] = {
            FRAME_SIGREQ: self.tree.handle_sigreq,
            FRAME_SIGRES: self.tree.handle_sigres,
            FRAME_ANNOUNCE: self.tree.handle_announce,
            FRAME_BLOOM: self.blooms.handle_bloom,
            FRAME_LOOKUP: self.pathfinder.handle_lookup,
            FRAME_NOTIFY: self.pathfinder.handle_notify,
            FRAME_BROKEN: self.pathfinder.handle_broken,
            FRAME_TRAFFIC: self._traffic_received,
        }

    def __repr__(self) -> str:
        return f"<Router {short_key(self.public_key)}>"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Run the first maintenance tick now (we become root) and every second after."""
        if self._running:
            return
        self._running = True
        self._stopped = False
        self._tick()

    def stop(self) -> None:
        """Stop every timer; afterwards link events and frames are ignored."""
        self._running = False
        self._stopped = True
        if self._tick_call is not None and self._tick_call.active():
            self._tick_call.cancel()
        self._tick_call = None
        if self._refresh_call is not None and self._refresh_call.active():
            self._refresh_call.cancel()
        self._refresh_call = None
        self.tree.stop()
        self.pathfinder.stop()

    def _tick(self) -> None:
        self._tick_call = None
        self.tree.maintain()
        self._refresh_blooms(tick=True)
        self.pathfinder.retry_lookups()
        if self._running:
            self._tick_call = self.clock.callLater(TICK_S, self._tick)

    def _refresh_blooms(self, tick: bool) -> None:
        infos = self.tree.infos
        me = infos.get(self.public_key)

        def parent_of(key: bytes) -> bytes | None:
            info = infos.get(key)
            return info.parent if info is not None else None

        self.blooms.maintain(me.parent if me is not None else None, parent_of, tick)

    def _topology_changed(self) -> None:
        self.forwarder.clear()
        self._state_changed()

    def _state_changed(self) -> None:
        """The tree or a peer's filter changed: refresh filters and lookups once this turn."""
        if self._running and self._refresh_call is None:
            self._refresh_call = self.clock.callLater(0, self._refresh)

    def _refresh(self) -> None:
        self._refresh_call = None
        if not self._running:
            return
        self._refresh_blooms(tick=False)
        self.pathfinder.retry_lookups()

    # -- ILinkHandler ----------------------------------------------------------------------

    def link_up(self, link: ILink) -> None:
        if self._stopped:
            return
        if bytes(link.remote_key) == self.public_key:
            self.log.warn("closing a link to our own key ({uri})", uri=link.uri)  # noqa: G010 - twisted.logger
            link.close("connection to our own key")
            return
        peer, first = self.peers.add(link)
        if first:
            self._limits[peer.key] = FrameLimiter(self.clock)
        self.forwarder.clear()
        self.tree.link_up(peer, first)
        self.blooms.link_up(peer, first)

    def link_down(self, link: ILink) -> None:
        peer, last = self.peers.remove(link)
        if peer is None:
            return
        if last:
            self._limits.pop(peer.key, None)
        self.forwarder.clear()
        self.tree.link_down(peer, last)
        self.blooms.link_down(peer, last)

    def frame_received(self, link: ILink, frame_type: int, payload: bytes) -> None:
        """
        Handle one frame of type 2..9.

        Frames over the per-peer limits of L{axl.mesh.limits} are ignored.

        @raise ProtocolError: (or L{DecodeError}) the frame does not decode exactly, a
            signature that must verify does not, or the type is unknown: drop the link.
        @raise PeerFlooding: the peer keeps going over its limits: drop the link.
        """
        peer = self.peers.get(link)
        if peer is None or self._stopped:
            return
        handler = self._handlers.get(frame_type)
        if handler is None:
            raise ProtocolError(f"unrecognised frame type {frame_type}")
        if frame_type != FRAME_TRAFFIC and not self._limits[peer.key].allow(frame_type):
            return
        if type(payload) is not bytes:
            payload = bytes(payload)
        handler(peer, payload)

    # -- IRouter ---------------------------------------------------------------------------

    def send(self, dest_key: bytes, data: bytes) -> None:
        """
        Send C{data} to the full key C{dest_key} (looked up first when no path is known).

        @raise ValueError: the key is not 32 bytes or C{data} exceeds L{mtu}.
        """
        if len(dest_key) != 32:
            raise ValueError(f"a destination key is 32 bytes, not {len(dest_key)}")
        if len(data) > self.mtu:
            raise ValueError(f"packet of {len(data)} bytes exceeds the network MTU {self.mtu}")
        if self._stopped:
            return
        self.pathfinder.send_traffic(bytes(dest_key), bytes(data))

    def send_lookup(self, partial_key: bytes) -> None:
        """Look up a (possibly partial) key; its owner's notify fires C{on_path_notify}."""
        if len(partial_key) != 32:
            raise ValueError(f"a key is 32 bytes, not {len(partial_key)}")
        if self._stopped:
            return
        self.pathfinder.rumor_send_lookup(bytes(partial_key))

    # -- greedy routing (section 3.8) ------------------------------------------------------

    def next_hop(self, path: Path, watermark: int) -> tuple[PeerLink | None, int]:
        """L{Forwarder.next_hop} (kept for callers of the router)."""
        return self.forwarder.next_hop(path, watermark)

    def route_traffic(
        self, path: Path, from_path: Path, source: bytes, dest: bytes, watermark: int, data: bytes
    ) -> None:
        """Forward, deliver, or report a broken path for one (decoded) Traffic packet."""
        peer, watermark = self.forwarder.next_hop(path, watermark)
        if peer is not None:
            peer.send(
                FRAME_TRAFFIC, Traffic(path, from_path, source, dest, watermark, data).encode()
            )
        elif dest == self.public_key:
            self.pathfinder.traffic_from(source, from_path)
            self._deliver(source, data)
        else:
            self.pathfinder.do_broken(from_path, source, dest)

    def _deliver(self, source: bytes, data: bytes) -> None:
        try:
            self._on_traffic(source, data)
        except Exception:  # noqa: BLE001 - an upper-layer bug must not drop the link
            self.log.failure(
                "traffic callback failed for a packet from {key}", key=short_key(source)
            )

    def _path_at(self, payload: bytes, start: int) -> tuple[bytes, Path, int] | None:
        """
        The path at C{start}: its raw bytes, ports and end; None when its encoding is not
        canonical (then the whole packet is decoded and re-encoded instead).
        """
        end = payload.find(0, start)
        if end < 0:
            raise DecodeError("truncated path")
        raw = payload[start:end]
        path = self._valid_paths.get(raw)
        if path is not None:
            return raw, path, end + 1
        path, stop = decode_path(payload, start)
        if stop != end + 1:
            return None
        if len(raw) > MAX_CACHED_PATH:
            return raw, path, stop
        if len(self._valid_paths) > CACHE_LIMIT:
            self._valid_paths.clear()
        self._valid_paths[raw] = path
        return raw, path, stop

    def _traffic_received(self, peer: PeerLink, payload: bytes) -> None:
        found = self._path_at(payload, 0)
        found_from = self._path_at(payload, found[2]) if found is not None else None
        if found is None or found_from is None:
            tr = Traffic.decode(payload)  # non-canonical varints: decode and re-encode
            self.route_traffic(tr.path, tr.from_path, tr.source, tr.dest, tr.watermark, tr.data)
            return
        raw_path = found[0]
        keys_at = found_from[2]
        wm_at = keys_at + 64
        watermark, data_at = uvarint_decode(payload, wm_at)
        self_dist, best = self.forwarder.hop(raw_path, found[1])
        if self_dist < watermark and best is not None:
            best.send(
                FRAME_TRAFFIC,
                b"".join([payload[:wm_at], uvarint_encode(self_dist), payload[data_at:]]),
            )
            return
        source = payload[keys_at : keys_at + 32]
        dest = payload[keys_at + 32 : wm_at]
        if dest == self.public_key:
            self.pathfinder.traffic_from(source, found_from[1])
            self._deliver(source, payload[data_at:])
            return
        self.pathfinder.do_broken(found_from[1], source, dest)

    # -- queries for /topology and the link peer table -------------------------------------

    def tree_info(self) -> list[dict[str, object]]:
        """C{{public_key, parent, sequence}} per known tree entry, ourselves included."""
        return self.tree.tree_info()

    def paths_info(self) -> list[dict[str, object]]:
        """C{{public_key, path, sequence}} per known path (Go's C{GetPaths}, for C{/topology})."""
        return self.pathfinder.paths_info()

    def port_for_key(self, key: bytes) -> int:
        """Our ironwood port for a peer key (0 when no link to it is up)."""
        return self.peers.port_for_key(key)

    def root_for_key(self, key: bytes) -> bytes | None:
        """The root of C{key}'s tree as our entries show it (None if we have no entry)."""
        if key not in self.tree.infos:
            return None
        return self.tree.root_and_path(key)[0]

    def coords_for_key(self, key: bytes) -> list[int] | None:
        """C{key}'s coordinates from our entries (None if we have no entry)."""
        if key not in self.tree.infos:
            return None
        return list(self.tree.coords(key))

    def latency_for_key(self, key: bytes) -> float | None:
        """The last SigReq to SigRes time (seconds) on the preferred link to C{key}."""
        if key not in self.peers:
            return None
        return self.peers.best_link(key).rtt

    def root(self) -> bytes:
        """Our current root key (ourselves until we join someone)."""
        return self.tree.root_and_path(self.public_key)[0]

    def coords(self) -> list[int]:
        """Our coordinates (empty while we are root)."""
        return list(self.tree.coords(self.public_key))

    def parent(self) -> bytes:
        """Our parent's key (our own while we are root, and before our first tree entry)."""
        info = self.tree.infos.get(self.public_key)
        return info.parent if info is not None else self.public_key
