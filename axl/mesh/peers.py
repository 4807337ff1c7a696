# -*- test-case-name: tests.test_mesh_router -*-
"""
The router's view of its links (spec/yggdrasil-wire.md section 3.2): ironwood ports per remote
key, per-link priority, age (C{order}) and measured lag (cost); and L{Deadline}, the cheap
resettable timer every soft-state table uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from axl.interfaces import ILink

__all__ = ["UNKNOWN_LAG", "Deadline", "PeerLink", "Peers"]

#: The lag of a link before its first valid SigRes: 2**32-1 ns, a cost of 4294 (section 3.2).
UNKNOWN_LAG = (1 << 32) - 1


class PeerLink:
    """
    One up link as the router tracks it.

    @ivar link: the L{ILink}.
    @ivar key: the remote key.
    @ivar port: our ironwood port for that key (shared by every link to it).
    @ivar prio: effective link priority (lower preferred).
    @ivar order: link-creation counter (lower is older).
    @ivar lag: latency estimate in integer nanoseconds.
    @ivar srst: clock time our last SigReq was sent on this link.
    @ivar rtt: seconds from our last SigReq to the last valid SigRes (None until one came).
    @ivar responded: a SigRes for the current request was seen on this link.
    """

    __slots__ = ("key", "lag", "link", "order", "port", "prio", "responded", "rtt", "send", "srst")

    def __init__(self, link: ILink, key: bytes, port: int) -> None:
        self.link = link
        self.key = key
        self.port = port
        self.prio = int(link.priority)
        self.order = int(link.order)
        self.lag = UNKNOWN_LAG
        self.srst = 0.0
        self.rtt: float | None = None
        self.responded = False
        self.send: Callable[[int, bytes], None] = link.send_frame

    @property
    def cost(self) -> int:
        """C{linkCost}: the lag in whole milliseconds, at least 1."""
        return max(1, self.lag // 1_000_000)

    def __repr__(self) -> str:
        return f"<PeerLink {self.key[:4].hex()} port={self.port} order={self.order}>"


class Peers:
    """Links grouped by remote key, and the ports given to those keys."""

    def __init__(self) -> None:
        self.by_key: dict[bytes, list[PeerLink]] = {}
        self._by_link: dict[int, PeerLink] = {}
        self._ports: dict[bytes, int] = {}
        self._used: set[int] = set()

    def add(self, link: ILink) -> tuple[PeerLink, bool]:
        """Track an up link; return it and whether it is the first link to its key."""
        key = bytes(link.remote_key)
        links = self.by_key.get(key)
        first = links is None
        if links is None:
            port = 1
            while port in self._used:
                port += 1
            self._used.add(port)
            self._ports[key] = port
            links = self.by_key[key] = []
        peer = PeerLink(link, key, self._ports[key])
        links.append(peer)
        links.sort(key=lambda p: p.order)
        self._by_link[id(link)] = peer
        return peer, first

    def remove(self, link: ILink) -> tuple[PeerLink | None, bool]:
        """Forget a link; return it (None if unknown) and whether it was the last to its key."""
        peer = self._by_link.pop(id(link), None)
        if peer is None:
            return None, False
        links = self.by_key[peer.key]
        links.remove(peer)
        if links:
            return peer, False
        del self.by_key[peer.key]
        self._used.discard(self._ports.pop(peer.key))
        return peer, True

    def get(self, link: ILink) -> PeerLink | None:
        """The tracked L{PeerLink} of C{link}, or C{None} if it is not (or no longer) up."""
        return self._by_link.get(id(link))

    def port_for_key(self, key: bytes) -> int:
        """Our port for C{key}, or 0 when no link to it is up."""
        return self._ports.get(key, 0)

    def send(self, key: bytes, frame_type: int, payload: bytes) -> None:
        """Send one frame on every link to C{key}."""
        for peer in tuple(self.by_key.get(key, ())):
            peer.send(frame_type, payload)

    def best_link(self, key: bytes) -> PeerLink:
        """The link to C{key} with the lowest priority value (the oldest among equals)."""
        return min(self.by_key[key], key=lambda p: (p.prio, p.order))

    def links(self) -> Iterator[PeerLink]:
        """Every link that is up, grouped by remote key."""
        for links in self.by_key.values():
            yield from links

    def __contains__(self, key: bytes) -> bool:
        return key in self.by_key


class Deadline:
    """
    A one-shot timer that fires C{action} C{delay} seconds after it was last L{reset}.

    Resetting only moves a number; the single delayed call re-arms itself when it finds the
    deadline moved, so resetting on every packet costs nothing.
    """

    __slots__ = ("_action", "_call", "_clock", "deadline")

    def __init__(self, clock: IReactorTime, delay: float, action: Callable[[], None]) -> None:
        self._clock = clock
        self._action = action
        self.deadline = clock.seconds() + delay
        self._call: IDelayedCall | None = clock.callLater(delay, self._check)

    def reset(self, delay: float) -> None:
        """
        Fire C{delay} seconds from now instead (re-arming the timer if it already fired or was
        L{cancel}led).
        """
        self.deadline = self._clock.seconds() + delay
        if self._call is None:
            self._call = self._clock.callLater(delay, self._check)

    def cancel(self) -> None:
        """Stop the timer without firing; a later L{reset} starts it again."""
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def _check(self) -> None:
        remaining = self.deadline - self._clock.seconds()
        if remaining > 0:
            self._call = self._clock.callLater(remaining, self._check)
            return
        self._call = None
        self._action()
