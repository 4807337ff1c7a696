# -*- test-case-name: tests.test_mesh_router -*-
"""
Finding paths (spec/yggdrasil-wire.md section 3.7): lookups multicast along the tree to peers
whose bloom filter may hold the key, signed notifies routed back greedily, path entries with
their expiry, rumors (our outstanding lookups and the packets waiting for them), and path-broken
notices. Pure; the router owns it; greedy hops come from the L{Forwarder} and packets along a
known path go out through the C{route_traffic} callable it is given (no import of the router).

Unlike Go, an unanswered lookup is a retry job owned here, not a one-shot: while a packet or an
upper layer (L{Pathfinder.rumor_send_lookup}) waits on it, it is sent again as soon as a peer's
filter newly holds its key (L{Pathfinder.retry_lookups} after a filter or tree change) and
every L{LOOKUP_RETRY_S} for the first retries, then doubling up to once a second, until a
notify arrives or the rumor expires; our own lookup that no filter holds also goes to our
parent (a false positive of its filter, as far as the protocol is concerned). A path-broken
notice starts such a retry job too, and the new answer re-sends the packets that went along the
broken path shortly before the notice (L{RECENT_KEPT}, L{RECENT_S}; Go re-sends only the last)
and those sent since, in order. A lookup sent before the filters settled is therefore never
left for a higher layer's retransmission timer. Waiting packets are kept in order, bounded per destination (L{MAX_HELD_PER_DEST}, the oldest give way)
and in total (L{MAX_HELD_PACKETS}, L{MAX_HELD_BYTES}: new ones are refused), and flushed in
order when the path is found.

Bounded tables (issue 12): a remote makes us send to keys it chooses (a session init from a fresh
key is answered, and the answer is looked up), and a remote it answers for keeps its path entry
alive by sending traffic, so path entries and rumors are capped (L{MAX_PATHS}, L{MAX_RUMORS});
past a cap the oldest is forgotten (counted in C{Pathfinder.evicted}, logged aggregated; the
next packet to its key looks it up again). The packets kept per path for re-sending are bounded
in all by L{MAX_RECENT_BYTES} too (past it the oldest of the path being sent on go, even its
last one: they are copies kept to speed up recovery, not the only copy of anything).

A Traffic packet carries its sender's coordinates (C{from}). When one reaches us from a key we
have no path to (typically the session init of a node that found us first), we remember them
for L{REVERSE_TTL_S}; packets we then hold for that key are also sent along those coordinates
(and those already held, once, when they arrive), until the notify comes: the answer does not
wait for our own lookup. The coordinates are not signed (Go does not
use them); a forged C{from} can only misdirect these copies, since the held packets still go out
along the signed path when the notify arrives (unless it signs the coordinates they already
went to).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from axl.crypto.address import xform
from axl.crypto.keys import Identity, short_key
from axl.logs import observer as log_observer
from axl.mesh.blooms import Blooms
from axl.mesh.forward import Forwarder
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
from axl.ratelimit import DropCounter

RouteTraffic = Callable[[Path, Path, bytes, bytes, int, bytes], None]
"""C{route_traffic(path, from_path, source, dest, watermark, data)}: forward or deliver."""

__all__ = [
    "LOOKUP_FAST_RETRIES",
    "LOOKUP_MIN_GAP_S",
    "LOOKUP_RETRY_S",
    "MAX_HELD_BYTES",
    "MAX_HELD_PACKETS",
    "MAX_HELD_PER_DEST",
    "MAX_PATHS",
    "MAX_RECENT_BYTES",
    "MAX_RUMORS",
    "PATH_THROTTLE_S",
    "PATH_TIMEOUT_S",
    "RECENT_BYTES",
    "RECENT_KEPT",
    "RECENT_S",
    "REVERSE_TTL_S",
    "PathEntry",
    "Pathfinder",
]

#: Path entries and rumors live this long (C{pathTimeout}).
PATH_TIMEOUT_S = 60.0
#: At most one lookup per destination this often (C{pathThrottle}), unless a peer's filter
#: newly holds the key (then L{LOOKUP_MIN_GAP_S}).
PATH_THROTTLE_S = 1.0
#: A waiting lookup whose key a peer's filter newly holds is re-sent at once, but never twice
#: within this many seconds (the next tick re-sends it otherwise).
LOOKUP_MIN_GAP_S = 0.02
#: A waiting lookup is re-sent this long after it went out unanswered, then after twice as
#: long each time, up to L{PATH_THROTTLE_S} (Go nodes on the way refresh their filters once a
#: second, so a lookup can die at one of them while the tree is young).
LOOKUP_RETRY_S = 0.25
#: Retries sent L{LOOKUP_RETRY_S} apart before the interval starts doubling: while a young
#: tree's filters settle (Go nodes pass a key on once a second, each at its own moment), a
#: lookup that died at one of them gets through soon after its filter catches up.
LOOKUP_FAST_RETRIES = 8
#: How long the coordinates from a received Traffic packet are used for replies to its sender.
REVERSE_TTL_S = 10.0
#: Senders whose coordinates are remembered at most (the table is emptied when full).
_REVERSE_LIMIT = 1024
#: The packets last sent along a path are kept, at most this many (and L{RECENT_BYTES}, but
#: always the last one), to be sent again when a new answer follows a broken path.
RECENT_KEPT = 8
#: Bytes of the packets kept per path (the last one is kept whatever its size, as in Go).
RECENT_BYTES = 16 * 1024
#: Of those, only the ones sent this long before the path-broken notice are sent again.
RECENT_S = 1.0
#: Packets kept per destination while its path is looked up (the oldest give way).
MAX_HELD_PER_DEST = 64
#: Packets kept for all destinations together (new ones are refused beyond it).
MAX_HELD_PACKETS = 2048
#: Bytes kept for all destinations together (new ones are refused beyond it): a TCP connection
#: to a key being looked up sends only its SYN, so this holds mostly datagrams.
MAX_HELD_BYTES = 1024 * 1024
#: Path entries held at most (the oldest is forgotten to make room for a new one); ~2.4 KiB
#: each with a 200-byte packet kept (C{bench/bench_tree_flood.py}).
MAX_PATHS = 512
#: Rumors (outstanding lookups) held at most (the oldest is forgotten, with its held packets);
#: ~2.3 KiB each with a 200-byte packet held.
MAX_RUMORS = 512
#: Bytes of the packets kept for re-sending (L{RECENT_BYTES} per path) for all paths together.
MAX_RECENT_BYTES = 1024 * 1024


def _retry_interval(retries: int) -> float:
    """Seconds between a waiting lookup's retry C{retries} and the next one."""
    if retries < LOOKUP_FAST_RETRIES:
        return LOOKUP_RETRY_S
    return float(min(PATH_THROTTLE_S, LOOKUP_RETRY_S * 2 ** (retries - LOOKUP_FAST_RETRIES + 1)))


class PathEntry:
    """A known path to a full key: its coords as its owner signed them."""

    __slots__ = ("broken", "path", "recent", "recent_bytes", "req_time", "seq", "timer")

    def __init__(self, req_time: float, timer: Deadline) -> None:
        self.path: Path = ()
        self.seq = 0
        self.req_time = req_time
        self.timer = timer
        # (when, packet) last sent there: re-sent, in order, when a new answer follows a
        # broken path (L{RECENT_KEPT}, L{RECENT_BYTES}; Go keeps the last packet only)
        self.recent: deque[tuple[float, bytes]] = deque()
        self.recent_bytes = 0
        self.broken = False


class _Rumor:
    """An outstanding lookup: the key asked for, when, and what waits on the answer."""

    __slots__ = (
        "held", "held_bytes", "lookup_key", "retries", "send_time", "targets", "timer", "waiting",
    )  # fmt: skip

    def __init__(self, lookup_key: bytes, send_time: float, timer: Deadline) -> None:
        self.lookup_key = lookup_key
        self.send_time = send_time
        self.timer = timer
        # (dest, data, the unsigned coords a copy went to or None), waiting for a path
        self.held: deque[tuple[bytes, bytes, Path | None]] = deque()
        self.held_bytes = 0
        self.waiting = False  # something waits for the notify: retry until it comes
        self.retries = 0
        self.targets: frozenset[bytes] = frozenset()  # peers the last lookup went to


class Pathfinder:
    """Path entries, rumors and the lookup / notify / broken protocol of one node."""

    log = Logger(observer=log_observer)

    def __init__(
        self,
        identity: Identity,
        clock: IReactorTime,
        tree: Tree,
        blooms: Blooms,
        forwarder: Forwarder,
        route_traffic: RouteTraffic,
        on_path_notify: Callable[[bytes], None],
    ) -> None:
        self.identity = identity
        self.key = identity.public_key
        self._xself = xform(self.key)
        self.clock = clock
        self.tree = tree
        self.blooms = blooms
        self.forwarder = forwarder
        self._route_traffic = route_traffic
        self._on_path_notify = on_path_notify
        self.paths: dict[bytes, PathEntry] = {}
        self.rumors: dict[bytes, _Rumor] = {}
        self._info: tuple[int, Path, bytes] | None = None  # our last signed (seq, path, sig)
        self.lookups_sent = 0  # lookups we started (for /metrics)
        self.lookups_answered = 0  # lookups for us that we answered with a notify
        self._retry_call: IDelayedCall | None = None
        # key -> (its coords from traffic we received without a path, when): see the docstring
        self._reverse: dict[bytes, tuple[Path, float]] = {}
        self.held_packets = 0
        self.held_bytes = 0
        self._drops = DropCounter(
            clock,
            self.log,
            "dropped {n} packets waiting for path lookups (held limits: {per} per destination, "
            "{total} packets, {size} bytes in total)",
            per=MAX_HELD_PER_DEST,
            total=MAX_HELD_PACKETS,
            size=MAX_HELD_BYTES,
        )
        self.max_paths = MAX_PATHS
        self.recent_bytes = 0  # kept for re-sending, all paths together (L{MAX_RECENT_BYTES})
        self.max_rumors = MAX_RUMORS
        self._evictions = DropCounter(
            clock,
            self.log,
            "forgot {n} path entries and lookups to make room for new ones (at most {paths} "
            "paths and {rumors} lookups held)",
            interval=60.0,
            paths=MAX_PATHS,
            rumors=MAX_RUMORS,
        )

    # -- sending ---------------------------------------------------------------------------

    def send_traffic(self, dest: bytes, data: bytes) -> None:
        """Send along the known path, or hold the packet and look the key up."""
        entry = self.paths.get(dest)
        if entry is not None:
            rumor = self.rumors.get(xform(dest)) if entry.broken else None
            if rumor is not None and rumor.waiting:
                # The path broke and we look it up again: keep what we send meanwhile (it is
                # likely lost too) to send it again, in order, after the packet lost first.
                self._hold(rumor, (dest, data))
            else:
                self._remember(entry, data)
            self._route_traffic(
                entry.path, self.tree.coords(self.key), self.key, dest, MAX_WATERMARK, data
            )
            return
        # Hold the packet before looking up: the notify may come back synchronously.
        self.rumor_send_lookup(dest, (dest, data))
        reverse = self._reverse.get(dest)
        if reverse is not None and dest not in self.paths:
            if self.clock.seconds() - reverse[1] < REVERSE_TTL_S:
                rumor = self.rumors.get(xform(dest))
                if rumor is not None and rumor.held and rumor.held[-1][1] is data:
                    rumor.held[-1] = (dest, data, reverse[0])
                self._send_along(reverse[0], dest, data)

    def _remember(self, entry: PathEntry, data: bytes) -> None:
        recent = entry.recent
        recent.append((self.clock.seconds(), data))
        entry.recent_bytes += len(data)
        self.recent_bytes += len(data)
        while recent and (
            self.recent_bytes > MAX_RECENT_BYTES
            or (len(recent) > 1 and (len(recent) > RECENT_KEPT or entry.recent_bytes > RECENT_BYTES))
        ):
            size = len(recent.popleft()[1])
            entry.recent_bytes -= size
            self.recent_bytes -= size

    def _forget_recent(self, entry: PathEntry) -> None:
        self.recent_bytes -= entry.recent_bytes
        entry.recent.clear()
        entry.recent_bytes = 0

    def _send_along(self, path: Path, dest: bytes, data: bytes) -> None:
        self._route_traffic(path, self.tree.coords(self.key), self.key, dest, MAX_WATERMARK, data)

    def rumor_send_lookup(self, dest: bytes, traffic: tuple[bytes, bytes] | None = None) -> None:
        """
        Start or refresh the rumor for C{xform(dest)}, hold C{traffic} in it and look the key
        up (1/s at most here; L{retry_lookups} re-sends it while something waits).
        """
        now = self.clock.seconds()
        xdest = xform(dest)
        rumor = self.rumors.get(xdest)
        if rumor is None:
            if len(self.rumors) >= self.max_rumors:
                oldest = next(iter(self.rumors))
                self.rumors[oldest].timer.cancel()
                self._expire_rumor(oldest)
                self._evictions.add(1)
            rumor = self.rumors[xdest] = _Rumor(
                dest, now, Deadline(self.clock, PATH_TIMEOUT_S, lambda: self._expire_rumor(xdest))
            )
            send = True
        else:
            send = now - rumor.send_time >= PATH_THROTTLE_S
            if send:
                rumor.send_time = now
                rumor.timer.reset(PATH_TIMEOUT_S)
            rumor.lookup_key = dest
        if not rumor.waiting:
            rumor.waiting = True
            rumor.retries = 0
        if traffic is not None:
            self._hold(rumor, traffic)
        if send:
            self._rumor_lookup(rumor)
            self.retry_lookups()  # arms the retry timer

    def _hold(self, rumor: _Rumor, traffic: tuple[bytes, bytes]) -> None:
        size = len(traffic[1])
        if len(rumor.held) >= MAX_HELD_PER_DEST:
            _, old, _ = rumor.held.popleft()
            rumor.held_bytes -= len(old)
            self.held_packets -= 1
            self.held_bytes -= len(old)
            self._drops.add(1)
        if self.held_packets >= MAX_HELD_PACKETS or self.held_bytes + size > MAX_HELD_BYTES:
            self._drops.add(1)
            return
        rumor.held.append((traffic[0], traffic[1], None))
        rumor.held_bytes += size
        self.held_packets += 1
        self.held_bytes += size

    def _release(self, rumor: _Rumor) -> None:
        self.held_packets -= len(rumor.held)
        self.held_bytes -= rumor.held_bytes
        rumor.held.clear()
        rumor.held_bytes = 0

    @property
    def evicted(self) -> int:
        """Path entries and rumors forgotten so far to stay within L{MAX_PATHS}, L{MAX_RUMORS}."""
        return self._evictions.total

    @property
    def held_dropped(self) -> int:
        """Held packets dropped so far (limits, or their lookup expired)."""
        return self._drops.total

    def _rumor_lookup(self, rumor: _Rumor) -> None:
        targets = self._send_lookup(rumor.lookup_key)
        if targets is not None:
            rumor.targets = targets

    def _send_lookup(self, dest: bytes) -> frozenset[bytes] | None:
        """Send our lookup for C{dest}; the keys of the peers it went to (None: throttled)."""
        entry = self.paths.get(dest)
        if (
            entry is not None
            and not entry.broken
            and self.clock.seconds() - entry.req_time < PATH_THROTTLE_S
        ):
            return None
        self.lookups_sent += 1
        return self._handle_lookup(self.key, PathLookup(self.key, dest, self.tree.coords(self.key)))

    def retry_lookups(self) -> None:
        """
        Re-send the lookups something still waits on: those unanswered for their retry interval
        (L{LOOKUP_RETRY_S} for L{LOOKUP_FAST_RETRIES} retries, then doubling up to
        L{PATH_THROTTLE_S}), and, after a filter or
        tree change, those some peer's filter newly holds (at most every L{LOOKUP_MIN_GAP_S}).
        Called on every tick and change, and by its own timer for the next one due.
        """
        now = self.clock.seconds()
        wait: float | None = None
        for rumor in self.rumors.values():
            if not rumor.waiting:
                continue
            elapsed = now - rumor.send_time
            interval = _retry_interval(rumor.retries)
            if elapsed >= interval * 0.999:  # (float slack: never a zero wait)
                rumor.retries += 1
            elif self.blooms.target_keys(rumor.lookup_key, self.key) <= rumor.targets:
                left = interval - elapsed
                wait = left if wait is None else min(wait, left)
                continue
            elif elapsed < LOOKUP_MIN_GAP_S * 0.999:
                left = LOOKUP_MIN_GAP_S - elapsed
                wait = left if wait is None else min(wait, left)
                continue
            rumor.send_time = now
            self._rumor_lookup(rumor)
            left = _retry_interval(rumor.retries)
            wait = left if wait is None else min(wait, left)
        if wait is not None:
            call = self._retry_call
            if call is not None and call.active():
                if call.getTime() <= now + wait:
                    return
                call.cancel()
            self._retry_call = self.clock.callLater(wait, self._retry_due)

    def _retry_due(self) -> None:
        self._retry_call = None
        self.retry_lookups()

    # -- lookups ---------------------------------------------------------------------------

    def handle_lookup(self, peer: PeerLink, payload: bytes) -> None:
        """
        A lookup from a peer on the tree (Go checks the on-tree flag of its last filter refresh;
        we also accept a peer that our tree entries show as our parent or child right now, so a
        lookup from a peer that just joined under us is not lost before the refresh).
        """
        lookup = PathLookup.decode(payload)
        if self.blooms.is_on_tree(peer.key) or self._tree_neighbour(peer.key):
            self._handle_lookup(peer.key, lookup)

    def _parent(self) -> bytes | None:
        me = self.tree.infos.get(self.key)
        return me.parent if me is not None and me.parent != self.key else None

    def _tree_neighbour(self, key: bytes) -> bool:
        infos = self.tree.infos
        me = infos.get(self.key)
        if me is not None and me.parent == key:
            return True
        info = infos.get(key)
        return info is not None and info.parent == self.key

    def _handle_lookup(self, from_key: bytes, lookup: PathLookup) -> frozenset[bytes]:
        targets = self.blooms.multicast_targets(lookup.dest, from_key)
        sent_to = frozenset(peer.key for peer in targets)
        if not targets and from_key == self.key:
            # Our own lookup that no filter holds yet goes to our parent anyway (as a false
            # positive of its filter would): its filters may already hold the key while the
            # one it sent us lags a tick behind (a Go node refreshes them once a second).
            # Not counted in the targets, so the retry still follows the filters.
            parent = self._parent()
            link = self.blooms.tree_link(parent) if parent is not None else None
            if link is not None:
                targets = [link]
        if targets:
            payload = lookup.encode()
            for peer in targets:
                peer.send(FRAME_LOOKUP, payload)
        if xform(lookup.dest) != self._xself:
            return sent_to
        seq = int(self.clock.seconds())
        path = self.tree.coords(self.key)
        info = self._info
        if info is None or info[0] != seq or info[1] != path:
            info = self._info = (seq, path, self.identity.sign(notify_info_bytes(seq, path)))
        notify = PathNotify(lookup.from_path, MAX_WATERMARK, self.key, lookup.source, *info)
        self.lookups_answered += 1
        self._handle_notify(notify)
        return sent_to

    # -- notifies --------------------------------------------------------------------------

    def handle_notify(self, peer: PeerLink, payload: bytes) -> None:
        """
        A PathNotify (frame type 7) from C{peer}: forward it greedily towards its C{dest}; if it is
        for us and answers one of our lookups (or brings a newer path for a key we have a path to),
        verify its signature, record the path and send the packets that waited for it.

        @raise DecodeError: the payload is not exactly one notify (the link is dropped).
        """
        self._handle_notify(PathNotify.decode(payload))

    def _handle_notify(self, notify: PathNotify) -> None:
        peer, watermark = self.forwarder.next_hop(notify.path, notify.watermark)
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
        held: list[bytes] = []
        rumor = self.rumors.get(xform(source))
        if entry is not None:
            # Like Go, a newer answer with the same coordinates adds nothing, unless the path
            # broke: then any valid answer at least as new clears it and re-sends the packet
            # lost there (even one signed in the same second).
            if entry.broken:
                if notify.info_seq < entry.seq:
                    return
            elif notify.info_seq <= entry.seq or notify.info_path == entry.path:
                return
            if not notify.verify():
                self.log.warn("bad notify signature from {key}", key=short_key(source))  # noqa: G010 - twisted.logger
                return
            entry.timer.reset(PATH_TIMEOUT_S)
        else:
            if rumor is None:
                return
            if not notify.verify():
                self.log.warn("bad notify signature from {key}", key=short_key(source))  # noqa: G010 - twisted.logger
                return
            if len(self.paths) >= self.max_paths:
                oldest = next(iter(self.paths))
                evicted = self.paths.pop(oldest)
                evicted.timer.cancel()
                self._forget_recent(evicted)
                self._evictions.add(1)
            entry = PathEntry(
                self.clock.seconds(),
                Deadline(self.clock, PATH_TIMEOUT_S, lambda: self._expire_path(source)),
            )
            self._reverse.pop(source, None)
        if rumor is not None and rumor.waiting:
            # Answered: stop retrying; the packets held for this key go out in order
            # (not those already sent along the coords the notify now signs).
            rumor.waiting = False
            held = [
                data
                for dest, data, along in rumor.held
                if dest == source and along != notify.info_path
            ]
            self._release(rumor)
        # Like Go, the last packet sent goes again along the new path; after a broken path,
        # every one kept from shortly before the notice (in order).
        recent = entry.recent
        if entry.broken:
            pending = [data for _, data in recent]
        else:
            pending = [recent[-1][1]] if recent else []
        entry.path = notify.info_path
        entry.seq = notify.info_seq
        entry.broken = False
        self._forget_recent(entry)
        self.paths[source] = entry
        try:
            self._on_path_notify(source)
        except Exception:  # noqa: BLE001 - an upper-layer bug must not drop the link
            self.log.failure("path notify callback failed")
        for data in pending:
            self.send_traffic(source, data)
        for data in held:
            self.send_traffic(source, data)

    # -- broken paths ----------------------------------------------------------------------

    def handle_broken(self, peer: PeerLink, payload: bytes) -> None:
        """
        A PathBroken (frame type 8) from C{peer}: forward it greedily towards its C{source}; if we
        are that source, mark our path to its C{dest} broken and look C{dest} up again until
        answered (the answer re-sends the packets that were likely lost on the broken path).

        @raise DecodeError: the payload is not exactly one path-broken notice (the link is dropped).
        """
        self._handle_broken(PathBroken.decode(payload))

    def do_broken(self, from_path: Path, source: bytes, dest: bytes) -> None:
        """Traffic from C{source} to C{dest} is stuck here: tell the source along C{from}."""
        self._handle_broken(PathBroken(from_path, MAX_WATERMARK, source, dest))

    def _handle_broken(self, broken: PathBroken) -> None:
        peer, watermark = self.forwarder.next_hop(broken.path, broken.watermark)
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
            # Unlike Go's one lookup (throttled within a second of the last), a retry job
            # until a notify answers: the last packet sent there was lost and waits for it.
            if not entry.broken:
                # only what went out shortly before the notice can have been lost with it
                recent, cutoff = entry.recent, self.clock.seconds() - RECENT_S
                while recent and recent[0][0] < cutoff:
                    size = len(recent.popleft()[1])
                    entry.recent_bytes -= size
                    self.recent_bytes -= size
            entry.broken = True
            rumor = self.rumors.get(xform(broken.dest))
            if rumor is not None:
                if rumor.waiting:
                    return  # already retrying
                if self.clock.seconds() - rumor.send_time >= LOOKUP_MIN_GAP_S:
                    rumor.send_time = -PATH_THROTTLE_S  # due now, not after the throttle
            self.rumor_send_lookup(broken.dest)

    # -- timers ----------------------------------------------------------------------------

    def traffic_from(self, source: bytes, from_path: Path) -> None:
        """
        Traffic from C{source} (at C{from_path}) reached us: keep its path entry (unless it is
        broken); without one, while we look C{source} up, use C{from_path} for the packets held
        for it (see the module docstring).
        """
        entry = self.paths.get(source)
        if entry is not None:
            if not entry.broken:
                entry.timer.reset(PATH_TIMEOUT_S)
            return
        known = self._reverse.get(source)
        if known is not None and known[0] == from_path:
            self._reverse[source] = (from_path, self.clock.seconds())
            return
        if len(self._reverse) >= _REVERSE_LIMIT:
            self._reverse.clear()
        self._reverse[source] = (from_path, self.clock.seconds())
        rumor = self.rumors.get(xform(source)) if self.rumors else None
        if rumor is not None and rumor.waiting:
            held = rumor.held
            for i, (dest, data, _) in enumerate(held):
                if dest == source:
                    self._send_along(from_path, source, data)
                    held[i] = (dest, data, from_path)

    def _expire_path(self, key: bytes) -> None:
        entry = self.paths.pop(key, None)
        if entry is not None:
            self._forget_recent(entry)

    def _expire_rumor(self, xkey: bytes) -> None:
        rumor = self.rumors.pop(xkey, None)
        if rumor is not None and rumor.held:
            self._drops.add(len(rumor.held))
            self._release(rumor)

    def stop(self) -> None:
        """
        Cancel every timer and forget every path, rumor, reverse path and held packet (the router is
        stopping).
        """
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        for entry in self.paths.values():
            entry.timer.cancel()
        for rumor in self.rumors.values():
            rumor.timer.cancel()
        self.paths.clear()
        self.recent_bytes = 0
        self.rumors.clear()
        self._reverse.clear()
        self.held_packets = self.held_bytes = 0

    def paths_info(self) -> list[dict[str, object]]:
        """Like Go's C{GetPaths}: C{{public_key, path, sequence}} per path entry."""
        return [
            {"public_key": key.hex(), "path": list(entry.path), "sequence": entry.seq}
            for key, entry in self.paths.items()
        ]
