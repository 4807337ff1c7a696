# -*- test-case-name: tests.test_mesh_router -*-
"""
Finding paths (spec/yggdrasil-wire.md section 3.7): lookups multicast along the tree to peers
whose bloom filter may hold the key, signed notifies routed back greedily, path entries with
their expiry, rumors (our outstanding lookups, each holding one waiting packet), and path-broken
notices. Pure; the L{Router} owns it and does the greedy routing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from axl.crypto.address import xform
from axl.crypto.keys import Identity, short_key
from axl.mesh.blooms import Blooms
from axl.mesh.peers import Deadline, PeerLink
from axl.mesh.tree import Tree
from axl.mesh.wire import (
    FRAME_BROKEN,
    FRAME_LOOKUP,
    FRAME_NOTIFY,
    MAX_WATERMARK,
    Path,
    PathBroken,
    PathLookup,
    PathNotify,
    notify_info_bytes,
)

if TYPE_CHECKING:  # pragma: no cover
    from axl.mesh.router import Router

__all__ = ["PATH_THROTTLE_S", "PATH_TIMEOUT_S", "PathEntry", "Pathfinder"]

#: Path entries and rumors live this long (C{pathTimeout}).
PATH_TIMEOUT_S = 60.0
#: At most one lookup per destination this often (C{pathThrottle}).
PATH_THROTTLE_S = 1.0


class PathEntry:
    """A known path to a full key: its coords as its owner signed them."""

    __slots__ = ("broken", "path", "req_time", "seq", "timer", "traffic")

    def __init__(self, req_time: float, timer: Deadline) -> None:
        self.path: Path = ()
        self.seq = 0
        self.req_time = req_time
        self.timer = timer
        self.traffic: bytes | None = None  # the last packet sent there, re-sent on a new path
        self.broken = False


class _Rumor:
    __slots__ = ("send_time", "timer", "traffic")

    def __init__(self, send_time: float, timer: Deadline) -> None:
        self.send_time = send_time
        self.timer = timer
        self.traffic: tuple[bytes, bytes] | None = None  # (dest, data) waiting for a path


class Pathfinder:
    """Path entries, rumors and the lookup / notify / broken protocol of one node."""

    log = Logger()

    def __init__(
        self,
        identity: Identity,
        clock: IReactorTime,
        tree: Tree,
        blooms: Blooms,
        router: Router,
        on_path_notify: Callable[[bytes], None],
    ) -> None:
        self.identity = identity
        self.key = identity.public_key
        self._xself = xform(self.key)
        self.clock = clock
        self.tree = tree
        self.blooms = blooms
        self.router = router
        self._on_path_notify = on_path_notify
        self.paths: dict[bytes, PathEntry] = {}
        self.rumors: dict[bytes, _Rumor] = {}
        self._info: tuple[int, Path, bytes] | None = None  # our last signed (seq, path, sig)
        self.lookups_sent = 0  # lookups we started (for /metrics)
        self.lookups_answered = 0  # lookups for us that we answered with a notify

    # -- sending ---------------------------------------------------------------------------

    def send_traffic(self, dest: bytes, data: bytes) -> None:
        """Send along the known path, or look the key up and keep the packet (newest wins)."""
        entry = self.paths.get(dest)
        if entry is not None:
            entry.traffic = data
            self.router.route_traffic(
                entry.path, self.tree.coords(self.key), self.key, dest, MAX_WATERMARK, data
            )
            return
        # Park the packet before looking up: the notify may come back synchronously.
        self.rumor_send_lookup(dest, (dest, data))

    def rumor_send_lookup(self, dest: bytes, traffic: tuple[bytes, bytes] | None = None) -> None:
        """
        Start or refresh the rumor for C{xform(dest)}, park C{traffic} in it (newest wins) and
        look the key up (1/s at most).
        """
        now = self.clock.seconds()
        xdest = xform(dest)
        rumor = self.rumors.get(xdest)
        if rumor is None:
            rumor = self.rumors[xdest] = _Rumor(
                now, Deadline(self.clock, PATH_TIMEOUT_S, lambda: self._expire_rumor(xdest))
            )
            send = True
        else:
            send = now - rumor.send_time >= PATH_THROTTLE_S
            if send:
                rumor.send_time = now
                rumor.timer.reset(PATH_TIMEOUT_S)
        if traffic is not None:
            rumor.traffic = traffic
        if send:
            self._send_lookup(dest)

    def _send_lookup(self, dest: bytes) -> None:
        entry = self.paths.get(dest)
        if entry is not None and self.clock.seconds() - entry.req_time < PATH_THROTTLE_S:
            return
        self.lookups_sent += 1
        self._handle_lookup(self.key, PathLookup(self.key, dest, self.tree.coords(self.key)))

    # -- lookups ---------------------------------------------------------------------------

    def handle_lookup(self, peer: PeerLink, payload: bytes) -> None:
        lookup = PathLookup.decode(payload)
        if self.blooms.is_on_tree(peer.key):
            self._handle_lookup(peer.key, lookup)

    def _handle_lookup(self, from_key: bytes, lookup: PathLookup) -> None:
        targets = self.blooms.multicast_targets(lookup.dest, from_key)
        if targets:
            payload = lookup.encode()
            for peer in targets:
                peer.send(FRAME_LOOKUP, payload)
        if xform(lookup.dest) != self._xself:
            return
        seq = int(self.clock.seconds())
        path = self.tree.coords(self.key)
        info = self._info
        if info is None or info[0] != seq or info[1] != path:
            info = self._info = (seq, path, self.identity.sign(notify_info_bytes(seq, path)))
        notify = PathNotify(lookup.from_path, MAX_WATERMARK, self.key, lookup.source, *info)
        self.lookups_answered += 1
        self._handle_notify(notify)

    # -- notifies --------------------------------------------------------------------------

    def handle_notify(self, peer: PeerLink, payload: bytes) -> None:
        self._handle_notify(PathNotify.decode(payload))

    def _handle_notify(self, notify: PathNotify) -> None:
        peer, watermark = self.router.next_hop(notify.path, notify.watermark)
        if peer is not None:
            peer.send(
                FRAME_NOTIFY,
                PathNotify(
                    notify.path,
                    watermark,
                    notify.source,
                    notify.dest,
                    notify.info_seq,
                    notify.info_path,
                    notify.info_sig,
                ).encode(),
            )
            return
        if notify.dest != self.key:
            return
        source = notify.source
        entry = self.paths.get(source)
        if entry is not None:
            if notify.info_seq <= entry.seq or notify.info_path == entry.path:
                return
            if not notify.verify():
                self.log.warn("bad notify signature from {key}", key=short_key(source))  # noqa: G010 - twisted.logger
                return
            entry.timer.reset(PATH_TIMEOUT_S)
        else:
            rumor = self.rumors.get(xform(source))
            if rumor is None:
                return
            if not notify.verify():
                self.log.warn("bad notify signature from {key}", key=short_key(source))  # noqa: G010 - twisted.logger
                return
            entry = PathEntry(
                self.clock.seconds(),
                Deadline(self.clock, PATH_TIMEOUT_S, lambda: self._expire_path(source)),
            )
            if rumor.traffic is not None and rumor.traffic[0] == source:
                entry.traffic = rumor.traffic[1]
                rumor.traffic = None
        entry.path = notify.info_path
        entry.seq = notify.info_seq
        entry.broken = False
        pending, entry.traffic = entry.traffic, None
        self.paths[source] = entry
        try:
            self._on_path_notify(source)
        except Exception:  # noqa: BLE001 - an upper-layer bug must not drop the link
            self.log.failure("path notify callback failed")
        if pending is not None:
            self.send_traffic(source, pending)

    # -- broken paths ----------------------------------------------------------------------

    def handle_broken(self, peer: PeerLink, payload: bytes) -> None:
        self._handle_broken(PathBroken.decode(payload))

    def do_broken(self, from_path: Path, source: bytes, dest: bytes) -> None:
        """Traffic from C{source} to C{dest} is stuck here: tell the source along C{from}."""
        self._handle_broken(PathBroken(from_path, MAX_WATERMARK, source, dest))

    def _handle_broken(self, broken: PathBroken) -> None:
        peer, watermark = self.router.next_hop(broken.path, broken.watermark)
        if peer is not None:
            peer.send(
                FRAME_BROKEN,
                PathBroken(broken.path, watermark, broken.source, broken.dest).encode(),
            )
            return
        if broken.source != self.key:
            return
        entry = self.paths.get(broken.dest)
        if entry is not None:
            entry.broken = True
            self._send_lookup(broken.dest)

    # -- timers ----------------------------------------------------------------------------

    def reset_timeout(self, source: bytes) -> None:
        """Traffic from C{source} reached us: keep its path entry (unless it is broken)."""
        entry = self.paths.get(source)
        if entry is not None and not entry.broken:
            entry.timer.reset(PATH_TIMEOUT_S)

    def _expire_path(self, key: bytes) -> None:
        self.paths.pop(key, None)

    def _expire_rumor(self, xkey: bytes) -> None:
        self.rumors.pop(xkey, None)

    def stop(self) -> None:
        for entry in self.paths.values():
            entry.timer.cancel()
        for rumor in self.rumors.values():
            rumor.timer.cancel()
        self.paths.clear()
        self.rumors.clear()

    def paths_info(self) -> list[dict[str, object]]:
        """Like Go's C{GetPaths}: C{{public_key, path, sequence}} per path entry."""
        return [
            {"public_key": key.hex(), "path": list(entry.path), "sequence": entry.seq}
            for key, entry in self.paths.items()
        ]
