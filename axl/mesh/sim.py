# -*- test-case-name: tests.test_mesh_sim -*-
"""
A simulated mesh for tests and experiments: N L{Router} cores wired by in-memory links that
share one C{task.Clock}, to exercise spec/yggdrasil-wire.md section 3 (tree, filters, lookups,
routing) over many nodes. Nodes and links can be added and removed at any time; frames can be
delayed (per-link latency) or dropped (a predicate). Nothing here touches the network.

Frames with zero latency are delivered through a FIFO queue that is drained as soon as the
outermost event finishes, so a send never recurses into the receiver. Frames with a latency
arrive through the clock. L{SimNetwork.advance} moves the clock call by call, so every timer
runs at its own time.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence

from twisted.internet.base import DelayedCall
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock
from zope.interface import implementer

from axl.crypto.keys import Identity
from axl.errors import ProtocolError
from axl.interfaces import ILink
from axl.mesh.router import MAX_FRAME_SIZE, Router

__all__ = ["SimClock", "SimLink", "SimNetwork", "SimNode", "SimWire"]


class SimClock(Clock):
    """
    A C{task.Clock} for big simulations: delayed calls live in a heap (C{task.Clock} re-sorts
    its whole list on every call), and L{advance} runs each call at its own time.
    """

    def __init__(self) -> None:
        super().__init__()
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._counter = itertools.count()

    def callLater(self, delay: float, callable: Callable[..., object], *args: object,
                  **kw: object) -> IDelayedCall:  # fmt: skip
        call = DelayedCall(
            self.rightNow + delay, callable, args, kw, lambda c: None, self._push, self.seconds
        )
        self._push(call)
        return call

    def _push(self, call: DelayedCall) -> None:
        heapq.heappush(self._heap, (call.time, next(self._counter), call))

    def getDelayedCalls(self) -> Sequence[IDelayedCall]:
        seen: set[int] = set()
        calls = []
        for when, _, call in sorted(self._heap, key=lambda e: e[:2]):
            if call.active() and when == call.time and id(call) not in seen:
                seen.add(id(call))
                calls.append(call)
        return calls

    def advance(self, amount: float) -> None:
        target = self.rightNow + amount
        heap = self._heap
        while heap and heap[0][0] <= target:
            when, _, call = heapq.heappop(heap)
            if call.cancelled or call.called or when != call.time:
                continue  # cancelled, or a stale entry of a call that was moved earlier
            if call.delayed_time:
                call.activate_delay()
                self._push(call)
                continue
            self.rightNow = max(self.rightNow, when)
            call.called = 1
            call.func(*call.args, **call.kw)
        self.rightNow = target


@implementer(ILink)
class SimLink:
    """One end of a simulated link, as the router on that end sees it."""

    def __init__(
        self, net: SimNetwork, wire: SimWire, local: SimNode, remote: SimNode, inbound: bool
    ) -> None:
        self._net = net
        self.wire = wire
        self.local = local
        self.remote_key = remote.public_key
        self.priority = wire.priority
        self.order = wire.order
        self.inbound = inbound
        self.uri = f"sim://{remote.name}"
        self.other: SimLink | None = None
        self.up = True
        self.sent: Counter[int] = Counter()

    def send_frame(self, frame_type: int, payload: bytes) -> None:
        if not self.up:
            return
        if len(payload) + 1 > MAX_FRAME_SIZE:
            self._net.oversized += 1
            return
        self.sent[frame_type] += 1
        self._net.transmit(self, frame_type, payload)

    def close(self, reason: str) -> None:
        self._net.closed.append(reason)
        self._net.cut(self.wire)

    def __repr__(self) -> str:
        return f"<SimLink {self.local.name}->{self.uri}>"


class SimWire:
    """A link between two nodes: its two ends, priority, age and latency."""

    def __init__(self, a: SimNode, b: SimNode, priority: int, order: int, latency: float) -> None:
        self.a, self.b = a, b
        self.priority = priority
        self.order = order
        self.latency = latency
        self.ends: tuple[SimLink, SimLink] | None = None


class SimNode:
    """A router plus what it delivered upwards."""

    def __init__(self, net: SimNetwork, identity: Identity, name: str) -> None:
        self.identity = identity
        self.public_key = identity.public_key
        self.name = name
        self.received: list[tuple[bytes, bytes]] = []
        self.notified: list[bytes] = []
        #: when set, delivered packets and path notifies go here instead of the lists
        self.on_traffic: Callable[[bytes, bytes], None] | None = None
        self.on_path_notify: Callable[[bytes], None] | None = None
        self.router = Router(
            identity,
            net.clock,
            on_traffic=self._traffic,
            on_path_notify=self._notify,
            randbytes=net.rng.randbytes,
        )
        self.wires: list[SimWire] = []

    def _traffic(self, source: bytes, data: bytes) -> None:
        if self.on_traffic is not None:
            self.on_traffic(source, data)
        else:
            self.received.append((source, data))

    def _notify(self, key: bytes) -> None:
        if self.on_path_notify is not None:
            self.on_path_notify(key)
        else:
            self.notified.append(key)

    def __repr__(self) -> str:
        return f"<SimNode {self.name}>"


class SimNetwork:
    """
    The simulated mesh.

    @ivar clock: the shared clock.
    @ivar drop: when set, C{drop(link, frame_type, payload)} returning True loses that frame.
    @ivar frames: count of frames transmitted, per frame type.
    @ivar errors: C{(node, exception)} for every frame a router rejected (the link is cut).
    """

    def __init__(self, clock: Clock | None = None, seed: int = 0, latency: float = 0.0) -> None:
        self.clock = clock if clock is not None else SimClock()
        self.rng = random.Random(seed)
        self.latency = latency
        self.nodes: list[SimNode] = []
        self.wires: list[SimWire] = []
        self.drop: Callable[[SimLink, int, bytes], bool] | None = None
        self.frames: Counter[int] = Counter()
        self.errors: list[tuple[SimNode, Exception]] = []
        self.closed: list[str] = []
        self.oversized = 0
        self._queue: deque[tuple[SimLink, int, bytes]] = deque()
        self._pumping = False
        self._order = 0

    # -- topology --------------------------------------------------------------------------

    def add_node(self, identity: Identity | None = None, start: bool = True) -> SimNode:
        """
        Add a node with no links.

        @param identity: its key (a random one from the network's seeded C{rng} if not given).
        @param start: start its router (its timers) at once.
        @return: the new node, named C{n0}, C{n1}, ... in the order they were added.
        """
        if identity is None:
            identity = Identity(self.rng.randbytes(32))
        node = SimNode(self, identity, f"n{len(self.nodes)}")
        self.nodes.append(node)
        if start:
            self._event(node.router.start)
        return node

    def remove_node(self, node: SimNode) -> None:
        """Stop a node and cut all its links."""
        for wire in list(node.wires):
            self.cut(wire)
        node.router.stop()
        self.nodes.remove(node)

    def connect(
        self, a: SimNode, b: SimNode, priority: int = 0, latency: float | None = None
    ) -> SimWire:
        """Bring up a link (a dialled b); both routers see C{link_up}."""
        wire = SimWire(a, b, priority, self._order, self.latency if latency is None else latency)
        self._order += 1
        end_a = SimLink(self, wire, a, b, inbound=False)
        end_b = SimLink(self, wire, b, a, inbound=True)
        end_a.other, end_b.other = end_b, end_a
        wire.ends = (end_a, end_b)
        self.wires.append(wire)
        a.wires.append(wire)
        b.wires.append(wire)

        def up() -> None:
            a.router.link_up(end_a)
            b.router.link_up(end_b)

        self._event(up)
        return wire

    def cut(self, wire: SimWire) -> None:
        """Take a link down on both ends."""
        if wire.ends is None or not wire.ends[0].up:
            return
        end_a, end_b = wire.ends
        end_a.up = end_b.up = False
        self.wires.remove(wire)
        wire.a.wires.remove(wire)
        wire.b.wires.remove(wire)

        def down() -> None:
            wire.a.router.link_down(end_a)
            wire.b.router.link_down(end_b)

        self._event(down)

    def disconnect(self, a: SimNode, b: SimNode) -> None:
        """Take down every link between C{a} and C{b} (see L{cut})."""
        for wire in list(a.wires):
            if b in (wire.a, wire.b):
                self.cut(wire)

    def neighbours(self, node: SimNode) -> Iterable[SimNode]:
        """The nodes C{node} has a link up to, once per link."""
        for wire in node.wires:
            yield wire.b if wire.a is node else wire.a

    # -- frames ----------------------------------------------------------------------------

    def transmit(self, link: SimLink, frame_type: int, payload: bytes) -> None:
        """
        Carry a frame sent on C{link} to its other end: dropped if the C{drop} predicate says so,
        otherwise counted in C{frames} and delivered after the wire's latency (through the clock)
        or, with no latency, as soon as the outermost event finishes (never re-entrantly).
        """
        if self.drop is not None and self.drop(link, frame_type, payload):
            return
        self.frames[frame_type] += 1
        latency = link.wire.latency
        if latency > 0:
            self.clock.callLater(latency, self._arrive, link, frame_type, payload)
        else:
            self._queue.append((link, frame_type, payload))
            self._event(None)

    def _arrive(self, link: SimLink, frame_type: int, payload: bytes) -> None:
        self._queue.append((link, frame_type, payload))
        self._event(None)

    def _event(self, action: Callable[[], object] | None) -> None:
        """Run C{action}, then deliver queued frames unless an outer event is doing so."""
        if self._pumping:
            if action is not None:
                action()
            return
        self._pumping = True
        try:
            if action is not None:
                action()
            queue = self._queue
            while queue:
                link, frame_type, payload = queue.popleft()
                end = link.other
                if end is None or not end.up:
                    continue
                try:
                    end.local.router.frame_received(end, frame_type, payload)
                except ProtocolError as e:
                    self.errors.append((end.local, e))
                    self.cut(link.wire)
        finally:
            self._pumping = False

    # -- time ------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the clock forward C{seconds}, running each delayed call at its own time."""
        clock = self.clock
        if isinstance(clock, SimClock):
            clock.advance(seconds)
            return
        target = clock.seconds() + seconds
        while clock.calls and clock.calls[0].getTime() <= target:
            clock.advance(max(0.0, clock.calls[0].getTime() - clock.seconds()))
        clock.advance(target - clock.seconds())

    def send(self, source: SimNode, dest: SimNode, data: bytes) -> int:
        """C{source} sends C{data} to C{dest}; return the Traffic frames it took (hops)."""
        before = self.frames[9]
        self._event(lambda: source.router.send(dest.public_key, data))
        return self.frames[9] - before

    # -- observations ----------------------------------------------------------------------

    def lowest_key(self) -> bytes:
        """The lowest key among the nodes: the root every node converges on."""
        return min(node.public_key for node in self.nodes)

    def roots(self) -> set[bytes]:
        """The roots the nodes see (one key once the tree has converged)."""
        return {node.router.root() for node in self.nodes}

    def converged(self) -> bool:
        """One root (the lowest key), and every node's ancestry reaches it."""
        low = self.lowest_key()
        for node in self.nodes:
            if node.router.root() != low:
                return False
        return True

    def shortest_hops(self, source: SimNode, dest: SimNode) -> int:
        """Breadth-first hop count over the current links (-1 when unreachable)."""
        seen = {source}
        frontier = [source]
        hops = 0
        while frontier:
            if dest in frontier:
                return hops
            hops += 1
            nxt = []
            for node in frontier:
                for peer in self.neighbours(node):
                    if peer not in seen:
                        seen.add(peer)
                        nxt.append(peer)
            frontier = nxt
        return -1

    def random_graph(self, n: int, extra: int) -> list[SimNode]:
        """Add C{n} nodes linked as a random tree plus C{extra} random links (connected)."""
        nodes = [self.add_node() for _ in range(n)]
        pairs = set()
        for i in range(1, n):
            j = self.rng.randrange(i)
            pairs.add((j, i))
        while len(pairs) < n - 1 + extra:
            i, j = sorted(self.rng.sample(range(n), 2))
            pairs.add((i, j))
        for i, j in sorted(pairs):
            self.connect(nodes[i], nodes[j])
        return nodes

    def stop(self) -> None:
        """Stop every router (tests then check the clock has no delayed calls left)."""
        for node in list(self.nodes):
            node.router.stop()
